"""Training fidelity: the same U-Net resnet18 trained on Super-1 in micronet-tf and in the
original PyTorch path, with the same data, augmentation, budget, initial weights and seeds; test
IoU (mean ± standard deviation over the seeds) and wall-clock time side by side, in one run.

    python benchmarks/bench_fidelity.py [--seeds 0 1 2] [--epochs 30] [--crop 256] [--batch 8]

For every seed both paths start from the same random initialisation (smp's
``Unet("resnet18")`` seeded, its state dict converted into the Keras model), see ``--repeats``
augmented ``--crop`` crops of each of Super-1's 10 training micrographs per epoch
(``micronet_tf.data.paper_augmentation``, the same albumentations transforms), in batches of
``--batch``, with Adam at ``--lr`` (``torch.optim.Adam``; micronet-tf's ``TorchAdam`` computes
the same update) for ``--epochs`` epochs, and keep the weights of the best
validation IoU (4 validation micrographs, whole). Loss: 0.7 x BCE + 0.3 x Dice with a sigmoid
on every channel (matrix / secondary / tertiary one-hot targets), on logits in both.

- micronet-tf: TFDS ``micronet_segmentation/super1`` (built here from the local copy),
  ``make_segmentation_pipeline``, ``train_segmentation`` (``DiceBCELoss``, ``SegmentationIoU``;
  the two-stage schedule's patience exceeds the budget, so the learning rate stays fixed), with
  ``deterministic=True`` (``--no-deterministic`` to switch it off): each seed's run repeats
  exactly.
- original: NASA's ``pmm.io.Dataset`` style (OpenCV decoding) in a DataLoader with
  ``--workers`` processes, the original ``DiceBCELoss`` and smp 0.2's pooled IoU metric
  (``benchmarks/_original.py``), best model by mean validation IoU per image, as NASA's
  training loop keeps it.

Model selection differs by design: micronet-tf keeps the epoch of best mean per-class IoU
(intersections and unions summed over the validation images), NASA's loop the epoch of best
mean per-image IoU of all channels pooled. Each path also tracks the other's criterion (ours in
the original's validation loop, from the same predictions; the original's in micronet-tf by a
callback that keeps every epoch's weights, its time left out of micronet-tf's training time,
and scores them after training), so the tables compare the paths under each criterion as well
as as shipped.

Test IoU: both best models segment the 4 Super-1 test micrographs (the same decoded, normalised
arrays) and one function scores them: sigmoid > 0.5 per channel, intersection and union summed
over the images, per class and their mean; "pooled" is the original metric over all channels.
Times are the training loops with their per-epoch validation (the TFDS build is listed apart).
The two paths take turns epoch by epoch: one epoch of the original runs before each of
micronet-tf's (inside a callback whose time is left out of micronet-tf's), so that both see the
machine as it is at that minute; on the 2-core VM this was written on, the same epoch took from
12 s to 20 s within an hour, which decided whole-run ratios when the paths ran one after the
other. micronet-tf's tf.data pipeline may fill its prefetch buffer (a batch or two of
augmentation, well under a second of CPU per epoch) while the original's epoch runs.
``--sequential`` trains each path whole instead, one after the other, alternating which goes
first from seed to seed.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

# PyTorch (torchvision, through smp) must be imported before TensorFlow.
import segmentation_models_pytorch as smp  # noqa: I001
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import micronet_tf  # noqa: E402  (before TensorFlow: turns its oneDNN CPU kernels on)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _original import dice_bce_loss, iou_score  # noqa: E402
from _super1 import (  # noqa: E402
    CLASSES,
    add_arguments,
    initial_unet,
    keras_unet,
    original_loaders,
    our_pipelines,
    score,
    test_set,
    tfds_builder,
)
from _timing import benchmark_root, same_threads  # noqa: E402


class PerClassIoU:
    """micronet-tf's selection criterion: per-class IoU of ``logit > 0`` with intersections
    and unions summed over the images (a class absent from both counts as 1), then the mean."""

    def __init__(self) -> None:
        self.intersection = np.zeros(len(CLASSES))
        self.union = np.zeros(len(CLASSES))

    def add(self, logits: np.ndarray, targets: np.ndarray) -> None:
        predicted, truth = logits > 0, targets > 0.5
        self.intersection += (predicted & truth).sum(axis=(0, 1, 2))
        self.union += (predicted | truth).sum(axis=(0, 1, 2))

    def mean(self) -> float:
        safe = np.maximum(self.union, 1)
        return float(np.where(self.union > 0, self.intersection / safe, 1.0).mean())


class PooledSelection(keras.callbacks.Callback):
    """NASA's selection criterion beside micronet-tf's run: keeps every epoch's weights (timed,
    so that the benchmark can leave that time out); :meth:`best` then scores them after
    training by the mean over the validation images of the IoU of all channels pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots, self.seconds = [], 0.0

    def on_epoch_end(self, epoch, logs=None) -> None:
        start = time.perf_counter()
        self.snapshots.append(self.model.get_weights())
        self.seconds += time.perf_counter() - start

    def best(self, model, val_ds) -> tuple[int, list]:
        """(1-based epoch, weights) of the best snapshot by NASA's criterion."""
        # One image at a time, as NASA's validation loader gives them.
        batches = [(np.array(x), np.array(y)) for x, y in val_ds.unbatch().batch(1)]
        scores = []
        for weights in self.snapshots:
            model.set_weights(weights)
            ious = []
            for x, y in batches:
                logits = torch.from_numpy(np.array(model(x, training=False)))
                ious.append(iou_score(torch.sigmoid(logits), torch.from_numpy(y)))
            scores.append(float(np.mean(ious)))
        epoch = int(np.argmax(scores))  # the first of equals, as NASA's strict ">" keeps it
        return epoch + 1, self.snapshots[epoch]


