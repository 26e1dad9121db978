"""``micronet-tf`` command line: list encoders, convert NASA checkpoints, run the demo,
export ONNX, use the model zoo."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path


# Expected, user-facing failures: printed as one line, exit code 2, no traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from micronet_tf.data.benchmark import BenchmarkDataUnavailable
    from micronet_tf.download import DownloadError
    from micronet_tf.training.checkpoints import RunFinishedError

    return (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ImportError,
        DownloadError,
        RunFinishedError,
        BenchmarkDataUnavailable,
    )


# TensorFlow's C++ start-up lines that say nothing about the user's job: the oneDNN notice,
# CUDA probing on machines without a GPU, CPU-feature notes.
_START_UP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|cudart_stub|"
    r"cuda_platform|cuInit|cuda_drivers|cuda drivers|cpu_feature_guard|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"TF-TRT Warning|This TensorFlow binary is optimized"
)


def _start_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras and let TensorFlow look for devices with its C++ start-up
    lines held back (``--verbose`` shows them); any other line it prints is passed on. Safe
    before a MultiWorkerMirroredStrategy (listing physical devices starts no runtime)."""
    import tempfile

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        kept = [
            line
            for line in sink.read().decode(errors="replace").splitlines()
            if line.strip() and not _START_UP_NOISE.search(line)
        ]
    for line in kept:
        print(line, file=sys.stderr)


def _cmd_list(args: argparse.Namespace) -> None:
    from micronet_tf.encoders import encoder_spec, list_encoders

    print(
        f"{'encoder':<20} {'family':<12} {'dilation':<8} feature channels (strides 1, 2, 4, "
        "8, 16, 32); options"
    )
    for name in list_encoders():
        spec = encoder_spec(name)
        options = "; ".join(f"{k}={'|'.join(map(str, v))}" for k, v in spec.options.items())
        print(
            f"{name:<20} {spec.family:<12} {'yes' if spec.dilatable else 'no':<8} "
            f"{', '.join(map(str, spec.out_channels))}{'; ' + options if options else ''}"
        )


