"""Users' labelled micrograph folders written as a TFDS dataset: sharded TFRecords that
``tfds.load(name, data_dir=OUT)`` reads like the benchmark sets, with no builder code.

On disk (``OUT/<name>/1.0.0/``, TFDS's layout for a prepared dataset)::

    <name>-train.tfrecord-00000-of-00002    examples {"image", "segmentation_mask",
    <name>-train.tfrecord-00001-of-00002     "image/filename"}, as micronet_segmentation's
    <name>-validation.tfrecord-00000-of-00001
    dataset_info.json, features.json         splits, shard lengths, features (TFDS's own)
    segmentation_mask.labels.txt             the class names
    metadata.json                            {"micronet_tf": class map, keep_orientation,
                                              source file names + sha256}

Each pair is read and checked by the same code as
:func:`~micronet_tf.data.segmentation_dataset_from_folders`, one pair at a time (a large set is
never held in memory), and the output appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micronet_tf.data import decode
from micronet_tf.data.class_map import ClassMap
from micronet_tf.data.pairing import UNPAIRED_CHOICES, pair_names
from micronet_tf.files import sha256_of
from micronet_tf.preprocessing import read_image

__all__ = [
    "SegmentationTfdsInfo",
    "load_segmentation_tfds_info",
    "load_segmentation_tfds_split",
    "write_segmentation_tfds",
]

logger = logging.getLogger(__name__)

VERSION = "1.0.0"
# A shard is closed once it holds this many serialized bytes (TFDS aims at 64 MiB - 1 GiB);
# several shards let many readers / machines share a large set (tf.data shards by file).
SHARD_BYTES = 100 * 2**20
METADATA_KEY = "micronet_tf"
FORMAT = 1
# split -> the arguments naming its image and mask folders
SPLIT_ARGUMENTS = {
    "train": ("images_dir", "masks_dir"),
    "validation": ("val_images_dir", "val_masks_dir"),
    "test": ("test_images_dir", "test_masks_dir"),
}


@dataclass(frozen=True)
class SegmentationTfdsInfo:
    """What :func:`write_segmentation_tfds` recorded about a dataset it wrote."""

    path: Path  # the version folder, OUT/<name>/<version>
    name: str
    version: str
    class_map: ClassMap
    keep_orientation: bool
    splits: dict[str, int]  # split -> examples
    shards: dict[str, int]  # split -> shard files
    sources: dict[str, list[dict[str, str]]]  # split -> [{image, image_sha256, mask, mask_sha256}]

    @property
    def data_dir(self) -> Path:
        """The ``data_dir`` of ``tfds.load(name, data_dir=...)``."""
        return self.path.parent.parent


# -- writing -------------------------------------------------------------------------------


def _features(class_map: ClassMap):
    import tensorflow_datasets as tfds

    # The same features as micronet_segmentation's builder, so both load alike.
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
            "segmentation_mask": tfds.features.LabeledImage(
                labels=list(class_map.names), shape=(None, None, 1), dtype=np.uint8
            ),
            "image/filename": tfds.features.Text(),
        }
    )


def _read_pair(image_path: Path, mask_path: Path, class_map: ClassMap) -> dict:
    """One example, decoded and checked as ``load_folder_pairs`` does."""
    image = decode.read_rgb(image_path)
    raw = read_image(mask_path)
    if class_map.mask_format == "rgb":
        mask = decode.colour_mask_to_index(raw, list(class_map.colours), mask_path.name)
    else:
        mask = decode.index_mask(raw, len(class_map.names), mask_path.name)
    decode.check_same_size(image, mask, image_path.name, mask_path.name)
    return {"image": image, "segmentation_mask": mask[..., None], "image/filename": image_path.name}


def _split_pairs(
    folders: dict[str, tuple[str | os.PathLike | None, str | os.PathLike | None]], on_unpaired: str
) -> dict[str, list[tuple[Path, Path]]]:
    """split -> [(image path, mask path)], every folder and pairing checked before writing."""
    splits = {}
    for split, (images_dir, masks_dir) in folders.items():
        image_arg, mask_arg = SPLIT_ARGUMENTS[split]
        if images_dir is None and masks_dir is None and split != "train":
            continue
        for argument, other, folder in (
            (image_arg, mask_arg, images_dir),
            (mask_arg, image_arg, masks_dir),
        ):
            if folder is None:
                raise ValueError(
                    f"{other}= is given but {argument}= is not: the {split} split "
                    "needs both an image and a mask folder"
                )
            if not Path(folder).is_dir():
                raise FileNotFoundError(f"{argument}={str(folder)!r} is not a folder")
        images_dir, masks_dir = Path(images_dir), Path(masks_dir)
        pairing = pair_names(os.listdir(images_dir), os.listdir(masks_dir))
        pairing.check(f"{images_dir} / {masks_dir}", on_unpaired)
        if not pairing.pairs:
            raise ValueError(
                f"{image_arg}={str(images_dir)!r}: no image / mask pairs with "
                f"{mask_arg}={str(masks_dir)!r}; masks are named like their image, "
                "or <image name>_mask.<ext>"
            )
        # Stored in an order fixed by the names but mixed (as TFDS does by key), so that each
        # shard holds a sample of the whole set rather than one specimen's files.
        pairs = sorted(pairing.pairs, key=lambda p: hashlib.sha256(p[0].encode()).digest())
        splits[split] = [(images_dir / image, masks_dir / mask) for image, mask in pairs]
    return splits


def _check_output(out_dir: Path, name: str, inputs: list[Path], force: bool) -> Path:
    import tensorflow_datasets as tfds

    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(
            f"name={name!r}: a TFDS dataset name is lower case letters, digits and "
            "_ (starting with a letter), e.g. 'steel_micrographs'"
        )
    if name in tfds.list_builders(with_community_datasets=False):
        raise ValueError(
            f"name={name!r} is a dataset TFDS already knows (tfds.load would give "
            "that one); pass another name"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"out_dir={str(out_dir)!r} is a file, not a folder")
    dataset_dir = out_dir / name
    target = dataset_dir / VERSION
    if dataset_dir.exists() and not dataset_dir.is_dir():
        raise FileExistsError(
            f"out_dir={str(out_dir)!r} holds a file named {name!r}: pass another out_dir= or name="
        )
    if dataset_dir.is_dir() and any(dataset_dir.iterdir()) and not force:
        what = "a dataset" if (target / "dataset_info.json").is_file() else "files"
        raise FileExistsError(
            f"out_dir={str(out_dir)!r} already holds {what} named {name!r} ({dataset_dir}): "
            f"pass another out_dir= or name= (or --force to replace {name}/{VERSION})"
        )
    for folder in inputs:
        folder = folder.resolve()
        if folder == target.resolve() or target.resolve() in folder.parents:
            raise ValueError(
                f"input folder {str(folder)!r} lies inside the output "
                f"{target}: pass another out_dir= or name="
            )
    return target


def _write_split(
    features,
    split: str,
    pairs: list[tuple[Path, Path]],
    class_map: ClassMap,
    folder: Path,
    name: str,
    shard_examples: int | None,
    progress,
) -> tuple:
    """Write one split's shards into ``folder``; returns (SplitInfo, sources)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    template = tfds.core.ShardedFileTemplate(
        data_dir=folder, dataset_name=name, split=split, filetype_suffix="tfrecord"
    )
    partial, lengths, total_bytes, sources = [], [], 0, []
    writer, shard_bytes = None, 0
    for image_path, mask_path in pairs:
        record = {
            "image": image_path.name,
            "image_sha256": sha256_of(image_path),
            "mask": mask_path.name,
            "mask_sha256": sha256_of(mask_path),
        }
        serialized = features.serialize_example(_read_pair(image_path, mask_path, class_map))
        if writer is None:
            partial.append(folder / f".shard-{split}-{len(partial):05d}")
            writer, shard_bytes = tf.io.TFRecordWriter(os.fspath(partial[-1])), 0
            lengths.append(0)
        writer.write(serialized)
        lengths[-1] += 1
        shard_bytes += len(serialized)
        total_bytes += len(serialized)
        sources.append(record)
        progress.update(1)
        if shard_bytes >= SHARD_BYTES or lengths[-1] == shard_examples:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()
    for index, path in enumerate(partial):
        path.rename(template.sharded_filepath(shard_index=index, num_shards=len(partial)))
    info = tfds.core.SplitInfo(
        name=split, shard_lengths=lengths, num_bytes=total_bytes, filename_template=template
    )
    return info, sources


