"""SavedModel export for TF Serving: loads with plain TensorFlow in a process that never
imports micronet_tf, takes raw 8- and 16-bit images of odd sizes, and gives what
``micronet_tf.predict`` gives; ``saved_model_cli`` lists the signatures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from micronet_tf.cli import main

ROOT = Path(__file__).resolve().parents[2]
# float32 round-off of the same graph traced twice (numpy vs TensorFlow normalisation).
TOLERANCE = 1e-5

SERVE = """
import sys
import numpy as np, tensorflow as tf
data = np.load(sys.argv[2])
loaded = tf.saved_model.load(sys.argv[1])
results = {}
for name, key in (("serving_default", "image8"), ("serving_uint16", "image16"),
                  ("serving_default", "grey8")):
    out = loaded.signatures[name](images=tf.constant(data[key][None]))
    results[key + "_p"] = out["probabilities"].numpy()[0]
    results[key + "_mask"] = out["mask"].numpy()[0]
np.savez(sys.argv[3], **results)
print("micronet_tf" in sys.modules)
"""


def test_savedmodel_serves_raw_images_like_predict(tmp_path: Path) -> None:
    import keras

    import micronet_tf
    from micronet_tf.models import create_segmentation_model
    from micronet_tf.prediction import to_index_mask

    keras.utils.set_random_seed(0)
    model = create_segmentation_model("Unet", "resnet18", classes=3)
    model.save(tmp_path / "model.keras")
    assert (
        main(
            [
                "export",
                str(tmp_path / "model.keras"),
                "--format",
                "savedmodel",
                "--out",
                str(tmp_path / "served"),
            ]
        )
        == 0
    )
    rng = np.random.default_rng(1)
    image8 = rng.integers(0, 256, (100, 110, 3), dtype=np.uint8)  # odd sizes: padded to 128
    image16 = image8.astype(np.uint16) * 16  # 12 bits used of 16
    grey8 = image8[..., 0][..., None]
    np.savez(tmp_path / "in.npz", image8=image8, image16=image16, grey8=grey8)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE,
            str(tmp_path / "served"),
            str(tmp_path / "in.npz"),
            str(tmp_path / "out.npz"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "False"  # served without micronet_tf
    served = np.load(tmp_path / "out.npz")
    for key, image in (("image8", image8), ("image16", image16), ("grey8", grey8[..., 0])):
        expected = micronet_tf.predict(model, image, tile=128, overlap=0)
        assert served[key + "_p"].shape == (100, 110, 3)
        np.testing.assert_allclose(served[key + "_p"], expected, atol=TOLERANCE)
        agree = np.mean(served[key + "_mask"] == to_index_mask(expected))
        assert agree > 0.999, (key, agree)  # ties of near-equal classes may flip

    listing = subprocess.run(
        [
            str(Path(sys.executable).parent / "saved_model_cli"),
            "show",
            "--dir",
            str(tmp_path / "served"),
            "--all",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listing.returncode == 0, listing.stderr[-2000:]
    for expected in (
        "signature_def['serving_default']",
        "signature_def['serving_uint16']",
        "probabilities",
        "mask",
        "dtype: DT_UINT8",
        "dtype: DT_UINT16",
    ):
        assert expected in listing.stdout, expected

    # An existing folder is refused (and left as it was) unless --force.
    before = sorted(p.name for p in (tmp_path / "served").iterdir())
    assert (
        main(
            [
                "export",
                str(tmp_path / "model.keras"),
                "--format",
                "savedmodel",
                "--out",
                str(tmp_path / "served"),
            ]
        )
        == 2
    )
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == before
