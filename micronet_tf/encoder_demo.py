"""``micronet-tf encoder-demo``: convert a MicroNet encoder checkpoint, run it on a micrograph,
and show that Keras gives the numbers of the PyTorch original."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from micronet_tf import local_paths
from micronet_tf.download import fetch
from micronet_tf.preprocessing import normalize, read_image

# One Super1 micrograph, pinned to a commit of NASA's repository (MIT licence) and its sha256.
DEMO_IMAGE = "Super1/train/spot7_180d_3.tif"
DEMO_IMAGE_URL = (
    "https://raw.githubusercontent.com/nasa/pretrained-microscopy-models/"
    "63ef39f50220db4c4baad8777fbf1f80d6689442/benchmark_segmentation_data/" + DEMO_IMAGE
)
DEMO_IMAGE_SHA256 = "eb4553697bd859041ccfedda0cb763e341dd455f96c34c98c7e67851dfccd44b"


def find_demo_image() -> Path:
    """The demo micrograph from the local benchmark copy, else downloaded (sha256-verified)."""
    local = local_paths.benchmark_data_dir()
    if local is not None and (local / DEMO_IMAGE).is_file():
        return local / DEMO_IMAGE
    print(f"no local benchmark data ({local_paths.DATA_ENV} unset); downloading {DEMO_IMAGE_URL}")
    return fetch(
        DEMO_IMAGE_URL, local_paths.cache_dir() / "demo" / Path(DEMO_IMAGE).name, DEMO_IMAGE_SHA256
    )


def _crop_to_multiple(image: np.ndarray, multiple: int = 32) -> np.ndarray:
    height, width = (image.shape[0] // multiple) * multiple, (image.shape[1] // multiple) * multiple
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {image.shape} is smaller than {multiple}x{multiple}")
    return image[:height, :width]


def _torch_reference(
    encoder: str, checkpoint: Path | None, save: Path, batch: np.ndarray, out_dir: Path
) -> list[np.ndarray]:
    """Run smp's encoder in a subprocess (torchvision must not share a process with TensorFlow)."""
    input_path, features_path = out_dir / "input.npy", out_dir / "torch_features.npz"
    np.save(input_path, batch)
    command = [
        sys.executable,
        "-m",
        "micronet_tf.torch_reference",
        "--encoder",
        encoder,
        "--input",
        str(input_path),
        "--features",
        str(features_path),
    ]
    command += ["--load", str(checkpoint)] if checkpoint is not None else ["--save", str(save)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            "the PyTorch reference failed (install it with pip install 'micronet-tf[torch]', or "
            f"pass --no-reference):\n{result.stderr.strip()[-2000:]}"
        )
    with np.load(features_path) as stored:
        features = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    input_path.unlink()
    features_path.unlink()
    return features


def _plot_features(image: np.ndarray, features: list[np.ndarray], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = features[1:]
    figure, axes = plt.subplots(1, len(stages) + 1, figsize=(3 * (len(stages) + 1), 3.4))
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("micrograph")
    for axis, feature in zip(axes[1:], stages):
        axis.imshow(np.abs(feature[0]).mean(axis=-1), cmap="magma")
        stride = image.shape[0] // feature.shape[1]
        axis.set_title(f"stride {stride}: {feature.shape[-1]} ch\nmean |activation|")
    for axis in axes:
        axis.set_axis_off()
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    figure.savefig(path, dpi=80)
    plt.close(figure)


def run_encoder_demo(
    *,
    encoder: str = "resnet50",
    out_dir: str | os.PathLike = "demo_out",
    image: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    reference: bool = True,
) -> dict:
    """Run the demo and write ``features.png`` and ``report.json`` to ``out_dir``."""
    from micronet_tf.convert import convert_checkpoint
    from micronet_tf.encoders import encoder_spec, get_encoder, list_encoders

    encoder_spec(encoder)  # fail early on a wrong name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"encoders available: {', '.join(list_encoders())}")
    image_path = Path(image) if image is not None else find_demo_image()
    micrograph = _crop_to_multiple(read_image(image_path))
    batch = normalize(micrograph)[None]
    print(f"micrograph: {image_path} {micrograph.shape} {micrograph.dtype}")

    checkpoint = Path(checkpoint) if checkpoint is not None else None
    is_keras = checkpoint is not None and checkpoint.name.endswith(".weights.h5")
    torch_features = None
    if reference and not is_keras:
        generated = out_dir / f"{encoder}_random_nasa_format.pth.tar"
        torch_features = _torch_reference(encoder, checkpoint, generated, batch, out_dir)
        source = checkpoint if checkpoint is not None else generated
        if checkpoint is None:
            print(
                f"no --checkpoint given: wrote random {encoder} weights in NASA's format to "
                f"{generated}"
            )
        weights = out_dir / f"{encoder}.weights.h5"
        _, report = convert_checkpoint(source, encoder, weights, overwrite=True)
        print(f"converted {source} -> {weights}: {report.summary()}")
    elif is_keras:
        weights = checkpoint
    else:
        raise ValueError("--no-reference needs --checkpoint FILE.weights.h5 (Keras weights)")

    model = get_encoder(encoder, weights=weights)
    features = [np.asarray(f) for f in model(batch, training=False)]
    report: dict = {
        "encoder": encoder,
        "image": str(image_path),
        "weights": str(weights),
        "features": [],
    }
    print(
        f"{'stride':>6} {'shape':>22} {'max |keras - torch|':>20} {'max |torch|':>12} "
        f"{'relative':>9}"
    )
    for index, feature in enumerate(features):
        entry = {"stride": 2**index, "shape": list(feature.shape)}
        line = f"{2**index:>6} {str(feature.shape):>22}"
        if torch_features is not None:
            entry["max_abs_diff"] = float(np.abs(feature - torch_features[index]).max())
            entry["max_abs_torch"] = float(np.abs(torch_features[index]).max())
            entry["relative_diff"] = entry["max_abs_diff"] / max(entry["max_abs_torch"], 1e-12)
            line += (
                f" {entry['max_abs_diff']:>20.3g} {entry['max_abs_torch']:>12.3g}"
                f" {entry['relative_diff']:>9.2g}"
            )
        report["features"].append(entry)
        print(line)
    _plot_features(micrograph, features, f"{encoder} features (Keras)", out_dir / "features.png")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out_dir / 'features.png'} and {out_dir / 'report.json'}")
    return report