def write_segmentation_tfds(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    class_map: ClassMap,
    *,
    out_dir: str | os.PathLike,
    name: str = "micrographs",
    val_images_dir: str | os.PathLike | None = None,
    val_masks_dir: str | os.PathLike | None = None,
    test_images_dir: str | os.PathLike | None = None,
    test_masks_dir: str | os.PathLike | None = None,
    keep_orientation: bool = False,
    shard_examples: int | None = None,
    on_unpaired: str = "error",
    force: bool = False,
) -> Path:
    """Write image / mask folders as the TFDS dataset ``out_dir/<name>/1.0.0``; returns that path.

    Splits ``train`` (``images_dir`` / ``masks_dir``) and, when given, ``validation`` and
    ``test``; masks are paired and decoded as in
    :func:`~micronet_tf.data.segmentation_dataset_from_folders` (``class_map.mask_format``).
    Shards close at ~100 MiB, or after ``shard_examples`` examples. The metadata records the
    class map, ``keep_orientation`` (augment without 90° rotations, for layered cross-sections)
    and each source file's name and sha256. An existing ``out_dir/<name>`` is refused unless
    ``force`` (which replaces only ``<name>/1.0.0``). Read it back with
    ``tfds.load(name, data_dir=out_dir)`` or :func:`load_segmentation_tfds_split`.
    """
    import tensorflow_datasets as tfds
    from tqdm.auto import tqdm

    if not isinstance(class_map, ClassMap):
        raise ValueError(
            f"class_map: expected a ClassMap (see micronet_tf.data.class_map."
            f"parse_class_map), got {type(class_map).__name__}"
        )
    if shard_examples is not None and (
        isinstance(shard_examples, bool)
        or not isinstance(shard_examples, int)
        or shard_examples < 1
    ):
        raise ValueError(
            f"shard_examples={shard_examples!r}: expected a whole number >= 1, "
            "or leave it out (shards of ~100 MiB)"
        )
    if on_unpaired not in UNPAIRED_CHOICES:
        raise ValueError(f"on_unpaired={on_unpaired!r}: expected one of {UNPAIRED_CHOICES}")
    splits = _split_pairs(
        {
            "train": (images_dir, masks_dir),
            "validation": (val_images_dir, val_masks_dir),
            "test": (test_images_dir, test_masks_dir),
        },
        on_unpaired,
    )
    inputs = [
        folder for pairs in splits.values() for folder in (pairs[0][0].parent, pairs[0][1].parent)
    ]
    out_dir = Path(out_dir)
    target = _check_output(out_dir, name, inputs, force)

    created = [p for p in (out_dir, target.parent) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{VERSION}-", dir=target.parent))
    try:
        features = _features(class_map)
        total = sum(len(p) for p in splits.values())
        infos, sources = [], {}
        with tqdm(total=total, unit="pair", desc=f"{name}", disable=None) as progress:
            for split, pairs in splits.items():
                info, sources[split] = _write_split(
                    features, split, pairs, class_map, staging, name, shard_examples, progress
                )
                infos.append(info)
        folders = {
            split: {
                "images": str(pairs[0][0].parent.resolve()),
                "masks": str(pairs[0][1].parent.resolve()),
            }
            for split, pairs in splits.items()
        }
        metadata = tfds.core.MetadataDict(
            {
                METADATA_KEY: {
                    "format": FORMAT,
                    "class_map": class_map.to_json(),
                    "keep_orientation": bool(keep_orientation),
                    "folders": folders,
                    "sources": sources,
                }
            }
        )
        tfds.folder_dataset.write_metadata(
            data_dir=staging,
            features=features,
            split_infos=infos,
            version=VERSION,
            filename_template=tfds.core.ShardedFileTemplate(
                data_dir=staging,
                dataset_name=name,
                filetype_suffix="tfrecord",
                template=tfds.core.naming.DEFAULT_FILENAME_TEMPLATE,
            ),
            check_data=False,
            supervised_keys=("image", "segmentation_mask"),
            metadata=metadata,
            description=f"Labelled micrographs written by `micronet-tf dataset`; classes: "
            f"{class_map.describe()}.",
        )
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):  # leave nothing behind that this call created
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    logger.info(
        "%s: %s",
        target,
        ", ".join(f"{i.name} {i.num_examples} examples in {i.num_shards} shard(s)" for i in infos),
    )
    return target


