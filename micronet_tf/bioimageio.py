"""bioimage.io model packages (deepImageJ, ilastik, ...): rdf.yaml + ONNX and Keras weights +
test tensors + cover + documentation, validated with ``bioimageio.spec``."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np

from micronet_tf._files import atomic_output_path
from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

LICENSE = "MIT"
CITATION = {"text": "Stuckner et al., Microstructure segmentation with deep learning encoders "
                    "pre-trained on a large microscopy dataset, npj Comput. Mater. 8, 200 (2022)",
            "doi": "10.1038/s41524-022-00878-5"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(folder: Path, model: keras.Model, name: str, size: int, opset: int) -> None:
    import tensorflow as tf
    import yaml

    from micronet_tf.export import export_onnx
    from micronet_tf.models import class_names, model_info

    info = model_info(model)
    classes = class_names(model) or [f"class{i}" for i in range(info["classes"])]
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (1, size, size, 3)).astype(np.float32)
    normalised = (raw / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    model(normalised[:, :64, :64])  # Keras exports only models that have been called
    output = np.asarray(model(normalised, training=False), np.float32)
    np.save(folder / "test_input.npy", raw)
    np.save(folder / "test_output.npy", output)
    export_onnx(model, folder / "weights.onnx", opset=opset)
    model.save(folder / "weights.keras")
    _cover(folder / "cover.png", raw[0], output[0])
    (folder / "README.md").write_text(
        f"# {name}\n\n{info['architecture']} with a {info['encoder']} encoder, made with "
        "micronet-tf. Input: RGB micrograph, 0-255, any size that is a multiple of 32 (the "
        "ImageNet mean / std normalisation is part of the package's preprocessing). Output: "
        f"per-pixel values for {', '.join(classes)}.\n\n# Validation\n\nThe model mirrors "
        "segmentation_models_pytorch layer for layer; micronet-tf's parity tests compare it "
        "with the PyTorch original (max abs difference ~1e-5 relative). Measure its accuracy "
        "(IoU) on labelled images of your own material before relying on it.\n"
    )
    space = {"min": 64, "step": 32}
    rdf = {
        "format_version": "0.5.4", "type": "model", "name": name,
        "description": f"Segmentation of microscopy images into {', '.join(classes)} "
                       f"({info['architecture']}, {info['encoder']} encoder, micronet-tf).",
        "authors": [{"name": "micronet-tf"}], "cite": [CITATION], "license": LICENSE,
        "documentation": "README.md", "covers": ["cover.png"],
        "tags": ["segmentation", "microscopy", "materials-science", "micronet"],
        "inputs": [{
            "id": "image", "axes": [
                {"type": "batch"},
                {"type": "space", "id": "y", "size": space},
                {"type": "space", "id": "x", "size": space},
                {"type": "channel", "channel_names": ["r", "g", "b"]},
            ],
            "test_tensor": {"source": "test_input.npy",
                            "sha256": _sha256(folder / "test_input.npy")},
            "data": {"type": "float32"},
            "preprocessing": [{"id": "fixed_zero_mean_unit_variance", "kwargs": {
                "axis": "channel", "mean": [float(v) for v in IMAGENET_MEAN * 255],
                "std": [float(v) for v in IMAGENET_STD * 255]}}],
        }],
        "outputs": [{
            "id": "prediction", "axes": [
                {"type": "batch"},
                {"type": "space", "id": "y", "size": {"tensor_id": "image", "axis_id": "y"}},
                {"type": "space", "id": "x", "size": {"tensor_id": "image", "axis_id": "x"}},
                {"type": "channel", "channel_names": [c.replace(" ", "_") for c in classes]},
            ],
            "test_tensor": {"source": "test_output.npy",
                            "sha256": _sha256(folder / "test_output.npy")},
            "data": {"type": "float32"},
        }],
        "weights": {
            "onnx": {"source": "weights.onnx", "sha256": _sha256(folder / "weights.onnx"),
                     "opset_version": opset, "parent": "keras_v3"},
            "keras_v3": {"source": "weights.keras", "sha256": _sha256(folder / "weights.keras"),
                         "keras_version": keras.__version__,
                         "backend": ["tensorflow", tf.__version__]},
        },
    }
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))


def _cover(path: Path, image: np.ndarray, output: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].imshow(image.astype(np.uint8))
    axes[1].imshow(output.argmax(-1) if output.shape[-1] > 1 else output[..., 0])
    for axis, title in zip(axes, ("input", "prediction")):
        axis.set_title(title)
        axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def validate(package: str | os.PathLike):
    """``bioimageio.spec`` validation of a package (.zip or folder's rdf.yaml), offline."""
    from bioimageio.spec import load_description

    source = Path(package)
    if source.is_dir():
        source = source / "rdf.yaml"
    return load_description(source, perform_io_checks=True)


def export_bioimageio(model: keras.Model, out: str | os.PathLike, *, name: str | None = None,
                      test_size: int = 128, opset: int = 17) -> Path:
    """Write a bioimage.io model package (``.zip``) for a segmentation model and validate it;
    a package that fails validation is not written."""
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"out={str(out)!r}: a bioimage.io package is a .zip file")
    if test_size % 32:
        raise ValueError(f"test_size={test_size}: expected a multiple of 32")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        _write(folder, model, name or model.name, test_size, opset)
        description = validate(folder)
        status = getattr(description.validation_summary, "status", "failed")
        if status not in ("passed", "valid-format"):
            raise ValueError(f"the bioimage.io package failed validation:\n"
                             f"{description.validation_summary.display() or ''}")
        with atomic_output_path(out) as temporary:
            with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(folder.iterdir()):
                    archive.write(file, file.name)
    return out


__all__ = ["export_bioimageio", "validate"]
