"""Publish the artifacts tools/convert_zoo.py built: copy them to a release location and rewrite
the manifest's URLs.

Destinations: a local directory; any fsspec URL (``s3://bucket/prefix``, ``memory://x``, ...);
or the Hugging Face Hub as ``hf://owner/repo`` (fsspec's HfFileSystem, needs huggingface_hub and
a token). Every file is checked against the manifest's sha256 before it is copied; files already
at the destination with the same hash (directory) or size (fsspec) are skipped, so a re-run
resumes. The rewritten manifest goes last, so a partial upload never advertises missing files.

  .venv/bin/python tools/publish_zoo.py zoo_build --to /srv/zoo --base-url https://host/zoo
  .venv/bin/python tools/publish_zoo.py zoo_build --to hf://org/micronet-tf-zoo --dry-run
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from micronet_tf.files import atomic_output_path, sha256_of
from micronet_tf.zoo import Manifest, read_manifest


def default_base_url(destination: str) -> str | None:
    """Where files copied to ``destination`` can be downloaded from, when it says so itself."""
    if destination.startswith("hf://"):
        repo = destination.removeprefix("hf://").strip("/")
        return f"https://huggingface.co/{repo}/resolve/main"
    if destination.startswith("s3://"):
        bucket, _, prefix = destination.removeprefix("s3://").partition("/")
        return f"https://{bucket}.s3.amazonaws.com/{prefix}".rstrip("/")
    if "://" not in destination:
        return Path(destination).resolve().as_uri()
    if destination.startswith(("http://", "https://")):
        return destination.rstrip("/")
    return None


class _Directory:
    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def present(self, relative: str, sha256: str, size: int) -> bool:
        path = self.root / relative
        return path.is_file() and path.stat().st_size == size and sha256_of(path) == sha256

    def put(self, local: Path, relative: str) -> None:
        with atomic_output_path(self.root / relative) as temporary:
            shutil.copyfile(local, temporary)


class _Fsspec:
    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError as error:
            raise SystemExit(f"publishing to {url} needs fsspec: pip install fsspec") from error
        self.fs, self.root = fsspec.core.url_to_fs(url)

    def present(self, relative: str, sha256: str, size: int) -> bool:
        path = f"{self.root.rstrip('/')}/{relative}"
        return self.fs.exists(path) and self.fs.size(path) == size

    def put(self, local: Path, relative: str) -> None:
        path = f"{self.root.rstrip('/')}/{relative}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.put_file(str(local), path)


def plan(manifest: Manifest, build: Path) -> list[tuple[Path, str, str, int]]:
    """(local file, relative path, sha256, size) for every artifact convert_zoo filled in."""
    files = []
    for entry in manifest.entries:
        for kind, record in entry.files.items():
            if not (record.sha256 and record.path):
                continue
            local = build / record.path
            if not local.is_file():
                raise SystemExit(f"{local}: listed for {entry.key} {kind} but missing")
            files.append((local, record.path, record.sha256, record.size))
        if (
            entry.card
            and (build / entry.card).is_file()
            and any(r.sha256 for r in entry.files.values())
        ):
            card = build / entry.card
            files.append((card, entry.card, sha256_of(card), card.stat().st_size))
    return files


def rewrite_urls(manifest: Manifest, base_url: str) -> Manifest:
    """Every published file's ``urls`` = ``base_url/path``; ``artifacts_base_url`` = base."""
    base = base_url.rstrip("/")
    entries = []
    for entry in manifest.entries:
        files = {
            k: replace(r, urls=(f"{base}/{r.path}",)) if r.sha256 and r.path else r
            for k, r in entry.files.items()
        }
        entries.append(replace(entry, files=files))
    return Manifest(entries, base, dict(manifest.extra), manifest.origin)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path, help="tools/convert_zoo.py's --out folder")
    parser.add_argument("--to", required=True, help="directory, fsspec URL or hf://owner/repo")
    parser.add_argument("--base-url", help="public URL of --to (default: derived from it)")
    parser.add_argument(
        "--write-manifest",
        type=Path,
        help="also write the rewritten manifest here (e.g. zoo/manifest.json)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, copy nothing")
    args = parser.parse_args(argv)
    manifest = read_manifest(args.build / "manifest.json")
    base_url = args.base_url or default_base_url(args.to)
    if base_url is None:
        raise SystemExit(f"--base-url is needed: no public URL is known for {args.to}")
    files = plan(manifest, args.build)
    for local, _, sha256, _size in files:
        if sha256_of(local) != sha256:
            raise SystemExit(f"{local}: sha256 differs from the manifest; re-run convert_zoo.py")
    destination = _Directory(args.to) if "://" not in args.to else _Fsspec(args.to)
    copied = skipped = 0
    for local, relative, sha256, size in files:
        if destination.present(relative, sha256, size):
            skipped += 1
            continue
        print(f"{'would copy' if args.dry_run else 'copy'} {relative} ({size:,} bytes)")
        if not args.dry_run:
            destination.put(local, relative)
        copied += 1
    published = rewrite_urls(manifest, base_url)
    rewritten = args.build / ".manifest.published.json"
    published.write(rewritten)
    if not args.dry_run:
        destination.put(rewritten, "manifest.json")
        if args.write_manifest:
            published.write(args.write_manifest)
    rewritten.unlink()
    verb = "would copy" if args.dry_run else "copied"
    print(
        f"{verb} {copied} file(s), {skipped} already there; manifest URLs -> {base_url}"
        + (" (dry run: nothing written)" if args.dry_run else f"; {args.to}/manifest.json")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