class OriginalRun:
    """NASA's loop, one epoch per :meth:`epoch` call: Adam, one pass over the loader, validation
    IoU, keep the best. ``seconds`` sums the epochs (model and loaders are built beforehand)."""

    def __init__(self, args, root: Path, seed: int) -> None:
        self.args, self.seed = args, seed
        self.model = initial_unet(seed)
        self.loader, self.val_loader = original_loaders(args, root, seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.best = {"pooled": (-1.0, None), "per_class": (-1.0, None)}
        self.epochs_done, self.seconds = 0, 0.0

    def epoch(self) -> None:
        start = time.perf_counter()
        model = self.model
        model.train()
        losses = []
        for x, y in self.loader:
            self.optimizer.zero_grad()
            loss = dice_bce_loss(model(x), y)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        model.eval()
        pooled, per_class = [], PerClassIoU()
        with torch.no_grad():
            for x, y in self.val_loader:
                logits = model(x)
                pooled.append(iou_score(torch.sigmoid(logits), y))
                per_class.add(logits.numpy().transpose(0, 2, 3, 1), y.numpy().transpose(0, 2, 3, 1))
        values = {"pooled": float(np.mean(pooled)), "per_class": per_class.mean()}
        for criterion, value in values.items():
            if value > self.best[criterion][0]:
                self.best[criterion] = (value, copy.deepcopy(model.state_dict()))
        seconds = time.perf_counter() - start
        self.seconds += seconds
        self.epochs_done += 1
        print(
            f"  original, seed {self.seed}, epoch {self.epochs_done}/{self.args.epochs}: loss "
            f"{np.mean(losses):.4f} val IoU {values['pooled']:.4f} (per class "
            f"{values['per_class']:.4f}), {seconds:.1f} s",
            flush=True,
        )

    def models(self) -> dict[str, torch.nn.Module]:
        """The best model by each criterion."""
        models = {}
        for criterion, (_, state) in self.best.items():
            self.model.load_state_dict(state)
            models[criterion] = copy.deepcopy(self.model).eval()
        return models


class Interleave(keras.callbacks.Callback):
    """Runs one epoch of the original before each of micronet-tf's epochs (timed, so that the
    benchmark leaves it out of micronet-tf's time): both paths then see the machine as it is
    at that minute, where a speed that drifts over an hour would favour one path's turn."""

    def __init__(self, original: OriginalRun) -> None:
        super().__init__()
        self.original, self.seconds = original, 0.0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        start = time.perf_counter()
        self.original.epoch()
        self.seconds += time.perf_counter() - start


def train_ours(args, builder, seed: int, work: Path, interleave: Interleave | None = None):
    """micronet-tf's path: tf.data pipeline, train_segmentation (with ``interleave``: one
    epoch of the original before each of its epochs, left out of its time)."""
    from micronet_tf.training import train_segmentation

    init_state = {k: v.clone() for k, v in initial_unet(seed).state_dict().items()}
    train_ds, val_ds = our_pipelines(args, builder, seed, deterministic=args.deterministic)
    pooled_selection = PooledSelection()
    start = time.perf_counter()
    result = train_segmentation(
        lambda: keras_unet(init_state),  # called in the strategy's scope (auto: the default)
        train_ds,
        val_ds,
        out_dir=work / f"run-{seed}",
        patience=args.epochs + 1,
        initial_lr=args.lr,
        max_epochs=args.epochs,
        strategy="auto",
        seed=seed,
        resume=False,
        tensorboard=False,
        verbose=2,
        deterministic=args.deterministic,
        callbacks=[pooled_selection] + ([interleave] if interleave else []),
    )
    seconds = time.perf_counter() - start - pooled_selection.seconds
    seconds -= interleave.seconds if interleave else 0.0
    print(
        f"  checkpointing (best weights, resumable state, final models): "
        f"{result.checkpoint_seconds:.1f} s = {100 * result.checkpoint_seconds / seconds:.1f}% "
        "of micronet-tf's training time",
        flush=True,
    )
    ours = micronet_tf.load_model(result.best_model, compile=False)
    nasa = micronet_tf.load_model(result.best_model, compile=False)
    nasa_epoch, nasa_weights = pooled_selection.best(nasa, val_ds)
    nasa.set_weights(nasa_weights)
    print(
        f"  best epoch (1-based): {result.best_epoch + 1} by mean per-class IoU, "
        f"{nasa_epoch} by mean per-image pooled IoU (NASA's criterion)",
        flush=True,
    )
    return {"per_class": ours, "pooled": nasa}, seconds


SELECTION = {"per_class": "per-class mean (micronet-tf)", "pooled": "per-image pooled (NASA)"}


def _run(seed: int, path: str, criterion: str, logits, masks, seconds: float) -> dict:
    return {
        "seed": seed,
        "path": path,
        "criterion": criterion,
        "result": score(logits, masks),
        "seconds": seconds,
    }


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def _score_original(seed: int, references: dict, seconds: float, images, masks) -> list:
    runs = []
    with torch.no_grad():
        for criterion, reference in references.items():
            logits = [
                reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()[0] for x in images
            ]
            logits = [out.transpose(1, 2, 0) for out in logits]
            runs.append(_run(seed, "original", criterion, logits, masks, seconds))
    return runs


def _score_ours(seed: int, ours: dict, seconds: float, images, masks) -> list:
    return [
        _run(
            seed,
            "micronet-tf",
            criterion,
            [np.asarray(model(x, training=False))[0] for x in images],
            masks,
            seconds,
        )
        for criterion, model in ours.items()
    ]


def run_seed(args, root: Path, builder, seed: int, work: Path, images, masks, first: str) -> list:
    """Both paths for ``seed``: interleaved epoch by epoch (the default), or one whole run
    after the other, ``first`` going first; then both scored on the test set."""
    original = OriginalRun(args, root, seed)
    if args.interleave:
        print(f"seed {seed}: both paths, one epoch of the original before each of ours", flush=True)
        ours, seconds = train_ours(args, builder, seed, work, Interleave(original))
    else:
        ours = None
        for path in (first, "micronet-tf" if first == "original" else "original"):
            print(f"seed {seed}: {path}", flush=True)
            if path == "original":
                for _ in range(args.epochs):
                    original.epoch()
            else:
                ours, seconds = train_ours(args, builder, seed, work)
    if original.epochs_done != args.epochs:
        raise RuntimeError(f"the original ran {original.epochs_done} of {args.epochs} epochs")
    return _score_original(seed, original.models(), original.seconds, images, masks) + (
        _score_ours(seed, ours, seconds, images, masks)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, epochs=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--no-deterministic",
        dest="deterministic",
        action="store_false",
        help="micronet-tf without deterministic ops and ordered augmentation",
    )
    parser.add_argument(
        "--sequential",
        dest="interleave",
        action="store_false",
        help="train each path whole, one after the other (which goes first alternates by seed), "
        "instead of interleaving their epochs",
    )
    args = parser.parse_args()
    same_threads(args.threads)
    root = benchmark_root()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        start = time.perf_counter()
        builder = tfds_builder(root, work)
        build_seconds = time.perf_counter() - start
        images, masks = test_set(builder)
        for index, seed in enumerate(args.seeds):
            # --sequential: alternate which path goes first (the original for even positions),
            # so that the machine's drift over an hour is not charged to one path.
            first = "original" if index % 2 == 0 else "micronet-tf"
            runs += run_seed(args, root, builder, seed, work, images, masks, first)

    steps = -(-10 * args.repeats // args.batch) * args.epochs
    print(
        f"\nSuper-1, Unet resnet18 (same random init per seed), {args.epochs} epochs x "
        f"{10 * args.repeats} augmented {args.crop}x{args.crop} crops, batch {args.batch} "
        f"({steps} steps), Adam lr {args.lr}, seeds {args.seeds}, {args.threads} threads, "
        f"micronet-tf deterministic={args.deterministic} (torch {torch.__version__}, smp "
        f"{smp.__version__}, tensorflow {tf.__version__}, {os.cpu_count()} cores)"
    )
    print(
        "| seed | path | selection | test IoU mean | matrix | secondary | tertiary | pooled | "
        "training s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        per = run["result"]["per_class"]
        print(
            f"| {run['seed']} | {run['path']} | {SELECTION[run['criterion']]} | "
            f"{run['result']['mean']:.4f} | {per['matrix']:.4f} | {per['secondary']:.4f} | "
            f"{per['tertiary']:.4f} | {run['result']['pooled']:.4f} | {run['seconds']:.0f} |"
        )
    seeds = sorted({run["seed"] for run in runs})
    print(f"\nmean ± standard deviation over {len(seeds)} seeds")
    print(
        "| path | selection | test IoU mean | matrix | secondary | tertiary | pooled | training s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    means = {}
    for path in ("micronet-tf", "original"):
        for criterion in SELECTION:
            results = [r for r in runs if r["path"] == path and r["criterion"] == criterion]
            means[path, criterion] = statistics.mean(r["result"]["mean"] for r in results)
            cells = [_mean_std([r["result"]["mean"] for r in results])]
            cells += [_mean_std([r["result"]["per_class"][c] for r in results]) for c in CLASSES]
            cells += [_mean_std([r["result"]["pooled"] for r in results])]
            cells += [f"{statistics.mean(r['seconds'] for r in results):.0f}"]
            print(f"| {path} | {SELECTION[criterion]} | " + " | ".join(cells) + " |")
    seconds = {(r["seed"], r["path"]): r["seconds"] for r in runs}
    ratios = [seconds[seed, "micronet-tf"] / seconds[seed, "original"] for seed in seeds]
    shipped = means["micronet-tf", "per_class"] / means["original", "pooled"]
    print(
        f"\nmicronet-tf / original, mean test IoU: as shipped (each its own selection) "
        f"{shipped:.3f}; both selecting by {SELECTION['pooled']} "
        f"{means['micronet-tf', 'pooled'] / means['original', 'pooled']:.3f}; both by "
        f"{SELECTION['per_class']} "
        f"{means['micronet-tf', 'per_class'] / means['original', 'per_class']:.3f}"
    )
    print(
        f"training time per seed {', '.join(f'{r:.2f}' for r in ratios)} (max {max(ratios):.2f}); "
        f"TFDS build, once: {build_seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
