"""The PyTorch originals (segmentation_models_pytorch encoders), for parity checks and demos.

Import this module before TensorFlow, or run it as a subprocess
(``python -m micronet_tf.torch_reference``): importing torchvision after TensorFlow crashes
the process. It imports nothing from TensorFlow or Keras.

Families whose reference is not simply smp's encoder / a torchvision classifier have a module
here (``micronet_tf/torch_reference/<family>.py``) with ``build_classifier(name, classes,
**options)`` and, optionally, ``build_encoder(name, depth, output_stride, **options)``: plain
constructors; seeding, random BatchNorm statistics and eval mode are applied here.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.encoders import encoders as smp_encoders


def randomize_batchnorm_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Randomise, in place, what initialisation leaves constant: BatchNorm affine parameters and
    running statistics, GroupNorm affine parameters, and convolution biases.

    Fresh norm layers are the identity in eval mode and smp zeroes decoder biases, which hides
    layout mistakes (a transposed or mis-assigned tensor); random values make every one count.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape):  # in [0.5, 1.5): scales and variances
        return torch.rand(shape, generator=generator) + 0.5

    def normal(shape):
        return torch.randn(shape, generator=generator) * 0.2

    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                shape = layer.running_mean.shape
                layer.weight.copy_(uniform(shape))
                layer.bias.copy_(normal(shape))
                layer.running_mean.copy_(normal(shape))
                layer.running_var.copy_(uniform(shape))
            elif isinstance(layer, torch.nn.GroupNorm) and layer.affine:
                layer.weight.copy_(uniform(layer.weight.shape))
                layer.bias.copy_(normal(layer.bias.shape))
            elif isinstance(layer, torch.nn.modules.conv._ConvNd) and layer.bias is not None:
                layer.bias.copy_(normal(layer.bias.shape))
    return module


# smp encoder name prefix -> family reference module (micronet_tf/torch_reference/<module>.py).
_FAMILY_MODULES = {
    "se_": "senet",
    "senet": "senet",
    "dpn": "dpn",
    "efficientnet-": "efficientnet",
    "inceptionv4": "inceptionv4",
    "inceptionresnetv2": "inceptionresnetv2",
    "xception": "xception",
}


def _family_module(name: str) -> ModuleType | None:
    module = next((m for prefix, m in _FAMILY_MODULES.items() if name.startswith(prefix)), None)
    return None if module is None else importlib.import_module(f"{__name__}.{module}")


def build_encoder(
    name: str,
    *,
    depth: int = 5,
    output_stride: int = 32,
    seed: int = 0,
    randomize_bn: bool = True,
    **options,
) -> torch.nn.Module:
    """smp's encoder ``name`` (or the family's own reference, with its ``options``) with
    seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    family = _family_module(name)
    if family is not None and hasattr(family, "build_encoder"):
        encoder = family.build_encoder(name, depth=depth, output_stride=output_stride, **options)
    else:
        if options:
            raise ValueError(f"smp's encoder {name!r} takes no reference options {options}")
        encoder = smp.encoders.get_encoder(
            name, depth=depth, weights=None, output_stride=output_stride
        )
    if randomize_bn:
        randomize_batchnorm_(encoder, seed)
    return encoder.eval()


def _torchvision_classifier(base: type, params: dict, classes: int) -> torch.nn.Module:
    """The torchvision network an smp encoder class derives from, with its head."""
    import torchvision.models as tvm

    if base is tvm.VGG:
        layers = tvm.vgg.make_layers(params["config"], batch_norm=params["batch_norm"])
        return tvm.VGG(layers, num_classes=classes)
    return base(num_classes=classes, **params)


_TORCHVISION_BASES = ("ResNet", "DenseNet", "MobileNetV2", "VGG")


def build_classifier(
    name: str, classes: int, *, seed: int = 0, randomize_bn: bool = True, **options
) -> torch.nn.Module:
    """The classification network behind smp's encoder ``name``, as NASA pre-trained it on
    MicroNet (torchvision ResNet / DenseNet / MobileNetV2 / VGG with their heads, or the
    family module's reference)."""
    import torchvision.models as tvm

    torch.manual_seed(seed)
    family = _family_module(name)
    if family is not None:
        model = family.build_classifier(name, classes, **options)
    else:
        entry = smp_encoders[name]
        params = {k: v for k, v in entry["params"].items() if k != "out_channels"}
        bases = [
            getattr(tvm, b)
            for b in _TORCHVISION_BASES
            if issubclass(entry["encoder"], getattr(tvm, b))
        ]
        if not bases:
            raise NotImplementedError(f"no reference classifier for encoder family of {name!r}")
        model = _torchvision_classifier(bases[0], params, classes)
    if randomize_bn:
        randomize_batchnorm_(model, seed)
    return model.eval()


def build_segmentation_model(
    architecture: str,
    encoder: str,
    *,
    classes: int = 1,
    seed: int = 0,
    randomize_bn: bool = True,
    **decoder_kwargs,
) -> torch.nn.Module:
    """smp's ``architecture`` on ``encoder`` with seeded random weights, eval mode, logits out."""
    torch.manual_seed(seed)
    model = smp.create_model(
        architecture,
        encoder_name=encoder,
        encoder_weights=None,
        classes=classes,
        **decoder_kwargs,
    )
    if randomize_bn:
        randomize_batchnorm_(model, seed)
    return model.eval()


def run_nhwc(module: torch.nn.Module, images: np.ndarray) -> list[np.ndarray]:
    """Run ``module`` on channels-last float images; return its output(s) channels-last."""
    with torch.no_grad():
        outputs = module(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))))
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
    return [o.numpy().transpose(0, 2, 3, 1) if o.ndim == 4 else o.numpy() for o in outputs]


def save_nasa_checkpoint(module: torch.nn.Module, path: str | Path) -> Path:
    """Write ``module``'s state dict as NASA publishes MicroNet encoders (a plain state dict)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), path)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m micronet_tf.torch_reference",
        description="Run smp's encoder (weights from --load, else seeded random ones written "
        "to --save in NASA's format) and write its features on --input (.npy, NHWC float32) "
        "to --features (.npz).",
    )
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--seed", type=int, default=0)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--load", type=Path, help="a NASA-format checkpoint to load")
    source.add_argument("--save", type=Path, help="where to write the random checkpoint")
    parser.add_argument("--input", type=Path)
    parser.add_argument("--features", type=Path)
    args = parser.parse_args(argv)
    encoder = build_encoder(args.encoder, seed=args.seed, randomize_bn=args.load is None)
    if args.load is not None:
        state = torch.load(args.load, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        encoder.load_state_dict(state)  # smp's encoders drop their head keys themselves
    else:
        save_nasa_checkpoint(encoder, args.save)
    if args.input is not None and args.features is not None:
        features = run_nhwc(encoder, np.load(args.input))
        np.savez(args.features, *features)


if __name__ == "__main__":
    main()
