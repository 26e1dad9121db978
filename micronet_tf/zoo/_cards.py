"""Model cards (Markdown) for zoo entries: what the weights are, where they come from, how
they were checked, and what they cannot promise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from micronet_tf.zoo._manifest import ZooEntry

_PRETRAINING_TEXT = {
    "micronet": "randomly initialised, then trained to classify MicroNet (110,861 micrographs, "
    "54 classes)",
    "imagenet-micronet": "pre-trained on ImageNet, then fine-tuned on MicroNet (110,861 "
    "micrographs, 54 classes)",
}
CITATION = (
    "Stuckner, J., Harder, B., Smith, T. M. Microstructure segmentation with deep "
    "learning encoders pre-trained on a large microscopy dataset. npj Comput. Mater. 8, "
    "200 (2022). https://doi.org/10.1038/s41524-022-00878-5"
)


def _hash(value: str | None) -> str:
    return f"`{value}`" if value else "not pinned yet"


def render_card(entry: ZooEntry, conversion: Mapping[str, Any] | None = None) -> str:
    """The card for ``entry``; ``conversion`` adds what tools/convert_zoo.py measured."""
    accuracy = entry.accuracy or {}
    if accuracy.get("top1") is not None:
        acc = (
            f"top-1 {accuracy['top1']} %, top-5 {accuracy['top5']} % on MicroNet "
            f"classification ({accuracy.get('source', 'NASA')})"
        )
    else:
        acc = "not published by NASA for this encoder and pre-training"
    status = (
        "micronet-tf builds this encoder in Keras: `get_encoder"
        f'("{entry.encoder}", weights="{entry.name}@{entry.version}")`.'
        if entry.available
        else "micronet-tf has no Keras architecture for this encoder yet; only NASA's "
        'PyTorch checkpoint is listed (`download(..., kind="source")`).'
    )
    lines = [
        f"# {entry.name} {entry.version}",
        "",
        f"MicroNet **{entry.encoder}** encoder, {_PRETRAINING_TEXT[entry.pretraining]}, "
        "published by NASA as a PyTorch state dict of the segmentation_models_pytorch encoder "
        "([pretrained-microscopy-models](https://github.com/nasa/pretrained-microscopy-models)).",
        "",
        status,
        "",
        "## Use",
        "",
        "- Input: RGB micrographs scaled to [0, 1] and normalised with the ImageNet mean / std "
        "(`micronet_tf.preprocessing.normalize`), as MicroNet was trained; grey images are "
        "repeated to 3 channels.",
        "- Output: the encoder's feature maps at strides 1, 2, 4, 8, 16, 32 (no classification "
        "head: NASA publishes encoders).",
        "- Intended for transfer learning on microscopy segmentation (U-Net and the other smp "
        "architectures). Validate on labelled images of your own material before use.",
        "",
        "## Accuracy",
        "",
        f"- {acc}.",
        "",
        "## Files",
        "",
        f"- Source: `{entry.source.filename}` (sha256 {_hash(entry.source.sha256)}); "
        + ", ".join(entry.source.urls),
    ]
    for kind, record in entry.files.items():
        size = f", {record.size:,} bytes" if record.size else ""
        lines.append(f"- {kind}: `{record.filename}` (sha256 {_hash(record.sha256)}{size})")
    if conversion:
        lines += ["", "## Conversion check", ""]
        lines += [f"- {key}: {value}" for key, value in conversion.items()]
    if entry.notes:
        lines += ["", "## Notes", "", entry.notes]
    lines += [
        "",
        "## Licence and citation",
        "",
        f"{entry.license} (NASA's pretrained-microscopy-models). Cite: {CITATION}",
        "",
    ]
    return "\n".join(lines)
