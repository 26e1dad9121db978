"""Test-time augmentation on Super-3: test IoU and time per image without TTA, with "flips" and
with "d4", and how well the per-pixel uncertainty finds the wrong pixels, in one run.

    python benchmarks/bench_tta.py [--out bench_tta_out] [--model PATH] [--epochs 40]
                                   [--splits test test_ood] [--threads 2]

Without ``--model`` it first trains one model as ``micronet-tf demo`` does (U-Net resnet18 on
Super-3's single training image, 40 epochs of 8 crops of 256 per step; the zoo's MicroNet
encoder weights when they can be had, else random ones: it says which), into ``OUT/run``; a
second call with ``--model OUT/run/best.keras`` reuses it. Then every test image is segmented
with ``micronet_tf.predict`` (tiled as ``micronet-tf predict`` is: tile 512, overlap 64) once
per TTA mode. ``--activation sigmoid`` (default): each channel's logit through a sigmoid, as
micronet-tf training (BCE + Dice per channel) and ``micronet-tf evaluate`` read the model;
``auto`` is what ``predict`` does by default (softmax over several channels: the same argmax
masks without TTA, other probabilities to average and threshold).

IoU is computed as ``micronet-tf evaluate`` does (each class channel ``> 0.5`` against the true
class, pixels pooled over the split's images; mean over secondary and tertiary, the matrix
being the "rest" class). Uncertainty against error: a pixel is wrong when the argmax class
differs from the true class; AUROC of the uncertainty as a detector of wrong pixels (0.5:
chance), Spearman's rank correlation and the point-biserial (Pearson) correlation between
uncertainty and the 0/1 error, and the mean uncertainty on wrong and on right pixels.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

MODES = (None, "flips", "d4")
SUPER_NAMES = ("matrix", "secondary", "tertiary")
SPLIT_FOLDERS = {"test": "test", "test_ood": "different_test"}


def load_split(data: Path, split: str):
    """[(name, image, true index mask)] of one Super-3 split, from the benchmark folders."""
    from micronet_tf.data.benchmark import resolve_pointer
    from micronet_tf.measure import read_index_mask
    from micronet_tf.preprocessing import read_image

    folder = data / "Super3" / SPLIT_FOLDERS[split]
    annotations = data / "Super3" / f"{SPLIT_FOLDERS[split]}_annot"
    pairs = []
    for path in sorted(folder.glob("*.tif")):
        truth = read_index_mask(resolve_pointer(annotations / f"{path.stem}_mask.tif"))
        pairs.append((path.name, read_image(resolve_pointer(path)), truth))
    if not pairs:
        raise FileNotFoundError(f"no images in {folder}")
    return pairs


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positive`` (Mann-Whitney U,
    ties counted half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    count = int(positive.sum())
    other = positive.size - count
    if count == 0 or other == 0:
        return float("nan")
    return float((ranks[positive].sum() - count * (count + 1) / 2) / (count * other))


def error_detection(uncertainty, wrong) -> dict:
    from scipy.stats import pearsonr, spearmanr

    u, w = uncertainty.ravel().astype("float64"), wrong.ravel()
    return {
        "auroc": auroc(u, w),
        "spearman": float(spearmanr(u, w).statistic),
        "point_biserial": float(pearsonr(u, w.astype("float64")).statistic),
        "mean_wrong": float(u[w].mean()),
        "mean_right": float(u[~w].mean()),
        "error_rate": float(w.mean()),
    }


def evaluate(model, pairs, mode, tile: int, overlap: int, activation: str) -> dict:
    import numpy as np

    import micronet_tf
    from micronet_tf.prediction import predictive_entropy, to_index_mask

    uncertainties = ("entropy",) if mode is None else ("entropy", "variance")
    intersection = np.zeros(3)
    union = np.zeros(3)
    seconds, wrong_all = [], []
    maps: dict[str, list] = {kind: [] for kind in uncertainties}
    for _, image, truth in pairs:
        start = time.perf_counter()
        probabilities, variance = (
            micronet_tf.predict(
                model,
                image,
                tile=tile,
                overlap=overlap,
                tta=mode,
                uncertainty="variance",
                activation=activation,
                progress=False,
            )
            if mode is not None
            else (
                micronet_tf.predict(
                    model, image, tile=tile, overlap=overlap, activation=activation, progress=False
                ),
                None,
            )
        )
        seconds.append(time.perf_counter() - start)
        maps["entropy"].append(predictive_entropy(probabilities))
        if variance is not None:
            maps["variance"].append(variance)
        predicted = probabilities > 0.5
        true = np.stack([truth == k for k in range(3)], axis=-1)
        intersection += (predicted & true).sum(axis=(0, 1))
        union += (predicted | true).sum(axis=(0, 1))
        wrong_all.append(to_index_mask(probabilities) != truth)
    iou = {name: float(i / u) if u else 1.0 for name, i, u in zip(SUPER_NAMES, intersection, union)}
    wrong = np.concatenate([w.ravel() for w in wrong_all])
    return {
        "iou": iou,
        "mean_iou": float(np.mean([iou["secondary"], iou["tertiary"]])),
        "seconds_per_image": float(np.mean(seconds)),
        "uncertainty": {
            kind: error_detection(np.concatenate([m.ravel() for m in found]), wrong)
            for kind, found in maps.items()
        },
    }


def train(out: Path, epochs: int) -> Path:
    from micronet_tf.training.runs import run_demo

    summary = run_demo(out, epochs=epochs)
    print(
        f"trained in {summary['training_seconds']} s; the demo's own test mean IoU "
        f"{summary['test_mean_iou']:.3f} ({summary['test_per_class_iou']})",
        flush=True,
    )
    return out / "run" / "best.keras"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_tta_out"))
    parser.add_argument("--model", type=Path, help="a trained Super-3 .keras model to reuse")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--splits", nargs="+", default=["test", "test_ood"])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--activation", default="sigmoid", choices=["sigmoid", "auto"])
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all)")
    args = parser.parse_args()

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from micronet_tf import load_model, local_paths

    data = local_paths.benchmark_data_dir()
    if data is None:
        raise SystemExit("no benchmark data: set MICRONET_TF_DATA")
    model_path = args.model or train(args.out, args.epochs)
    model = load_model(model_path, compile=False)
    results: dict = {
        "model": str(model_path),
        "tile": args.tile,
        "overlap": args.overlap,
        "activation": args.activation,
    }
    for split in args.splits:
        pairs = load_split(data, split)
        for mode in MODES:
            result = evaluate(model, pairs, mode, args.tile, args.overlap, args.activation)
            results[f"{split}/{mode or 'none'}"] = result
            print(
                f"{split} tta={mode}: mean IoU {result['mean_iou']:.3f}, "
                f"{result['seconds_per_image']:.1f} s/image",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_tta.json").write_text(json.dumps(results, indent=2))
    print(table(results, args.splits))


def table(results: dict, splits) -> str:
    views = {None: 1, "flips": 4, "d4": 8}
    lines = [
        "| split | TTA | views | IoU matrix | IoU secondary | IoU tertiary | mean IoU "
        "| s / image | time vs no TTA |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split in splits:
        base = results[f"{split}/none"]["seconds_per_image"]
        for mode in MODES:
            r = results[f"{split}/{mode or 'none'}"]
            iou = r["iou"]
            lines.append(
                f"| {split} | {mode or 'none'} | {views[mode]} | {iou['matrix']:.3f} "
                f"| {iou['secondary']:.3f} | {iou['tertiary']:.3f} | {r['mean_iou']:.3f} "
                f"| {r['seconds_per_image']:.1f} | {r['seconds_per_image'] / base:.1f}x |"
            )
    lines += [
        "",
        "| split | TTA | uncertainty | AUROC (wrong pixels) | Spearman | point-biserial "
        "| mean on wrong | mean on right | error rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split in splits:
        for mode in MODES:
            for kind, d in results[f"{split}/{mode or 'none'}"]["uncertainty"].items():
                lines.append(
                    f"| {split} | {mode or 'none'} | {kind} | {d['auroc']:.3f} "
                    f"| {d['spearman']:.3f} | {d['point_biserial']:.3f} | {d['mean_wrong']:.4f} "
                    f"| {d['mean_right']:.4f} | {d['error_rate']:.3f} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
