"""TFDS builder for the MicroNet paper's benchmark segmentation sets (Super-1..4, EBC-1..3)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from micronet_tf.data import benchmark, decode
from micronet_tf.data.pairing import UNPAIRED_CHOICES, Pairing, pair_names
from micronet_tf.preprocessing import read_image

logger = logging.getLogger(__name__)


class Builder(tfds.core.GeneratorBasedBuilder):
    """The seven published benchmark folders, one config each, masks as class indices."""

    VERSION = tfds.core.Version("1.0.0")
    # checksums.tsv, README.md, CITATIONS.bib, TAGS.txt and dummy_data/ sit beside this file.
    # TFDS would look for them under the package's name, which is not where an editable install
    # (or a source tree) keeps them: datasets/<name>/ is mapped to micronet_tf.tfds_datasets.
    code_path = epath.Path(__file__)
    pkg_dir_path = epath.Path(__file__).parent
    RELEASE_NOTES = {"1.0.0": "Initial release (nasa/pretrained-microscopy-models @ 63ef39f)."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name=s.name, description=s.description)
        for s in benchmark.BENCHMARK_SETS.values()
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Optional (offline use). Put a copy of NASA's `benchmark_segmentation_data` folder (the one
    holding Super1 ... EBC3) into `manual_dir`, or set MICRONET_TF_DATA to it. Without either,
    the files are downloaded from GitHub at a pinned commit and checked against checksums.tsv.
    """

    def __init__(self, *, on_unpaired: str = "skip", **kwargs) -> None:
        """``on_unpaired``: ``"skip"`` (report by name and leave out) or ``"error"``."""
        if on_unpaired not in UNPAIRED_CHOICES:
            raise ValueError(f"on_unpaired={on_unpaired!r}: expected one of {UNPAIRED_CHOICES}")
        self._on_unpaired = on_unpaired
        super().__init__(**kwargs)

    @property
    def _set(self) -> benchmark.BenchmarkSet:
        return benchmark.BENCHMARK_SETS[self.builder_config.name]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
                    "segmentation_mask": tfds.features.LabeledImage(
                        labels=list(self._set.class_names), shape=(None, None, 1), dtype=np.uint8
                    ),
                    "image/filename": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "segmentation_mask"),
            homepage=benchmark.HOMEPAGE,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = self._local_root(dl_manager)
        if root is not None:
            logger.info("micronet_segmentation/%s: reading the local copy %s", self._set.name, root)
            files = {
                split: self._local_pairs(root, folder) for split, folder in self._set.splits.items()
            }
        else:
            files = self._download(dl_manager)
        return {split: self._generate_examples(pairs) for split, pairs in files.items()}

    def _generate_examples(self, pairs: list[tuple[str, Path, Path]]):
        colours = benchmark.SUPER_COLOURS if self._set.is_super else None
        for name, image_path, mask_path in pairs:
            image = decode.read_rgb(image_path)
            raw_mask = read_image(mask_path)
            if colours is not None:
                mask = decode.colour_mask_to_index(raw_mask, colours, str(mask_path))
            else:
                mask = decode.index_mask(raw_mask, len(self._set.class_names), str(mask_path))
            decode.check_same_size(image, mask, str(image_path), str(mask_path))
            yield (
                name,
                {"image": image, "segmentation_mask": mask[..., None], "image/filename": name},
            )

    # -- where the files come from ---------------------------------------------------------

    def _local_root(self, dl_manager: tfds.download.DownloadManager) -> Path | None:
        """manual_dir when it holds this set, else $MICRONET_TF_DATA / ../shared, else None."""
        try:
            manual = dl_manager.manual_dir
        except (AssertionError, ValueError):  # no manual_dir, or it is empty
            manual = None
        return benchmark.local_root(manual, self._set.folder)

    def _local_pairs(self, root: Path, folder: str) -> list[tuple[str, Path, Path]]:
        images_dir = root / self._set.folder / folder
        masks_dir = root / self._set.folder / f"{folder}_annot"
        for directory in (images_dir, masks_dir):
            if not directory.is_dir():
                raise FileNotFoundError(
                    f"{directory}: missing folder of the {self._set.folder} benchmark set"
                )
        pairing = pair_names(
            [p.name for p in images_dir.iterdir()], [p.name for p in masks_dir.iterdir()]
        )
        self._check(pairing, f"{self._set.folder}/{folder}")
        return [
            (
                image,
                benchmark.resolve_pointer(images_dir / image),
                benchmark.resolve_pointer(masks_dir / mask),
            )
            for image, mask in pairing.pairs
        ]

    def _upstream_files(self) -> dict[str, list[str]]:
        """``{folder: [file names]}`` upstream, from checksums.tsv plus the unpinned images."""
        return benchmark.upstream_files(self.url_infos or {}, self._set.folder)

    def _download(self, dl_manager: tfds.download.DownloadManager):
        upstream = self._upstream_files()
        keys = [f"{folder}/{name}" for folder, names in upstream.items() for name in names]
        urls = {key: benchmark.raw_url(f"{self._set.folder}/{key}") for key in keys}
        pinned = {key: url for key, url in urls.items() if url in (self.url_infos or {})}
        benchmark.check_reachable(
            next(iter(urls.values()), benchmark.raw_url(self._set.folder)),
            f"micronet_segmentation/{self._set.name}",
        )
        paths = {key: Path(path) for key, path in dl_manager.download(pinned).items()}
        for key in sorted(set(urls) - set(pinned)):  # not in checksums.tsv: fetched unverified
            try:
                paths[key] = Path(dl_manager.download(urls[key]))
            except Exception as error:  # noqa: BLE001  (reported by name below)
                logger.warning(
                    "could not download %s (%s: %s)", urls[key], type(error).__name__, error
                )
        files = {}
        for split, folder in self._set.splits.items():
            images = [k.split("/", 1)[1] for k in paths if k.startswith(f"{folder}/")]
            masks = [k.split("/", 1)[1] for k in paths if k.startswith(f"{folder}_annot/")]
            pairing = pair_names(images, masks)
            self._check(pairing, f"{self._set.folder}/{folder} (download)")
            files[split] = [
                (image, paths[f"{folder}/{image}"], paths[f"{folder}_annot/{mask}"])
                for image, mask in pairing.pairs
            ]
        return files

    def _check(self, pairing: Pairing, where: str) -> None:
        pairing.check(where, self._on_unpaired)
