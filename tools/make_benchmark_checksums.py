"""Write datasets/micronet_segmentation/checksums.tsv from a local benchmark_segmentation_data.

    python tools/make_benchmark_checksums.py [PATH]   (default: $MICRONET_TF_DATA or ../shared)

The local copy must be byte-identical to NASA's repository at the pinned commit. De-duplicated
copies (symbolic links, or tiny files holding a relative path) are resolved to the real file.
"""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath

from micronet_tf import local_paths
from micronet_tf.data.benchmark import raw_url, resolve_pointer
from micronet_tf.data.pairing import is_image_name
from micronet_tf.files import sha256_of

OUT = Path(__file__).resolve().parents[1] / "datasets/micronet_segmentation/checksums.tsv"


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else local_paths.benchmark_data_dir()
    if root is None or not root.is_dir():
        raise SystemExit("no benchmark_segmentation_data found; pass its path")
    lines = []
    for path in sorted(p for p in root.glob("*/*/*") if is_image_name(p.name)):
        relative = PurePosixPath(*path.relative_to(root).parts)
        real = resolve_pointer(path)
        lines.append(f"{raw_url(str(relative))}\t{real.stat().st_size}\t{sha256_of(real)}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} files -> {OUT}")


if __name__ == "__main__":
    main()
