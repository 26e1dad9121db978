"""Convert NASA's MicroNet checkpoints into the zoo's Keras weights + ONNX, with parity checks.

For each manifest entry: take NASA's checkpoint (from --sources DIR, else downloaded through
micronet_tf.zoo, which honours MICRONET_TF_ZOO_URL), verify or record its sha256, convert it,
compare the Keras encoder with the PyTorch one on a fixed input, export ONNX and compare it too,
then write OUT/<name>/<version>/{*.weights.h5, *.onnx, conversion.json}, OUT/cards/*.md and
OUT/manifest.json (hashes and sizes filled in). Idempotent and resumable: an entry whose
conversion.json matches its source and files is skipped; each entry runs in its own process, so
one failure (even one killed for memory) does not stop the rest.

  .venv/bin/python tools/convert_zoo.py --out zoo_build [--sources DIR] [--only resnet50.micronet]
"""

from __future__ import annotations

# PyTorch references first: importing torchvision after TensorFlow crashes the process.
import micronet_tf.torch_reference as torch_reference  # isort: skip

import argparse
import gc
import json
import re
import subprocess
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np

from micronet_tf.files import atomic_output_path, sha256_of
from micronet_tf.zoo import (
    FileRecord,
    Manifest,
    ZooEntry,
    ZooError,
    download,
    packaged_manifest,
    read_manifest,
    render_card,
)

PARITY_TOLERANCE = 2e-5  # max abs difference relative to max(1, max|reference|), per feature map
PARITY_INPUT = (1, 128, 128, 3)


def _fixed_input() -> np.ndarray:
    return np.random.default_rng(20220601).standard_normal(PARITY_INPUT, np.float32)


def _relative_diff(ours, reference) -> float:
    worst = 0.0
    for a, b in zip(ours, reference, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f"feature shapes differ: {a.shape} vs {b.shape}")
        worst = max(worst, float(np.abs(a - b).max()) / max(1.0, float(np.abs(b).max())))
    return worst


def _torch_features(entry: ZooEntry, source: Path, images: np.ndarray) -> list[np.ndarray]:
    """The PyTorch encoder's features with NASA's weights: legacy keys renamed and head tensors
    the reference module has no place for dropped, as the Keras side does."""
    import torch

    from micronet_tf.convert import read_torch_checkpoint, rename_keys
    from micronet_tf.encoders import encoder_spec

    spec = encoder_spec(entry.encoder)
    state = rename_keys(read_torch_checkpoint(source).state_dict, spec.key_renames)
    encoder = torch_reference.build_encoder(entry.encoder, randomize_bn=False)
    known = set(encoder.state_dict())
    head = tuple(f"{prefix}." for prefix in spec.encoder_ignored_prefixes)
    state = {k: v for k, v in state.items() if k in known or not k.startswith(head)}
    encoder.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return torch_reference.run_nhwc(encoder, images)


def _file(record: FileRecord, path: Path) -> FileRecord:
    return replace(record, sha256=sha256_of(path), size=path.stat().st_size)


def _up_to_date(state_path: Path, source_sha: str, out: Path, entry: ZooEntry) -> bool:
    if not state_path.is_file():
        return False
    state = json.loads(state_path.read_text())
    if state.get("source_sha256") != source_sha:
        return False
    for kind, record in entry.files.items():
        path = out / record.path
        if not path.is_file() or sha256_of(path) != state.get("files", {}).get(kind):
            return False
    return True


def _source_path(entry: ZooEntry, sources: Path | None, trust: bool) -> Path:
    if sources is None:
        return download(entry.key, "source", trust_unverified=trust)
    path = sources / entry.source.filename
    if not path.is_file():
        raise FileNotFoundError(f"{path}: NASA's checkpoint for {entry.key} is not in --sources")
    return path


def current_state(
    entry: ZooEntry, out: Path, sources: Path | None, *, trust: bool
) -> tuple[ZooEntry, dict] | None:
    """The entry and its recorded conversion when OUT already holds it for this very source."""
    if not entry.available:
        raise ZooError(f"{entry.key}: no Keras architecture for {entry.encoder!r} yet")
    source_path = _source_path(entry, sources, trust)
    source_sha = sha256_of(source_path)
    state_path = (out / entry.files["keras"].path).parent / "conversion.json"
    if not _up_to_date(state_path, source_sha, out, entry):
        return None
    state = json.loads(state_path.read_text())
    files = {k: _file(r, out / r.path) for k, r in entry.files.items()}
    source = replace(entry.source, sha256=source_sha, size=source_path.stat().st_size)
    return replace(entry, source=source, files=files), {**state, "status": "up to date"}


