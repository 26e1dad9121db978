"""bioimage.io model packages (deepImageJ, ilastik, QuPath, ...): rdf.yaml + ONNX, TensorFlow
SavedModel and Keras weights + test tensors + cover + documentation + the halo that tiled
inference needs, validated with ``bioimageio.spec``."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np

from micronet_tf.files import atomic_output_path, sha256_of
from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

LICENSE = "MIT"
CITATION = {
    "text": "Stuckner et al., Microstructure segmentation with deep learning encoders "
    "pre-trained on a large microscopy dataset, npj Comput. Mater. 8, 200 (2022)",
    "doi": "10.1038/s41524-022-00878-5",
}


# Candidate halos (pixels cut from each side of an output tile) and the agreement asked of a
# tile's centre with the whole-image prediction, relative to the output's range.
HALO_CANDIDATES = (8, 16, 32, 48, 64, 96, 128)
HALO_TOLERANCE = 0.01


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def context_halo(model: keras.Model, *, seed: int = 0) -> tuple[int, float]:
    """The smallest halo of :data:`HALO_CANDIDATES` for which the centre of a tile predicted
    alone equals the whole-image prediction there to :data:`HALO_TOLERANCE` of the output
    range (measured on a random image, far from its borders); ``(halo, relative difference)``.
    Models with whole-image pooling (PSPNet, DeepLab) get the largest candidate."""
    from micronet_tf.prediction import input_rule

    multiple, minimum = input_rule(model)
    rng = np.random.default_rng(seed)
    offset = 64
    largest = max(HALO_CANDIDATES)
    side = _round_up(max(offset + 2 * largest + multiple + offset, minimum), multiple)
    image = rng.normal(size=(1, side, side, 3)).astype(np.float32)
    whole = np.asarray(model(image, training=False), np.float32)
    scale = float(whole.max() - whole.min()) or 1.0
    difference = float("inf")
    for halo in HALO_CANDIDATES:
        tile = _round_up(max(2 * halo + multiple, minimum), multiple)
        piece = np.asarray(
            model(image[:, offset : offset + tile, offset : offset + tile], training=False),
            np.float32,
        )
        inner = slice(halo, tile - halo)
        reference = whole[
            :, offset + halo : offset + tile - halo, offset + halo : offset + tile - halo
        ]
        difference = float(np.abs(piece[:, inner, inner] - reference).max()) / scale
        if difference <= HALO_TOLERANCE:
            return halo, difference
    return largest, difference


def _zip_folder(folder: Path, out: Path) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())


def _input_words(normalization) -> str:
    if normalization.kind == "dtype":
        return "0-255"
    return (
        f"any range (each image is scaled by its own {normalization.low:g} / "
        f"{normalization.high:g} percentiles, as in training)"
    )


def _preprocessing(normalization) -> list[dict]:
    """bioimage.io preprocessing steps for the model's intensity normalisation, then
    ImageNet's mean / std. ``"percentile"``: ``scale_range`` per image over all pixels and
    channels, then ``clip`` to [0, 1] (bioimage.io interpolates between ranks where
    micronet-tf takes the inverted CDF: a difference below one grey level's step)."""
    if normalization.kind == "dtype":
        return [
            {
                "id": "fixed_zero_mean_unit_variance",
                "kwargs": {
                    "axis": "channel",
                    "mean": [float(v) for v in IMAGENET_MEAN * 255],
                    "std": [float(v) for v in IMAGENET_STD * 255],
                },
            }
        ]
    return [
        {
            "id": "scale_range",
            "kwargs": {
                "axes": ["y", "x", "channel"],
                "min_percentile": float(normalization.low),
                "max_percentile": float(normalization.high),
            },
        },
        {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}},
        {
            "id": "fixed_zero_mean_unit_variance",
            "kwargs": {
                "axis": "channel",
                "mean": [float(v) for v in IMAGENET_MEAN],
                "std": [float(v) for v in IMAGENET_STD],
            },
        },
    ]