def _replace(staging: Path, target: Path) -> None:
    """Move ``staging`` onto ``target``; an older ``target`` is removed only once it is replaced."""
    if not target.exists():
        staging.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".replaced-{VERSION}-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


# -- reading -------------------------------------------------------------------------------


def _version_dir(path_or_name: str | os.PathLike, data_dir: str | os.PathLike | None) -> Path:
    import tensorflow_datasets as tfds

    path = Path(data_dir) / str(path_or_name) if data_dir is not None else Path(path_or_name)
    if (path / "dataset_info.json").is_file():
        return path
    if path.is_dir():
        versions = [
            p
            for p in path.iterdir()
            if p.is_dir()
            and tfds.core.Version.is_valid(p.name)
            and (p / "dataset_info.json").is_file()
        ]
        if versions:
            return max(versions, key=lambda p: tfds.core.Version(p.name))
    why = "does not exist" if not path.exists() else "holds no dataset_info.json"
    hint = (
        ""
        if data_dir is not None or path.exists()
        else ("; for a dataset name, also pass data_dir (the --out of `micronet-tf dataset`)")
    )
    raise FileNotFoundError(
        f"dataset {str(path)!r} {why}: expected a dataset written by `micronet-tf dataset`, "
        f"the folder OUT/NAME or OUT/NAME/{VERSION} (the one holding dataset_info.json){hint}"
    )