def convert_entry(
    entry: ZooEntry, out: Path, sources: Path | None, *, trust: bool, force: bool, opset: int | None
) -> tuple[ZooEntry, dict]:
    """Convert one entry; returns the entry with hashes filled in and what was measured."""
    import onnxruntime

    from micronet_tf.convert import convert_checkpoint
    from micronet_tf.export import export_onnx

    if not entry.available:
        raise ZooError(f"{entry.key}: no Keras architecture for {entry.encoder!r} yet")
    if not force and (current := current_state(entry, out, sources, trust=trust)):
        return current
    started = time.perf_counter()
    source = _source_path(entry, sources, trust)
    source_sha = sha256_of(source)
    if entry.source.sha256 and entry.source.sha256 != source_sha:
        raise ZooError(
            f"{source}: sha256 {source_sha} does not match the manifest's {entry.source.sha256}"
        )
    entry = replace(
        entry, source=replace(entry.source, sha256=source_sha, size=source.stat().st_size)
    )
    keras_path = out / entry.files["keras"].path
    onnx_path = out / entry.files["onnx"].path
    state_path = keras_path.parent / "conversion.json"
    images = _fixed_input()
    model, report = convert_checkpoint(source, entry.encoder, keras_path, overwrite=True)
    keras_features = [np.asarray(f) for f in model(images, training=False)]
    torch_diff = _relative_diff(keras_features, _torch_features(entry, source, images))
    if torch_diff > PARITY_TOLERANCE:
        keras_path.unlink()
        raise ZooError(
            f"{entry.key}: Keras vs PyTorch relative max diff {torch_diff:.3g} "
            f"exceeds {PARITY_TOLERANCE:g}"
        )
    onnx_path.unlink(missing_ok=True)
    export_onnx(model, onnx_path, opset=opset)
    session = onnxruntime.InferenceSession(str(onnx_path))
    onnx_features = session.run(None, {session.get_inputs()[0].name: images})
    onnx_diff = _relative_diff(
        sorted(onnx_features, key=np.size), sorted(keras_features, key=np.size)
    )
    if onnx_diff > PARITY_TOLERANCE:
        raise ZooError(f"{entry.key}: ONNX vs Keras relative max diff {onnx_diff:.3g}")
    files = {k: _file(r, out / r.path) for k, r in entry.files.items()}
    entry = replace(entry, files=files)
    state = {
        "status": "converted",
        "source": entry.source.filename,
        "source_sha256": source_sha,
        "files": {k: r.sha256 for k, r in files.items()},
        "sizes": {k: r.size for k, r in files.items()},
        "tensors_converted": len(report.assigned),
        "parity_keras_vs_pytorch": torch_diff,
        "parity_onnx_vs_keras": onnx_diff,
        "parity_input": f"seeded normal {PARITY_INPUT} (NHWC)",
        "seconds": round(time.perf_counter() - started, 2),
    }
    with atomic_output_path(state_path) as temporary:
        temporary.write_text(json.dumps(state, indent=1) + "\n")
    return entry, state


def _release_memory() -> None:
    """Drop the entry's models and traced graphs: without this, memory grows by GBs per entry."""
    import keras

    keras.backend.clear_session()
    gc.collect()


def _card_facts(state: dict) -> dict:
    return {
        "Keras vs PyTorch (smp encoder), relative max abs difference": (
            f"{state['parity_keras_vs_pytorch']:.2g} on a {state['parity_input']} input"
        ),
        "ONNX Runtime vs Keras": f"{state['parity_onnx_vs_keras']:.2g}",
        "tensors converted": state["tensors_converted"],
        "source sha256": f"`{state['source_sha256']}`",
    }


def _select(manifest: Manifest, only: list[str] | None, everything: bool) -> list[ZooEntry]:
    if not only:
        return [e for e in manifest.entries if everything or e.available]
    keys = {manifest.resolve(name).key for name in only}
    return [e for e in manifest.entries if e.key in keys]


def _run_worker(args: argparse.Namespace) -> int:
    """Convert the one entry ``--worker KEY`` of OUT/manifest.json; result in result.json."""
    entry = read_manifest(args.out / "manifest.json").get(args.worker)
    if entry is None:
        raise SystemExit(f"--worker {args.worker!r}: not in {args.out / 'manifest.json'}")
    updated, state = convert_entry(
        entry,
        args.out,
        args.sources,
        trust=args.trust_unverified,
        force=args.force,
        opset=args.opset,
    )
    result = args.out / entry.name / entry.version / "result.json"
    with atomic_output_path(result) as temporary:
        temporary.write_text(json.dumps({"entry": updated.to_json(), "state": state}))
    return 0