def _write(folder: Path, model: keras.Model, name: str, size: int, opset: int) -> None:
    import tensorflow as tf
    import yaml

    from micronet_tf.export import export_onnx
    from micronet_tf.models import class_names, input_normalization, model_info
    from micronet_tf.models.layers import scale_to_unit_range

    info = model_info(model)
    classes = class_names(model) or [f"class{i}" for i in range(info["classes"])]
    from micronet_tf.prediction import input_rule

    halo, _ = context_halo(model)
    multiple, minimum = input_rule(model)
    smallest = _round_up(max(2 * halo + multiple, minimum, 64), multiple)
    size = max(size, smallest)
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (1, size, size, 3)).astype(np.float32)
    normalization = input_normalization(model)
    unit = np.asarray(scale_to_unit_range(raw, normalization.to_config(), 255.0))
    normalised = (unit - IMAGENET_MEAN) / IMAGENET_STD
    model(normalised[:, :64, :64])  # Keras exports only models that have been called
    output = np.asarray(model(normalised, training=False), np.float32)
    np.save(folder / "test_input.npy", raw)
    np.save(folder / "test_output.npy", output)
    export_onnx(model, folder / "weights.onnx", opset=opset)
    model.save(folder / "weights.keras")
    with tempfile.TemporaryDirectory() as bundle:
        model.export(bundle, format="tf_saved_model", verbose=False)
        _zip_folder(Path(bundle), folder / "weights_savedmodel.zip")
    _cover(folder / "cover.png", raw[0], output[0])
    (folder / "README.md").write_text(
        f"# {name}\n\n{info['architecture']} with a {info['encoder']} encoder, made with "
        f"micronet-tf. Input: RGB micrograph, {_input_words(normalization)}, any size that is a "
        f"multiple of {multiple} and at least {smallest} (the intensity scaling and the ImageNet "
        f"mean / std normalisation are part of the package's preprocessing). Output: "
        f"per-pixel values for {', '.join(classes)}. For "
        f"tiled inference crop a halo of {halo} pixels from each side of every output tile: "
        "tile centres then agree with whole-image predictions (measured by micronet-tf when "
        "the package was made).\n\n# Validation\n\nThe model mirrors "
        "segmentation_models_pytorch layer for layer; micronet-tf's parity tests compare it "
        "with the PyTorch original (max abs difference ~1e-5 relative). Measure its accuracy "
        "(IoU) on labelled images of your own material before relying on it.\n"
    )
    space = {"min": smallest, "step": multiple}
    rdf = {
        "format_version": "0.5.4",
        "type": "model",
        "name": name,
        "description": f"Segmentation of microscopy images into {', '.join(classes)} "
        f"({info['architecture']}, {info['encoder']} encoder, micronet-tf).",
        "authors": [{"name": "micronet-tf"}],
        "cite": [CITATION],
        "license": LICENSE,
        "documentation": "README.md",
        "covers": ["cover.png"],
        "tags": ["segmentation", "microscopy", "materials-science", "micronet"],
        "inputs": [
            {
                "id": "image",
                "axes": [
                    {"type": "batch"},
                    {"type": "space", "id": "y", "size": space},
                    {"type": "space", "id": "x", "size": space},
                    {"type": "channel", "channel_names": ["r", "g", "b"]},
                ],
                "test_tensor": {
                    "source": "test_input.npy",
                    "sha256": sha256_of(folder / "test_input.npy"),
                },
                "data": {"type": "float32"},
                "preprocessing": _preprocessing(normalization),
            }
        ],
        "outputs": [
            {
                "id": "prediction",
                "axes": [
                    {"type": "batch"},
                    {
                        "type": "space",
                        "id": "y",
                        "size": {"tensor_id": "image", "axis_id": "y"},
                        "halo": halo,
                    },
                    {
                        "type": "space",
                        "id": "x",
                        "size": {"tensor_id": "image", "axis_id": "x"},
                        "halo": halo,
                    },
                    {"type": "channel", "channel_names": [c.replace(" ", "_") for c in classes]},
                ],
                "test_tensor": {
                    "source": "test_output.npy",
                    "sha256": sha256_of(folder / "test_output.npy"),
                },
                "data": {"type": "float32"},
            }
        ],
        "weights": {
            "onnx": {
                "source": "weights.onnx",
                "sha256": sha256_of(folder / "weights.onnx"),
                "opset_version": opset,
                "parent": "keras_v3",
            },
            "tensorflow_saved_model_bundle": {
                "source": "weights_savedmodel.zip",
                "sha256": sha256_of(folder / "weights_savedmodel.zip"),
                "tensorflow_version": tf.__version__,
                "parent": "keras_v3",
            },
            "keras_v3": {
                "source": "weights.keras",
                "sha256": sha256_of(folder / "weights.keras"),
                "keras_version": keras.__version__,
                "backend": ["tensorflow", tf.__version__],
            },
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


def export_bioimageio(
    model: keras.Model,
    out: str | os.PathLike,
    *,
    name: str | None = None,
    test_size: int = 128,
    opset: int = 17,
) -> Path:
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
            raise ValueError(
                f"the bioimage.io package failed validation:\n"
                f"{description.validation_summary.display() or ''}"
            )
        with atomic_output_path(out) as temporary:
            with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(folder.iterdir()):
                    archive.write(file, file.name)
    return out


__all__ = ["export_bioimageio", "validate"]