def load_segmentation_tfds_info(
    path_or_name: str | os.PathLike, data_dir: str | os.PathLike | None = None
) -> SegmentationTfdsInfo:
    """The class map, ``keep_orientation``, splits and sources of a dataset written by
    :func:`write_segmentation_tfds`: ``path_or_name`` is ``OUT/<name>`` or
    ``OUT/<name>/<version>``, or ``<name>`` with ``data_dir=OUT``."""
    import tensorflow_datasets as tfds

    path = _version_dir(path_or_name, data_dir)
    builder = tfds.builder_from_directory(path)
    record = dict(builder.info.metadata or {}).get(METADATA_KEY)
    if not isinstance(record, dict) or "class_map" not in record:
        raise ValueError(
            f"dataset {str(path)!r} is a TFDS dataset but not one written by "
            "`micronet-tf dataset` (its metadata.json has no class map)"
        )
    if record.get("format", FORMAT) > FORMAT:
        raise ValueError(
            f"dataset {str(path)!r} was written by a newer micronet-tf (format "
            f"{record['format']}); upgrade micronet-tf to read it"
        )
    splits = builder.info.splits
    return SegmentationTfdsInfo(
        path=path,
        name=builder.info.name,
        version=str(builder.info.version),
        class_map=ClassMap.from_json(record["class_map"]),
        keep_orientation=bool(record.get("keep_orientation", False)),
        splits={s: splits[s].num_examples for s in splits},
        shards={s: splits[s].num_shards for s in splits},
        sources={s: list(v) for s, v in record.get("sources", {}).items()},
    )


def load_segmentation_tfds_split(
    path: str | os.PathLike,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    shuffle_files: bool = False,
    read_config=None,
):
    """A split (``"train"``, ``"validation[:50%]"``, ...) of a dataset written by
    :func:`write_segmentation_tfds`, as ``tfds.load`` gives it: ``{"image": uint8 HxWx3,
    "segmentation_mask": uint8 HxWx1, "image/filename": string}``. ``read_config`` is TFDS's
    (``tfds.ReadConfig(input_context=...)`` gives each worker its own shards)."""
    import tensorflow_datasets as tfds

    version_dir = _version_dir(path, data_dir)
    builder = tfds.builder_from_directory(version_dir)
    base = re.split(r"[\[+]", split, maxsplit=1)[0].strip()
    if base not in builder.info.splits:
        raise ValueError(
            f"split={split!r}: dataset {str(version_dir)!r} has the splits "
            f"{', '.join(builder.info.splits)}"
        )
    return builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config)