def _encoder_options(pairs: Sequence[str] | None) -> dict[str, str]:
    """``--encoder-option KEY=VALUE`` (repeatable) -> ``{KEY: VALUE}``."""
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--encoder-option {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


def _cmd_convert(args: argparse.Namespace) -> None:
    from micronet_tf.convert import convert_checkpoint

    model, report = convert_checkpoint(
        args.checkpoint,
        args.encoder,
        args.out,
        classifier=args.classifier,
        overwrite=args.force,
        encoder_options=_encoder_options(args.encoder_option),
    )
    print(f"{args.checkpoint} -> {args.out} ({model.name}: {report.summary()})")


def _cmd_convert_model(args: argparse.Namespace) -> None:
    from micronet_tf.convert import save_keras_model, segmentation_model_from_torch
    from micronet_tf.models import model_info

    model = segmentation_model_from_torch(
        args.checkpoint,
        architecture=args.architecture,
        encoder=args.encoder,
        classes=args.classes,
        activation=None if args.activation == "identity" else args.activation,
        encoder_options=_encoder_options(args.encoder_option),
    )
    save_keras_model(model, args.out, overwrite=args.force)
    info = model_info(model)
    print(
        f"{args.checkpoint} -> {args.out} ({info['architecture']} / {info['encoder']}, "
        f"{info['classes']} classes, {model.count_params():,} parameters)"
    )


def _weights_argument(value: str | None):
    return None if value in (None, "none", "None") else value


def _cmd_train(args: argparse.Namespace) -> None:
    from micronet_tf.training.distribute import get_strategy
    from micronet_tf.training.runs import (
        check_training_arguments,
        train_on_benchmark,
        train_on_folders,
    )

    _check_data_flags(args, "train")
    weights = _weights_argument(args.encoder_weights)
    check_training_arguments(
        epochs=args.epochs,
        batch_size=args.batch_size,
        crop=args.crop,
        patience=args.patience,
        repeats=args.repeats,
        initial_lr=args.lr,
        checkpoint_every=args.checkpoint_every,
        encoder_weights=weights,
        cli=True,
    )
    if args.init is not None and not args.init.is_file():
        raise FileNotFoundError(f"--init {str(args.init)!r}: expected a trained .keras model")
    # The strategy comes first: a multi-worker one must exist before TensorFlow runs anything.
    strategy = get_strategy(args.strategy)
    common = dict(
        out_dir=args.out,
        encoder_weights=weights,
        init=args.init,
        patience=args.patience,
        epochs=args.epochs,
        batch_size=args.batch_size,
        crop=args.crop,
        strategy=strategy,
        seed=args.seed,
        repeats=args.repeats,
        initial_lr=args.lr,
        checkpoint_every=args.checkpoint_every,
        force=args.force,
        deterministic=args.deterministic,
        mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile,
        normalization=args.normalization,
    )
    if args.dataset is not None:
        result = train_on_benchmark(args.dataset, args.architecture, args.encoder, **common)
    else:
        result = train_on_folders(
            args.images,
            args.masks,
            args.classes,
            args.architecture,
            args.encoder,
            mask_format=args.mask_format,
            val_images=args.val_images,
            val_masks=args.val_masks,
            val_fraction=args.val_fraction,
            keep_orientation=args.keep_orientation,
            **common,
        )
    _wait_for_workers(strategy)
    print(
        f"best validation IoU {result.best_iou:.4f} at epoch {result.best_epoch + 1}; "
        f"model: {result.best_model}"
    )


def _add_compute_flags(parser: argparse.ArgumentParser) -> None:
    """--mixed-precision and --jit-compile (training and prediction)."""
    parser.add_argument(
        "--mixed-precision",
        choices=["float16", "bfloat16", "float32"],
        default=None,
        help="compute in float16 / bfloat16 with float32 weights and output (for GPUs and "
        "bfloat16-capable CPUs); default: as the model is (float32)",
    )
    parser.add_argument("--jit-compile", action="store_true", help="compile the model with XLA")


def _normalization_argument(value: str) -> str:
    """--normalization dtype|percentile|percentile:LOW,HIGH, checked when the line is parsed."""
    from micronet_tf.intensity import Normalization

    try:
        return str(Normalization.parse(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("normalization=", "")) from None


def _add_normalization_flag(parser: argparse.ArgumentParser, default_help: str) -> None:
    parser.add_argument(
        "--normalization",
        type=_normalization_argument,
        default=None,
        metavar="dtype|percentile[:LOW,HIGH]",
        help="how raw intensities become [0, 1]: by the dtype's range (8-bit / 255, 16-bit / "
        "65535; the paper's) or by each image's percentiles (percentile = 0.1,99.9; for "
        f"12-bit data in 16-bit files or dim exposures); {default_help}",
    )


def _wait_for_workers(strategy) -> None:
    """Several workers leave together (one that exits first reads as crashed to the others)."""
    from micronet_tf.training.distribute import gather_from_workers, is_multiworker

    if is_multiworker(strategy):
        gather_from_workers(strategy, 0.0)


def _check_data_flags(args: argparse.Namespace, command: str) -> None:
    """``--dataset`` or ``--images`` with ``--masks``; the class map only with folders."""
    if (args.dataset is None) == (args.images is None):
        raise ValueError(
            f"{command}: pass --dataset (a benchmark set or a `micronet-tf "
            "dataset` folder) or --images DIR --masks DIR (your own labelled "
            "micrographs), one of the two"
        )
    if args.images is not None and args.masks is None:
        raise ValueError("--images needs --masks (the folder of their label images)")
    if args.dataset is not None:
        folder_only = [
            flag
            for flag, value in (
                ("--masks", args.masks),
                ("--classes", args.classes),
                ("--mask-format", args.mask_format),
                ("--val-images", getattr(args, "val_images", None)),
                ("--val-masks", getattr(args, "val_masks", None)),
                ("--val-fraction", getattr(args, "val_fraction", None)),
                ("--keep-orientation", getattr(args, "keep_orientation", False) or None),
            )
            if value is not None
        ]
        if folder_only:
            raise ValueError(
                f"{', '.join(folder_only)}: for --images folders; a --dataset "
                "brings its own masks and class map"
            )
    elif command == "train" and not args.classes:
        raise ValueError(
            "--classes: name the classes of your masks, e.g. --classes matrix "
            "secondary:0,0,255 tertiary:255,0,0 (colour masks; a name without a "
            "colour is the rest) or --mask-format index --classes background oxide"
        )


def _cmd_pretrain(args: argparse.Namespace) -> None:
    from micronet_tf.training.pretraining import (
        check_pretraining_arguments,
        pretrain_on_folders,
        validation_scores,
    )

    weights = _weights_argument(args.encoder_weights)
    options = dict(
        val_per_class=args.val_per_class,
        size=args.size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.patience,
        initial_lr=args.lr,
        checkpoint_every=args.checkpoint_every,
        encoder_weights=weights,
    )
    check_pretraining_arguments(encoder=args.encoder, cli=True, **options)
    strategy = args.strategy
    if strategy == "multiworker":  # at startup, before anything else touches TensorFlow
        from micronet_tf.training.distribute import get_strategy

        strategy = get_strategy(strategy)
    result = pretrain_on_folders(
        args.data_dir,
        args.encoder,
        out_dir=args.out_dir,
        strategy=strategy,
        seed=args.seed,
        force=args.force,
        **options,
    )
    scores = validation_scores(result)
    if scores:
        print(
            f"best validation top-1 {scores['val_top1']:.4f}, top-5 {scores['val_top5']:.4f} "
            f"at epoch {scores['epoch']}; classes (label order): "
            f"{result.out_dir / 'classes.json'}"
        )
    print(
        f"pre-trained encoder: {result.encoder_weights}\n"
        f"use it: micronet-tf train --images IMAGES --masks MASKS --classes CLASSES "
        f"--encoder {args.encoder} --encoder-weights {result.encoder_weights}"
    )


# -- end pretrain --------------------------------------------------------------------------


# -- dataset -------------------------------------------------------------------------------
def _cmd_dataset(args: argparse.Namespace) -> None:
    from micronet_tf.data.class_map import parse_class_map
    from micronet_tf.data.folder_tfds import load_segmentation_tfds_info, write_segmentation_tfds

    class_map = parse_class_map(args.classes, args.mask_format)
    path = write_segmentation_tfds(
        args.images_dir,
        args.masks_dir,
        class_map,
        out_dir=args.out_dir,
        name=args.name,
        val_images_dir=args.val_images_dir,
        val_masks_dir=args.val_masks_dir,
        test_images_dir=args.test_images_dir,
        test_masks_dir=args.test_masks_dir,
        keep_orientation=args.keep_orientation,
        shard_examples=args.shard_examples,
        on_unpaired=args.on_unpaired,
        force=args.force,
    )
    info = load_segmentation_tfds_info(path)
    print(f"wrote {path}")
    for split, count in info.splits.items():
        shards = info.shards[split]
        print(f"  {split:<10} {count} examples, {shards} shard{'s' if shards > 1 else ''}")
    print(
        f"  classes: {class_map.describe()}{'; keep orientation' if info.keep_orientation else ''}"
    )
    print(
        f'use it: tfds.load("{info.name}", data_dir="{info.data_dir}", split="train")\n'
        f"    or: micronet-tf train --dataset {path} --out RUN ..."
    )


# -- end dataset ---------------------------------------------------------------------------


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from micronet_tf.training.runs import evaluate_on_benchmark, evaluate_on_folders

    _check_data_flags(args, "evaluate")
    if args.dataset is not None:
        metrics = evaluate_on_benchmark(
            args.model, args.dataset, split=args.split, out_dir=args.out, force=args.force
        )
    else:
        metrics = evaluate_on_folders(
            args.model,
            args.images,
            args.masks,
            out_dir=args.out,
            classes=args.classes,
            mask_format=args.mask_format,
            force=args.force,
        )
    for name, value in metrics["per_class_iou"].items():
        error = metrics["area_fraction_mean_abs_error"][name]
        print(f"IoU {name:<12} {value:.4f}   area fraction error {error:.4f}")
    print(
        f"mean IoU ({', '.join(metrics['mean_iou_classes'])}): {metrics['mean_iou']:.4f}; "
        f"written to {args.out}"
    )


def _cmd_demo(args: argparse.Namespace) -> None:
    from micronet_tf.training.runs import check_training_arguments, run_demo

    weights = args.encoder_weights
    weights = weights if weights == "auto" else _weights_argument(weights)
    check_training_arguments(
        epochs=args.epochs,
        crop=args.crop,
        cli=True,
        encoder_weights=None if weights == "auto" else weights,
    )
    run_demo(
        args.out,
        dataset=args.dataset,
        architecture=args.architecture,
        encoder=args.encoder,
        encoder_weights=weights,
        epochs=args.epochs,
        crop=args.crop,
    )


def _report_failures(failures: dict[str, str]) -> None:
    if failures:
        listing = "\n  ".join(f"{path}: {why}" for path, why in failures.items())
        raise _BatchFailed(f"{len(failures)} file(s) failed:\n  {listing}")


class _BatchFailed(ValueError):
    """Some files of a batch command failed (the others were processed)."""


def _cmd_predict(args: argparse.Namespace) -> None:
    from micronet_tf.file_commands import predict_files

    _report_failures(
        predict_files(
            args.model,
            args.inputs,
            args.out,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            engine=args.engine,
            activation=args.activation,
            force=args.force,
            mixed_precision=args.mixed_precision,
            jit_compile=args.jit_compile,
            databar=args.databar,
            pixel_size=args.pixel_size,
            unit=args.unit,
            tta=args.tta,
            uncertainty=args.uncertainty,
            keep_orientation=args.keep_orientation or None,
            normalization=args.normalization or "auto",
        )
    )


def _cmd_measure(args: argparse.Namespace) -> None:
    from micronet_tf.file_commands import measure_files

    _report_failures(
        measure_files(
            args.masks,
            args.out,
            class_names=args.classes,
            truth_dir=args.truth,
            pixel_size=args.pixel_size,
            unit=args.unit,
            thickness=args.thickness or (),
            force=args.force,
            confidence=args.confidence,
            bootstrap=args.bootstrap,
            block_size=args.block_size,
            report=args.report,
        )
    )


def _cmd_export(args: argparse.Namespace) -> None:
    from micronet_tf.encoders import list_encoders

    if args.out.exists() and not args.force:
        raise FileExistsError(
            f"--out {str(args.out)!r} exists: pass --force to replace it, or another --out"
        )

    if str(args.model) in list_encoders():
        from micronet_tf.encoders import get_encoder

        model = get_encoder(str(args.model), weights=_weights_argument(args.weights))
    else:
        from micronet_tf.saving import load_model

        if not args.model.is_file():
            raise FileNotFoundError(
                f"model {str(args.model)!r}: expected a .keras file or an "
                "encoder name (see `micronet-tf list`)"
            )
        model = load_model(args.model, compile=False)
    if args.format == "onnx":
        from micronet_tf.export import export_onnx

        export_onnx(
            model,
            args.out,
            opset=args.opset,
            preprocessing=args.with_preprocessing,
            input_dtype=args.input_dtype,
            converter=args.converter,
        )
    elif args.format == "savedmodel":
        from micronet_tf.serving import export_savedmodel

        export_savedmodel(model, args.out, overwrite=args.force)
        print(
            f"signatures: serving_default (uint8 images), serving_uint16; outputs "
            f"probabilities, mask. Serve it: docker run -p 8501:8501 -v "
            f"{args.out.resolve()}:/models/micronet/1 -e MODEL_NAME=micronet tensorflow/serving"
        )
    else:
        from micronet_tf.bioimageio import export_bioimageio

        export_bioimageio(model, args.out, name=args.name, opset=args.opset or 17)
    print(f"{args.model} -> {args.out}")


def _cmd_encoder_demo(args: argparse.Namespace) -> None:
    from micronet_tf.encoder_demo import run_encoder_demo

    run_encoder_demo(
        encoder=args.encoder,
        out_dir=args.out,
        image=args.image,
        checkpoint=args.checkpoint,
        reference=not args.no_reference,
    )


def _cmd_zoo(args: argparse.Namespace) -> None:
    from micronet_tf import zoo

    if args.zoo_command == "list":
        for entry in zoo.current_manifest().entries:
            if args.available and not entry.available:
                continue
            acc = entry.accuracy.get("top1")
            print(
                f"{entry.key:<40} {'available' if entry.available else 'source only':<12} "
                f"top-1 {acc if acc is not None else '-'}"
            )
    elif args.zoo_command == "info":
        import json

        print(json.dumps(zoo.model_info(args.name), indent=1))
    else:
        trust = args.trust_unverified or None
        if args.kind == "keras":  # published, else NASA's checkpoint converted into the cache
            from micronet_tf.encoders import zoo_encoder
            from micronet_tf.weights import zoo_weights_file

            path = zoo_weights_file(args.name, zoo_encoder, trust_unverified=trust)
        elif args.kind == "onnx":  # published, else exported into the cache
            from micronet_tf.export import zoo_onnx_file

            path = zoo_onnx_file(args.name, trust_unverified=trust)
        else:
            path = zoo.download(args.name, "source", trust_unverified=trust)
        print(path)


def _add_encoder_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encoder-option",
        action="append",
        metavar="KEY=VALUE",
        help="an encoder build option (repeatable); see `micronet-tf list`",
    )


def _add_data_flags(parser: argparse.ArgumentParser, classes_help: str | None = None) -> None:
    parser.add_argument(
        "--dataset",
        help="a benchmark set (micronet_segmentation/super3, ...) "
        "or a folder written by `micronet-tf dataset`",
    )
    parser.add_argument("--images", type=Path, help="folder of your micrographs")
    parser.add_argument(
        "--masks", type=Path, help="their label images (a.tif with a.png or a_mask.tif)"
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        metavar="NAME[:R,G,B]",
        help=classes_help
        or "the class map: matrix secondary:0,0,255 "
        "tertiary:255,0,0 (colour masks; a name without a colour is the "
        "rest), or names of mask values 0, 1, ... with --mask-format index",
    )
    parser.add_argument(
        "--mask-format",
        choices=["rgb", "index"],
        help="default: rgb when --classes gives colours, else index",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micronet-tf",
        description="MicroNet microscopy encoders and segmentation models in Keras 3, with "
        "PyTorch parity.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error (also accepted after the command)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's start-up log lines (also accepted after the command)",
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
    convert.add_argument(
        "--classifier",
        action="store_true",
        help="also convert the classification head (fc, classifier, ...)",
    )
    convert.add_argument("--force", action="store_true", help="replace an existing --out file")
    _add_encoder_option(convert)
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
    whole.add_argument(
        "--activation",
        default="auto",
        choices=["auto", "identity", "sigmoid", "softmax"],
        help="output activation; auto = as the original (sigmoid for one class, "
        "softmax otherwise); identity = logits",
    )
    whole.add_argument("--force", action="store_true", help="replace an existing --out file")
    _add_encoder_option(whole)
    whole.set_defaults(func=_cmd_convert_model)

    train = commands.add_parser(
        "train",
        help="train a segmentation model with the paper's recipe: on your own "
        "labelled micrographs (--images, --masks, --classes) or a benchmark set (--dataset)",
    )
    _add_data_flags(train)
    train.add_argument(
        "--keep-orientation",
        action="store_true",
        help="only horizontal flips (layered cross-sections, as EBC)",
    )
    train.add_argument("--val-images", type=Path, help="validation micrographs")
    train.add_argument("--val-masks", type=Path, help="their masks")
    train.add_argument(
        "--val-fraction",
        type=float,
        help="hold out this fraction of each training image for validation: a "
        "full-height strip of its right-most columns, never seen by training "
        "crops (default 0.2 when no --val-images)",
    )
    train.add_argument("--architecture", default=None, help="default Unet (or --init's)")
    train.add_argument("--encoder", default=None, help="default resnet50 (or --init's)")
    train.add_argument(
        "--encoder-weights",
        default=None,
        help="PyTorch checkpoint / .weights.h5 of the encoder, or none",
    )
    train.add_argument(
        "--init",
        type=Path,
        help="fine-tune this trained .keras model (a new head if the classes differ)",
    )
    train.add_argument("--out", required=True, type=Path, help="run folder (resumes if it exists)")
    train.add_argument("--patience", type=int, default=30)
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epoch cap (default: until the two-stage schedule stops)",
    )
    train.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="default: the whole training set (the paper's full batch)",
    )
    train.add_argument("--crop", type=int, default=512)
    train.add_argument(
        "--repeats", type=int, default=1, help="augmented copies of each training image per epoch"
    )
    train.add_argument("--lr", type=float, default=2e-4, help="first-stage learning rate")
    train.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "mirrored", "multiworker", "one_device"],
        help="multiworker: one process per machine, each with its TF_CONFIG",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic ops and augmentation order: the same --seed gives the same "
        "log.csv and weights on the same machine (slower, see the README)",
    )
    _add_compute_flags(train)
    _add_normalization_flag(train, "default: dtype (with --init: the model's); stored in the model")
    train.add_argument(
        "--checkpoint-every",
        default="5min",
        metavar="N|Mmin",
        help="epochs (5) or minutes (10min) between resumable checkpoints "
        "(default 5min; one is also written at the end)",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="replace the run in --out (a different or finished one)",
    )
    train.set_defaults(func=_cmd_train)

    # -- pretrain ----------------------------------------------------------------------
    pretrain = commands.add_parser(
        "pretrain",
        help="MicroNet-style pre-training: train an encoder as a classifier of "
        "class folders (DATA/<class>/*.tif|png|jpg)",
    )
    pretrain.add_argument(
        "--data",
        dest="data_dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder with one sub-folder of micrographs per class",
    )
    pretrain.add_argument("--encoder", default="resnet50")
    pretrain.add_argument(
        "--out",
        dest="out_dir",
        required=True,
        type=Path,
        metavar="RUN",
        help="run folder (resumes if it holds this run)",
    )
    pretrain.add_argument(
        "--encoder-weights",
        default=None,
        help="start from these encoder weights (NASA checkpoint, zoo name or "
        ".weights.h5); default: random",
    )
    pretrain.add_argument(
        "--val-per-class",
        type=int,
        default=50,
        help="validation images per class (at most half of a small class)",
    )
    pretrain.add_argument("--size", type=int, default=224, help="crop size in pixels")
    pretrain.add_argument("--batch-size", type=int, default=32)
    pretrain.add_argument(
        "--epochs", type=int, default=None, help="epoch cap (default: until early stopping)"
    )
    pretrain.add_argument(
        "--patience",
        type=int,
        default=30,
        help="epochs without a better validation top-1 before stopping",
    )
    pretrain.add_argument(
        "--lr", type=float, default=0.1, help="initial SGD learning rate (x0.9 every 30 epochs)"
    )
    pretrain.add_argument(
        "--strategy", default="auto", choices=["auto", "mirrored", "multiworker", "one_device"]
    )
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument(
        "--checkpoint-every",
        default="5min",
        metavar="N|Mmin",
        help="epochs (5) or minutes (10min) between resumable checkpoints",
    )
    pretrain.add_argument(
        "--force",
        action="store_true",
        help="replace the run in --out (a different or finished one)",
    )
    pretrain.set_defaults(func=_cmd_pretrain)
    # -- end pretrain ------------------------------------------------------------------

    evaluate = commands.add_parser(
        "evaluate",
        help="per-class IoU, accuracy maps, area-fraction errors and training "
        "curves, on your labelled folders or a benchmark split",
    )
    evaluate.add_argument(
        "model", type=Path, help="a run folder (uses best.keras) or a .keras file"
    )
    _add_data_flags(evaluate, classes_help="default: the class map the model was trained with")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--out", required=True, type=Path)
    evaluate.add_argument(
        "--force",
        action="store_true",
        help="write into an --out folder that holds files evaluate did not write",
    )
    evaluate.set_defaults(func=_cmd_evaluate)

    # -- dataset -----------------------------------------------------------------------
    dataset = commands.add_parser(
        "dataset",
        help="write labelled image / mask folders as a TFDS dataset (sharded "
        "TFRecords with the class map) for large or multi-machine training",
    )
    dataset.add_argument(
        "--images", dest="images_dir", required=True, type=Path, help="training images"
    )
    dataset.add_argument(
        "--masks",
        dest="masks_dir",
        required=True,
        type=Path,
        help="their masks, paired by name (a.tif with a_mask.tif or a.png)",
    )
    dataset.add_argument("--val-images", dest="val_images_dir", type=Path)
    dataset.add_argument("--val-masks", dest="val_masks_dir", type=Path)
    dataset.add_argument("--test-images", dest="test_images_dir", type=Path)
    dataset.add_argument("--test-masks", dest="test_masks_dir", type=Path)
    dataset.add_argument(
        "--classes",
        nargs="+",
        required=True,
        help="class names in mask order, with colours for colour masks: "
        "matrix secondary:0,0,255 tertiary:255,0,0 (a name without a colour "
        "is the rest); index masks: background oxide crack",
    )
    dataset.add_argument(
        "--mask-format",
        choices=["rgb", "index"],
        default=None,
        help="default: rgb when --classes gives colours, else index",
    )
    dataset.add_argument(
        "--keep-orientation",
        action="store_true",
        help="record that augmentation must not rotate the images (layered "
        "cross-sections such as coatings)",
    )
    dataset.add_argument(
        "--name", default="micrographs", help="TFDS dataset name (default: micrographs)"
    )
    dataset.add_argument(
        "--out", dest="out_dir", required=True, type=Path, help="data_dir to write NAME/1.0.0/ into"
    )
    dataset.add_argument(
        "--shard-examples",
        type=int,
        default=None,
        metavar="N",
        help="at most N examples per shard (default: shards of ~100 MiB)",
    )
    dataset.add_argument(
        "--on-unpaired",
        default="error",
        choices=["error", "skip"],
        help="images without a mask or masks without an image: fail (default) or leave them out",
    )
    dataset.add_argument(
        "--force", action="store_true", help="replace an existing --out/NAME/1.0.0"
    )
    dataset.set_defaults(func=_cmd_dataset)
    # -- end dataset -------------------------------------------------------------------

    predict = commands.add_parser(
        "predict", help="segment micrographs of any size (tiled); index masks + overlays"
    )
    predict.add_argument("model", type=Path, help=".keras file (or .onnx with --engine onnx)")
    predict.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    predict.add_argument("--out", required=True, type=Path)
    predict.add_argument("--tile", type=int, default=512)
    predict.add_argument("--overlap", type=int, default=64)
    predict.add_argument("--batch-size", type=int, default=4)
    predict.add_argument("--engine", default="keras", choices=["keras", "onnx"])
    predict.add_argument(
        "--activation",
        default="auto",
        choices=["auto", "sigmoid", "softmax", "exp", "none"],
        help="turn model outputs into probabilities; auto: from a Keras "
        "model's output layer (logits -> sigmoid / softmax), ONNX as it is",
    )
    predict.add_argument(
        "--databar",
        default="auto",
        metavar="auto|none|ROWS",
        help="the instrument's information band at the bottom, left out of prediction: auto "
        "(from the file's metadata, else detected), none, or its height in rows",
    )
    predict.add_argument(
        "--pixel-size",
        type=float,
        help="physical size of one pixel, recorded in the masks for measure (default: read "
        "from the file's metadata: FEI, Zeiss, OME-TIFF, ImageJ, TIFF resolution in cm)",
    )
    predict.add_argument("--unit", default="um", help="unit of --pixel-size (um, nm, ...)")
    predict.add_argument(
        "--force", action="store_true", help="replace files in --out that predict did not write"
    )
    predict.add_argument(
        "--tta",
        choices=["flips", "d4"],
        help="test-time augmentation: average 4 flips or the 8 flips / 90-degree rotations "
        "(default: none)",
    )
    predict.add_argument(
        "--uncertainty",
        choices=["variance", "entropy"],
        help="also write <name>_uncertainty.tif (float32): variance across the --tta views, "
        "or the normalised predictive entropy (works without --tta)",
    )
    predict.add_argument(
        "--keep-orientation",
        action="store_true",
        help="--tta with the identity and horizontal flip only (default: as the model was trained)",
    )
    _add_normalization_flag(predict, "default: as the model was trained (stored in it)")
    _add_compute_flags(predict)
    predict.set_defaults(func=_cmd_predict)

    measure = commands.add_parser(
        "measure", help="objects, sizes and area fractions of class-index masks"
    )
    measure.add_argument(
        "masks",
        nargs="+",
        help="class-index masks (or Super colour masks): files, folders or globs",
    )
    measure.add_argument("--out", required=True, type=Path)
    measure.add_argument(
        "--truth", help="folder of true masks, paired by name (a_mask.png with a_mask.tif or a.tif)"
    )
    measure.add_argument(
        "--thickness",
        nargs="+",
        metavar="CLASS",
        help="layer classes whose thickness to measure (the paper's oxide method), e.g. oxide",
    )
    measure.add_argument("--classes", nargs="+", help="class names, index 0 first")
    measure.add_argument(
        "--pixel-size",
        type=float,
        help="physical size of one pixel, for every mask (default: the size predict recorded "
        "in each mask, else pixels)",
    )
    measure.add_argument("--unit", default="um", help="unit of --pixel-size")
    measure.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="level of every interval, between 0 and 1 (default 0.95)",
    )
    measure.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        metavar="RESAMPLES",
        help="bootstrap resamples for the size intervals (default 2000, at least 100)",
    )
    measure.add_argument(
        "--block-size",
        type=int,
        metavar="PX",
        help="side of the blocks whose area fractions give one image's interval (default: "
        "128 px or twice the largest median object diameter, whichever is larger)",
    )
    measure.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="skip the per-image panels, summary.png and report.html",
    )
    measure.add_argument(
        "--force", action="store_true", help="replace files in --out that measure did not write"
    )
    measure.set_defaults(func=_cmd_measure)

    export = commands.add_parser(
        "export",
        help="export a model to ONNX, a TensorFlow SavedModel (TF Serving) or a "
        "bioimage.io package",
    )
    export.add_argument("model", type=Path, help="a .keras file, or an encoder name")
    export.add_argument("--format", required=True, choices=["onnx", "savedmodel", "bioimageio"])
    export.add_argument(
        "--out", required=True, type=Path, help="FILE.onnx, a SavedModel folder, or FILE.zip"
    )
    export.add_argument(
        "--opset",
        type=int,
        help="ONNX opset (default: 17; with --converter tf2onnx, tf2onnx's own)",
    )
    export.add_argument(
        "--converter",
        default="auto",
        choices=["auto", "direct", "tf2onnx"],
        help="ONNX converter: direct (layer by layer, fast), tf2onnx, or auto (direct when "
        "it supports every layer, else tf2onnx with a warning)",
    )
    export.add_argument(
        "--with-preprocessing",
        action="store_true",
        help="ONNX takes raw RGB (--input-dtype) and normalises it in the graph as the model "
        "was trained to (dtype range or per-image percentiles, then ImageNet mean / std)",
    )
    export.add_argument(
        "--input-dtype",
        default="uint8",
        choices=["uint8", "uint16"],
        help="with --with-preprocessing: the raw images' type (default: uint8)",
    )
    export.add_argument("--weights", help="encoder weights, when MODEL is an encoder name")
    export.add_argument("--name", help="bioimage.io model name (default: the model's)")
    export.add_argument("--force", action="store_true", help="replace an existing --out file")
    export.set_defaults(func=_cmd_export)

    demo = commands.add_parser(
        "demo", help="end to end on CPU: Super-3 data, a short training run, test IoU, report"
    )
    demo.add_argument("--out", type=Path, default=Path("demo_out"))
    demo.add_argument("--dataset", default="micronet_segmentation/super3")
    demo.add_argument("--architecture", default="Unet")
    demo.add_argument("--encoder", default="resnet18")
    demo.add_argument(
        "--encoder-weights",
        default="auto",
        help="auto (default): the zoo's MicroNet weights for --encoder when they "
        "can be had (cache, $MICRONET_TF_ZOO_URL mirror, NASA), else random; "
        "none: random; or a weights file / zoo name",
    )
    demo.add_argument("--epochs", type=int, default=40)
    demo.add_argument("--crop", type=int, default=256)
    demo.set_defaults(func=_cmd_demo)

    demo = commands.add_parser(
        "encoder-demo",
        help="convert an encoder checkpoint, run it on a micrograph, compare with PyTorch",
    )
    demo.add_argument("--encoder", default="resnet50")
    demo.add_argument(
        "--checkpoint",
        type=Path,
        help="NASA checkpoint to convert (default: a random one in NASA's format)",
    )
    demo.add_argument(
        "--image",
        type=Path,
        help="micrograph (default: a Super1 image from MICRONET_TF_DATA, "
        "../shared, or downloaded from NASA's repository)",
    )
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="report folder")
    demo.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the PyTorch comparison (needs no torch then, but --checkpoint "
        "must be a Keras .weights.h5 file)",
    )
    demo.set_defaults(func=_cmd_encoder_demo)

    zoo = commands.add_parser("zoo", help="the MicroNet model zoo: list, info, download")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", required=True)
    zoo_list = zoo_commands.add_parser("list", help="entries as name@version")
    zoo_list.add_argument(
        "--available", action="store_true", help="only encoders micronet-tf can build"
    )
    zoo_commands.add_parser("info", help="an entry's manifest record").add_argument("name")
    zoo_download = zoo_commands.add_parser("download", help="a verified copy in the cache")
    zoo_download.add_argument("name")
    zoo_download.add_argument("--kind", default="keras", choices=["keras", "onnx", "source"])
    zoo_download.add_argument(
        "--trust-unverified",
        action="store_true",
        help="allow NASA files without a pinned sha256 (recorded on first download)",
    )
    zoo.set_defaults(func=_cmd_zoo)
    return parser


