"""Mixed precision and XLA: micronet-tf's compute switches against PyTorch's autocast, in one run.

    python benchmarks/bench_compute.py [--modes float32 bfloat16 float16 xla] [--batch 8]

U-Net resnet18 with the fidelity recipe's 3 classes (same converted weights on both sides): one
training step with NASA's DiceBCE loss and Adam as PyTorch computes it (micronet-tf's
``TorchAdam``, compiled as ``train_segmentation`` compiles it) at ``--batch`` x ``--crop``²,
and inference of one ``--size``² image through micronet-tf's prediction path
(``compute.inference_function``), per mode: ``float32``; ``bfloat16`` (Keras
``mixed_bfloat16``, float32 weights; PyTorch ``torch.autocast`` bfloat16); ``float16``
(``mixed_float16`` with loss scaling; ``torch.autocast`` float16 with a ``GradScaler``);
``xla`` (float32 with ``jit_compile=True``; PyTorch has no counterpart here and runs float32).
Both frameworks run on the device each picks (a GPU when there is one, else the CPU with
``--threads``). Prints median seconds, Keras/PyTorch per mode, each mode against its
framework's float32, and how far each mode's inference strays from float32 (max |difference|
of the logits).
"""

from __future__ import annotations

import argparse
import os

# PyTorch (torchvision, through smp) must be imported before TensorFlow.
import segmentation_models_pytorch  # noqa: F401, I001
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import micronet_tf  # noqa: E402, F401  (before TensorFlow: turns its oneDNN CPU kernels on)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _original import dice_bce_loss  # noqa: E402
from _super1 import CLASSES, initial_unet, keras_unet  # noqa: E402
from _timing import median_seconds, same_threads  # noqa: E402

from micronet_tf.compute import inference_function, loss_scaled, with_precision  # noqa: E402
from micronet_tf.training import DiceBCELoss, TorchAdam  # noqa: E402
from micronet_tf.training.train import output_activation  # noqa: E402

MODES = ("float32", "bfloat16", "float16", "xla")
_AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}
Timings = tuple[float, float, np.ndarray]  # step seconds, inference seconds, logits


def torch_timings(reference, mode: str, args, batch, masks, image) -> Timings:
    """(step s, inference s, logits) of the PyTorch model in ``mode`` on its device."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = initial_unet(args.seed).to(device)
    model.load_state_dict(reference.state_dict())
    dtype = _AUTOCAST.get(mode)
    x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).to(device)
    y = torch.from_numpy(np.ascontiguousarray(masks.transpose(0, 3, 1, 2))).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device) if mode == "float16" else None

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def step():
        optimizer.zero_grad()
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = dice_bce_loss(model(x).float(), y)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        sync()

    image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2))).to(device)

    def infer():
        with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            out = model(image_t).float()
        sync()
        return out

    model.eval()
    logits = infer().cpu().numpy().transpose(0, 2, 3, 1)
    t_infer = median_seconds(infer, args.warmup, args.repeats)
    model.train()
    t_step = median_seconds(step, args.warmup, args.repeats)
    return t_step, t_infer, logits


def keras_timings(reference, mode: str, args, batch, masks, image) -> Timings:
    """(step s, inference s, logits) of the micronet-tf model in ``mode``."""
    precision = mode if mode in _AUTOCAST else None
    jit = mode == "xla"
    model = with_precision(keras_unet(reference.state_dict()), precision)
    infer_fn = inference_function(model, jit_compile=jit)
    logits = np.asarray(infer_fn(image), np.float32)
    t_infer = median_seconds(lambda: infer_fn(image), args.warmup, args.repeats)
    model.compile(
        optimizer=loss_scaled(TorchAdam(1e-3), model),
        loss=DiceBCELoss(activation=output_activation(model)),
        jit_compile=jit,
    )
    t_step = median_seconds(lambda: model.train_on_batch(batch, masks), args.warmup, args.repeats)
    return t_step, t_infer, logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batch", type=int, default=8, help="training batch (default 8)")
    parser.add_argument("--crop", type=int, default=256, help="training crop side (256)")
    parser.add_argument("--size", type=int, default=512, help="inference image side (512)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each framework")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    same_threads(args.threads)
    gpus = tf.config.list_physical_devices("GPU")
    torch_device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    devices = f"PyTorch on {torch_device}, TensorFlow on {'GPU' if gpus else 'CPU'}"
    print(f"# {devices}", flush=True)

    rng = np.random.default_rng(args.seed)
    batch = rng.standard_normal((args.batch, args.crop, args.crop, 3), np.float32)
    labels = rng.integers(0, len(CLASSES), (args.batch, args.crop, args.crop))
    masks = np.eye(len(CLASSES), dtype=np.float32)[labels]
    image = rng.standard_normal((1, args.size, args.size, 3), np.float32)
    reference = initial_unet(args.seed)

    rows, logits = [], {}
    for mode in args.modes:
        torch_step, torch_infer, torch_logits = torch_timings(
            reference, mode, args, batch, masks, image
        )
        keras_step, keras_infer, keras_logits = keras_timings(
            reference, mode, args, batch, masks, image
        )
        logits[mode] = (torch_logits, keras_logits)
        rows.append((mode, torch_step, keras_step, torch_infer, keras_infer))
        print(f"  measured {mode}", flush=True)

    base = {mode: row for mode, *row in rows}.get("float32")
    print(
        f"\nU-Net resnet18, {len(CLASSES)} classes: Adam step {args.batch}x{args.crop}x{args.crop}"
        f", inference 1x{args.size}x{args.size}; median of {args.repeats} after {args.warmup}; "
        f"{devices} (torch {torch.__version__}, tensorflow {tf.__version__})"
    )
    print(
        "| mode | step PyTorch s | step Keras s | step Keras/PyTorch | inference PyTorch s "
        "| inference Keras s | inference Keras/PyTorch | Keras vs its float32 (step, inference) "
        "| PyTorch vs its float32 (step, inference) | max abs logit diff from float32 "
        "(PyTorch, Keras) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, t_step, k_step, t_inf, k_inf in rows:
        if base is None:
            own = torch_own = "-"
            drift = "-"
        else:
            b_t_step, b_k_step, b_t_inf, b_k_inf = base
            own = f"{k_step / b_k_step:.2f}, {k_inf / b_k_inf:.2f}"
            torch_own = f"{t_step / b_t_step:.2f}, {t_inf / b_t_inf:.2f}"
            torch_ref, keras_ref = logits["float32"]
            torch_out, keras_out = logits[mode]
            drift = (
                f"{np.abs(torch_out - torch_ref).max():.1e}, "
                f"{np.abs(keras_out - keras_ref).max():.1e}"
            )
        print(
            f"| {mode} | {t_step:.3f} | {k_step:.3f} | {k_step / t_step:.2f} | {t_inf:.3f} | "
            f"{k_inf:.3f} | {k_inf / t_inf:.2f} | {own} | {torch_own} | {drift} |"
        )


if __name__ == "__main__":
    main()
