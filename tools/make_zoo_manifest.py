"""Write zoo/manifest.json and zoo/cards/*.md from NASA's published encoder list.

The entries are the encoder / pre-training pairs in the accuracy tables of NASA's README
(nasa/pretrained-microscopy-models, commit 1102df2d); the numbers are copied from there.
Hashes and sizes of converted artifacts already in the manifest are kept, so re-running it
after tools/convert_zoo.py loses nothing. Run: .venv/bin/python tools/make_zoo_manifest.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from micronet_tf.encoders import list_encoders
from micronet_tf.zoo import FileRecord, Manifest, ZooEntry, read_manifest, render_card

S3 = "https://nasa-public-data.s3.amazonaws.com/microscopy_segmentation_models"
HF = (
    "https://huggingface.co/jstuckner/microscopy-{encoder}-{pretraining}/resolve/main/"
    "encoder_weights.pth"
)
README_SOURCE = "NASA pretrained-microscopy-models README"
# encoder: (top-1, top-5) per pre-training, from NASA's README tables.
MICRONET = {
    "densenet121": (88.148, 98.963),
    "densenet161": (87.815, 99.074),
    "densenet169": (89.333, 99.222),
    "densenet201": (88.407, 99.074),
    "dpn107": (84.556, 98),
    "dpn131": (84.593, 98.296),
    "dpn68": (77.741, 94.815),
    "dpn68b": (69, 88.704),
    "dpn92": (74.185, 91.815),
    "dpn98": (85.519, 98.407),
    "efficientnet-b0": (83.926, 97.444),
    "efficientnet-b1": (84.111, 97.815),
    "efficientnet-b2": (84.63, 98.111),
    "efficientnet-b3": (84.889, 97.667),
    "efficientnet-b4": (84.519, 97.185),
    "efficientnet-b5": (83.148, 97.074),
    "inceptionresnetv2": (90.926, 99.296),
    "inceptionv4": (93.63, 99.704),
    "mobilenet_v2": (83.815, 97.815),
    "resnet101": (77.296, 94.704),
    "resnet152": (85.63, 98.185),
    "resnet18": (79.815, 95.667),
    "resnet34": (77.259, 94.444),
    "resnet50": (62.037, 83.741),
    "resnext101_32x8d": (87.556, 99.037),
    "resnext50_32x4d": (69.037, 89.296),
    "se_resnet101": (93.37, 99.741),
    "se_resnet152": (92.926, 99.852),
    "se_resnet50": (93.222, 99.741),
    "se_resnext101_32x4d": (93.889, 99.815),
    "se_resnext50_32x4d": (93.741, 99.852),
    "senet154": (94.037, 99.741),
    "vgg11_bn": (76.815, 93.296),
    "vgg13_bn": (77.889, 93.704),
    "vgg16_bn": (71.481, 90.926),
    "xception": (93.815, 99.63),
}
IMAGENET_MICRONET = {
    "densenet121": (81.185, 96.704),
    "densenet161": (85.963, 98.111),
    "densenet169": (83.815, 97.963),
    "densenet201": (83.741, 97.593),
    "dpn107": (86.185, 98.444),
    "dpn131": (82.778, 97.074),
    "dpn68": (65.889, 87.259),
    "dpn68b": (52.148, 77.519),
    "dpn92": (69.778, 89.333),
    "dpn98": (84.037, 97.556),
    "efficientnet-b0": (92.815, 99.778),
    "efficientnet-b1": (93.259, 99.741),
    "efficientnet-b2": (93.741, 99.889),
    "efficientnet-b3": (93.889, 99.741),
    "efficientnet-b4": (94.519, 99.741),
    "efficientnet-b5": (93.926, 99.778),
    "efficientnet-b6": (92.593, 99.556),
    "efficientnet-b7": (92.63, 99.63),
    "inceptionresnetv2": (92.148, 99.63),
    "inceptionv4": (93.741, 99.815),
    "mobilenet_v2": (80.556, 96.037),
    "resnet101": (86.259, 98.222),
    "resnet152": (85.111, 97.296),
    "resnet18": (81.185, 96.926),
    "resnet34": (90.185, 99.222),
    "resnet50": (90.259, 99),
    "resnext101_32x8d": (92.815, 99.778),
    "resnext50_32x4d": (91.148, 99.407),
    "se_resnet101": (93.185, 99.778),
    "se_resnet152": (93.444, 99.778),
    "se_resnet50": (93.222, 99.741),
    "se_resnext101_32x4d": (94.519, 99.852),
    "se_resnext50_32x4d": (93.63, 99.815),
    "senet154": (93.741, 99.815),
    "vgg11_bn": (89.148, 98.889),
    "vgg11": (1.37, 4.556),
    "vgg13_bn": (90.63, 99.481),
    "vgg13": (2, 7.407),
    "vgg16_bn": (90.222, 99.37),
    "xception": (93.444, 99.741),
}
# NASA's list order (../shared/README.md).
ENCODERS = (
    "resnet18 resnet34 resnet50 resnet101 resnet152 resnext50_32x4d resnext101_32x8d "
    "se_resnet50 se_resnet101 se_resnet152 se_resnext50_32x4d se_resnext101_32x4d senet154 "
    "densenet121 densenet161 densenet169 densenet201 dpn68 dpn68b dpn92 dpn98 dpn107 dpn131 "
    + " ".join(f"efficientnet-b{i}" for i in range(8))
    + " inceptionv4 inceptionresnetv2 xception mobilenet_v2 vgg11 vgg11_bn vgg13 vgg13_bn "
    "vgg16_bn"
).split()
NOTES = {
    ("resnext101_32x8d", "imagenet-micronet"): (
        "The source URL follows NASA's naming pattern but is unconfirmed: NASA's own helper "
        "(`get_pretrained_microscopynet_url`) returns the MicroNet file "
        "`resnext101_pretrained_microscopynet_v1.0.pth.tar` for this encoder whatever the "
        "pre-training."
    ),
    ("resnet50", "micronet"): (
        "NASA publishes v1.0 (the paper's) and v1.1 of these weights; NASA's README gives one "
        "accuracy row without saying which version it measured, so both entries carry it. "
        "The Hugging Face mirror holds one file per encoder and pre-training without a "
        "version: it is listed as a second source for v1.0 only."
    ),
    ("vgg11", "imagenet-micronet"): "NASA's README reports near-chance accuracy for it.",
    ("vgg13", "imagenet-micronet"): "NASA's README reports near-chance accuracy for it.",
}


def _source(encoder: str, pretraining: str, version: str) -> FileRecord:
    url_name = "microscopynet" if pretraining == "micronet" else "imagenet-microscopynet"
    stem = "resnext101" if (encoder, pretraining) == ("resnext101_32x8d", "micronet") else encoder
    filename = f"{stem}_pretrained_{url_name}_{version}.pth.tar"
    urls = [f"{S3}/{filename}"]
    if version == "v1.0":
        urls.append(HF.format(encoder=encoder, pretraining=pretraining))
    return FileRecord(filename=filename, urls=tuple(urls))


def _artifacts(name: str, version: str) -> dict[str, FileRecord]:
    stem = f"{name}-{version}"
    return {
        kind: FileRecord(filename=f"{stem}{suffix}", path=f"{name}/{version}/{stem}{suffix}")
        for kind, suffix in (("keras", ".weights.h5"), ("onnx", ".onnx"))
    }


def build_entries() -> list[ZooEntry]:
    available = set(list_encoders())
    entries = []
    for encoder in ENCODERS:
        for pretraining, table in (
            ("micronet", MICRONET),
            ("imagenet-micronet", IMAGENET_MICRONET),
        ):
            if encoder not in table:
                continue
            top1, top5 = table[encoder]
            versions = (
                ("v1.0", "v1.1")
                if (encoder, pretraining) == ("resnet50", "micronet")
                else ("v1.0",)
            )
            name = f"{encoder}.{pretraining}"
            for version in versions:
                entries.append(
                    ZooEntry(
                        name=name,
                        version=version,
                        encoder=encoder,
                        pretraining=pretraining,
                        available=encoder in available,
                        default=version == "v1.0",
                        source=_source(encoder, pretraining, version),
                        files=_artifacts(name, version) if encoder in available else {},
                        license="MIT",
                        accuracy={"top1": top1, "top5": top5, "source": README_SOURCE},
                        card=f"cards/{name}-{version}.md",
                        notes=NOTES.get((encoder, pretraining), ""),
                    )
                )
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=Path(__file__).resolve().parents[1] / "zoo")
    args = parser.parse_args()
    path = args.zoo / "manifest.json"
    old = read_manifest(path) if path.is_file() else None
    entries = []
    for entry in build_entries():
        kept = old.get(entry.key) if old else None
        if kept is not None:  # keep hashes that convert_zoo / publish_zoo filled in
            files = {k: kept.files.get(k, v) for k, v in entry.files.items()}
            source = entry.source if not kept.source.sha256 else kept.source
            entry = type(entry)(**{**entry.__dict__, "files": files, "source": source})
        entries.append(entry)
    manifest = Manifest(
        entries,
        old.artifacts_base_url if old else None,
        {
            "description": "MicroNet encoders (NASA pretrained-microscopy-models) for micronet-tf",
            "source_hashes": "NASA publishes no hashes and the files were not reachable when this "
            "manifest was written: source sha256/size are null (unverified) until "
            "tools/convert_zoo.py hashes a downloaded copy. micronet-tf refuses "
            "to download an unverified source unless trust_unverified=True / "
            "MICRONET_TF_TRUST_UNVERIFIED=1, and then records its hash.",
        },
    )
    manifest.write(path)
    (args.zoo / "cards").mkdir(exist_ok=True)
    for entry in entries:
        card = args.zoo / entry.card
        if not card.is_file() or "## Conversion check" not in card.read_text():
            card.write_text(render_card(entry))
    print(f"{path}: {len(entries)} entries, {sum(e.available for e in entries)} available")


if __name__ == "__main__":
    main()