def _in_flags(message: str, parser: argparse.ArgumentParser, command: str) -> str:
    """Python argument names in a library error (``tile=100``, ``architecture=``) -> the
    command's flags (``--tile 100``, ``--architecture``)."""
    import re

    sub = next(
        (
            a.choices[command]
            for a in parser._actions
            if isinstance(a, argparse._SubParsersAction) and command in a.choices
        ),
        None,
    )
    if sub is None:
        return message
    aliases = {"initial_lr": "lr", "encoder_weights": "encoder_weights"}
    flags = {
        a.dest: a.option_strings[-1]
        for a in sub._actions
        if a.option_strings and a.option_strings[-1].startswith("--")
    }
    for dest, flag in flags.items():
        for name in {dest, *[k for k, v in aliases.items() if v == dest]}:
            message = re.sub(rf"(?<![\w.-]){re.escape(name)}=(?=\S)", f"{flag} ", message)
            message = re.sub(rf"(?<![\w.-]){re.escape(name)}=(?!\S)", flag, message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, verbose = "--debug" in argv, "--verbose" in argv
    args = parser.parse_args([a for a in argv if a not in ("--debug", "--verbose")])
    if not verbose and "TF_CPP_MIN_LOG_LEVEL" not in os.environ and args.command != "zoo":
        _start_tensorflow_quietly()
    shown = warnings.formatwarning
    if not debug:  # "micronet-tf predict: warning: ...", not a source line of ours
        warnings.formatwarning = lambda message, category, *_, **__: (
            f"micronet-tf {args.command}: warning: {message}\n"
        )
    try:
        args.func(args)
    except _user_errors() as error:
        if debug:
            raise
        message = _in_flags(str(error), parser, args.command)
        print(f"micronet-tf {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = shown
    return 0


if __name__ == "__main__":
    sys.exit(main())