def _convert_isolated(entry: ZooEntry, args: argparse.Namespace) -> tuple[ZooEntry, dict]:
    """``convert_entry`` in a child process: memory is returned after every entry, and an entry
    that gets the process killed (out of memory) fails alone instead of ending the run."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--out",
        str(args.out),
        "--worker",
        entry.key,
    ]
    if args.sources:
        command += ["--sources", str(args.sources)]
    if args.opset:
        command += ["--opset", str(args.opset)]
    command += ["--trust-unverified"] * args.trust_unverified + ["--force"] * args.force
    result = args.out / entry.name / entry.version / "result.json"
    result.unlink(missing_ok=True)
    process = subprocess.run(command, capture_output=True, text=True)
    if process.returncode != 0:
        lines = [
            line
            for line in process.stderr.strip().splitlines()  # minus TF's log lines
            if not re.match(r"[IWEF]\d{4} ", line) and not line.startswith("WARNING: All")
        ]
        if process.returncode in (-9, 137):
            raise RuntimeError("worker killed by SIGKILL (out of memory?)")
        raise RuntimeError(
            f"worker exit code {process.returncode}: {(lines or ['(no output)'])[-1]}"
        )
    data = json.loads(result.read_text())
    result.unlink()
    return ZooEntry.from_json(data["entry"]), data["state"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="build folder (resumable)")
    parser.add_argument(
        "--sources",
        type=Path,
        help="folder of NASA's .pth.tar files (default: download them through micronet_tf.zoo)",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        help="input manifest (default: OUT/manifest.json when resuming, else the packaged one)",
    )
    parser.add_argument("--only", nargs="+", help="entry names (default: every available one)")
    parser.add_argument("--all", action="store_true", help="also try unavailable encoders")
    parser.add_argument(
        "--trust-unverified",
        action="store_true",
        help="download sources that have no pinned sha256 (and pin them)",
    )
    parser.add_argument("--force", action="store_true", help="redo up-to-date entries")
    parser.add_argument("--opset", type=int)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="convert in this process (default: one child process per entry)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _run_worker(args)
    out_manifest = args.out / "manifest.json"
    manifest = (
        read_manifest(args.manifest or out_manifest)
        if (args.manifest or out_manifest.is_file())
        else packaged_manifest()
    )
    manifest.write(out_manifest)  # the workers read their entry from here
    results = []
    for entry in _select(manifest, args.only, args.all):
        print(f"{entry.key} ...", flush=True)
        started = time.perf_counter()
        try:
            current = (
                None
                if args.force
                else current_state(entry, args.out, args.sources, trust=args.trust_unverified)
            )
            if current:
                updated, state = current
            elif args.in_process:
                updated, state = convert_entry(
                    entry,
                    args.out,
                    args.sources,
                    trust=args.trust_unverified,
                    force=args.force,
                    opset=args.opset,
                )
            else:
                updated, state = _convert_isolated(entry, args)
        except Exception as error:  # one failure must not stop the rest
            results.append(
                (
                    entry.key,
                    "FAILED",
                    time.perf_counter() - started,
                    None,
                    f"{type(error).__name__}: {error}",
                )
            )
            traceback.print_exc(limit=3, file=sys.stderr)
            continue
        finally:
            _release_memory()
        manifest.entries[manifest.entries.index(entry)] = updated
        card = args.out / (updated.card or f"cards/{updated.name}-{updated.version}.md")
        card.parent.mkdir(parents=True, exist_ok=True)
        card.write_text(render_card(updated, _card_facts(state)))
        manifest.write(out_manifest)  # after every entry: an interrupted run loses nothing
        sizes = {k: r.size for k, r in updated.files.items()}
        results.append(
            (
                entry.key,
                state["status"],
                time.perf_counter() - started,
                sizes,
                f"parity {state['parity_keras_vs_pytorch']:.1e} / "
                f"onnx {state['parity_onnx_vs_keras']:.1e}",
            )
        )
    print(f"\n{'entry':<42} {'status':<11} {'seconds':>8} {'keras MB':>9} {'onnx MB':>8}  notes")
    for key, status, seconds, sizes, notes in results:
        keras_mb, onnx_mb = (f"{sizes[k] / 1e6:.1f}" if sizes else "-" for k in ("keras", "onnx"))
        print(f"{key:<42} {status:<11} {seconds:8.1f} {keras_mb:>9} {onnx_mb:>8}  {notes}")
    failed = sum(r[1] == "FAILED" for r in results)
    print(
        f"{len(results) - failed} of {len(results)} entries done, {failed} failed; "
        f"manifest: {out_manifest}"
    )
    summary = [dict(zip(("entry", "status", "seconds", "sizes", "notes"), r)) for r in results]
    (args.out / "convert_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
