"""``micronet-tf`` command line: list encoders, convert NASA checkpoints, run the demo."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


# Expected, user-facing failures: printed as one line, exit code 2, no traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from micronet_tf._download import DownloadError

    return (ValueError, FileNotFoundError, FileExistsError, ImportError, DownloadError)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _cmd_list(args: argparse.Namespace) -> None:
    from micronet_tf.encoders import encoder_spec, list_encoders

    print(f"{'encoder':<20} {'family':<8} feature channels (strides 1, 2, 4, 8, 16, 32)")
    for name in list_encoders():
        spec = encoder_spec(name)
        print(f"{name:<20} {spec.family:<8} {', '.join(map(str, spec.out_channels))}")


def _cmd_convert(args: argparse.Namespace) -> None:
    from micronet_tf.convert import convert_checkpoint

    model, report = convert_checkpoint(
        args.checkpoint, args.encoder, args.out, classifier=args.classifier, overwrite=args.force
    )
    print(f"{args.checkpoint} -> {args.out} ({model.name}: {report.summary()})")


def _cmd_convert_model(args: argparse.Namespace) -> None:
    from micronet_tf.convert import save_keras_model, segmentation_model_from_torch
    from micronet_tf.models import model_info

    model = segmentation_model_from_torch(
        args.checkpoint, architecture=args.architecture, encoder=args.encoder,
        classes=args.classes, activation=None if args.activation == "identity" else args.activation,
    )
    save_keras_model(model, args.out, overwrite=args.force)
    info = model_info(model)
    print(f"{args.checkpoint} -> {args.out} ({info['architecture']} / {info['encoder']}, "
          f"{info['classes']} classes, {model.count_params():,} parameters)")


def _cmd_demo(args: argparse.Namespace) -> None:
    from micronet_tf._demo import run_demo

    run_demo(
        encoder=args.encoder, out_dir=args.out, image=args.image, checkpoint=args.checkpoint,
        reference=not args.no_reference,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micronet-tf",
        description="MicroNet microscopy encoders and segmentation models in Keras 3, with "
        "PyTorch parity.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="list the available encoders")
    listing.set_defaults(func=_cmd_list)

    convert = commands.add_parser(
        "convert", help="convert a PyTorch checkpoint (NASA's format) to Keras .weights.h5"
    )
    convert.add_argument("checkpoint", type=Path, help="a .pth / .pth.tar state dict")
    convert.add_argument("--encoder", required=True, help="encoder name (see `micronet-tf list`)")
    convert.add_argument("--out", required=True, type=Path, help="output FILE.weights.h5")
    convert.add_argument("--classifier", action="store_true",
                         help="also convert the classification head (fc / last_linear)")
    convert.add_argument("--force", action="store_true", help="replace an existing --out file")
    convert.set_defaults(func=_cmd_convert)

    whole = commands.add_parser(
        "convert-model",
        help="convert a PyTorch-trained segmentation model (the original training code's "
        "checkpoint, or an smp state dict) to a .keras file",
    )
    whole.add_argument("checkpoint", type=Path)
    whole.add_argument("--out", required=True, type=Path, help="output FILE.keras")
    whole.add_argument("--architecture", help="needed when the checkpoint does not say it")
    whole.add_argument("--encoder", help="needed when the checkpoint does not say it")
    whole.add_argument("--classes", type=int, help="default: from the checkpoint")
    whole.add_argument("--activation", default="auto",
                       choices=["auto", "identity", "sigmoid", "softmax"],
                       help="output activation; auto = as the original (sigmoid for one class, "
                       "softmax otherwise); identity = logits")
    whole.add_argument("--force", action="store_true", help="replace an existing --out file")
    whole.set_defaults(func=_cmd_convert_model)

    demo = commands.add_parser(
        "demo",
        help="convert an encoder checkpoint, run it on a micrograph, compare with PyTorch",
    )
    demo.add_argument("--encoder", default="resnet50")
    demo.add_argument("--checkpoint", type=Path,
                      help="NASA checkpoint to convert (default: a random one in NASA's format)")
    demo.add_argument("--image", type=Path,
                      help="micrograph (default: a Super1 image from MICRONET_TF_DATA, "
                      "../shared, or downloaded from NASA's repository)")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="report folder")
    demo.add_argument("--no-reference", action="store_true",
                      help="skip the PyTorch comparison (needs no torch then, but --checkpoint "
                      "must be a Keras .weights.h5 file)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    try:
        args.func(args)
    except _user_errors() as error:
        print(f"micronet-tf {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
