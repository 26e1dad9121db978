"""TFDS builder for MicroNet-style classification data that users bring (class sub-folders)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from micronet_tf.data import class_folders, decode

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class MicronetConfig(tfds.core.BuilderConfig):
    """``validation_per_class`` images per class drawn with ``seed`` form the validation split."""

    validation_per_class: int = 50
    seed: int = 0


class Builder(tfds.core.GeneratorBasedBuilder):
    """Micrographs in one folder per material class; unreadable files are reported and skipped."""

    VERSION = tfds.core.Version("1.0.0")
    # checksums.tsv, README.md, CITATIONS.bib, TAGS.txt and dummy_data/ sit beside this file.
    # TFDS would look for them under the package's name, which is not where an editable install
    # (or a source tree) keeps them: datasets/<name>/ is mapped to micronet_tf.tfds_datasets.
    code_path = epath.Path(__file__)
    pkg_dir_path = epath.Path(__file__).parent
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        MicronetConfig(name="default", description="50 validation images per class (the paper).")
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    MicroNet itself is not public: bring your own data. Put one sub-folder per material class
    into `manual_dir` (default ~/tensorflow_datasets/downloads/manual/), e.g.
    `manual_dir/ni_superalloy/img001.tif`, `manual_dir/steel/a.png`. Images may be grey, RGB or
    RGBA, 8 or 16 bit, TIFF / PNG / JPEG, of any size; nested folders inside a class are read.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(),  # names: the class folders, set at build
                    "image/filename": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/nasa/pretrained-microscopy-models",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = Path(dl_manager.manual_dir)
        classes = class_folders.list_class_folders(root)
        self.info.features["label"].names = sorted(classes)
        config: MicronetConfig = self.builder_config
        train, validation = class_folders.split_validation(
            classes, config.validation_per_class, config.seed
        )
        return {
            "train": self._generate_examples(root, train, "train"),
            "validation": self._generate_examples(root, validation, "validation"),
        }

    def _generate_examples(self, root: Path, items: list[tuple[Path, int]], split: str):
        skipped = []
        for path, label in items:
            key = path.relative_to(root).as_posix()
            try:
                image = decode.read_rgb(path)
            except (ValueError, OSError) as error:
                logger.warning("skipped unreadable %s: %s", key, error)
                skipped.append(key)
                continue
            yield key, {"image": image, "label": label, "image/filename": key}
        if skipped:
            logger.warning(
                "micronet %s: skipped %d unreadable file(s): %s",
                split,
                len(skipped),
                ", ".join(skipped),
            )
