"""TFDS ``micronet_segmentation``: dummy data, every config from ../shared, the download path."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.checksums import UrlInfo

import micronet_tf  # noqa: F401  (registers the datasets)
from micronet_tf.data import benchmark
from micronet_tf.files import sha256_of
from tests.http_server import serving

Builder = tfds.builder_cls("micronet_segmentation")

DUMMY = Path(Builder.code_path).parent / "dummy_data"


class SuperDummyTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["super1", "super4"]
    SPLITS = {"train": 2, "validation": 1, "test": 1}


class SuperOodDummyTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["super2", "super3"]
    SPLITS = {"train": 2, "validation": 1, "test": 1, "test_ood": 1}


class EbcDummyTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["ebc1", "ebc2", "ebc3"]
    SPLITS = {"train": 2, "validation": 1, "test": 1}  # the orphan mask is reported and skipped


# Upstream counts less the two EBC training images missing from the reference copy.
EXPECTED_SIZES = {
    "super1": {"train": 10, "validation": 4, "test": 4},
    "super2": {"train": 4, "validation": 4, "test": 4, "test_ood": 5},
    "super3": {"train": 1, "validation": 4, "test": 4, "test_ood": 5},
    "super4": {"train": 4, "validation": 4, "test": 5},
    "ebc1": {"train": 16, "validation": 3, "test": 3},
    "ebc2": {"train": 4, "validation": 3, "test": 3},
    "ebc3": {"train": 13, "validation": 3, "test": 6},
}


def _fractions(dataset, classes: int) -> np.ndarray:
    counts = np.zeros(classes)
    for example in tfds.as_numpy(dataset):
        counts += np.bincount(example["segmentation_mask"].ravel(), minlength=classes)
    return counts / counts.sum()


def test_every_config_from_shared(benchmark_data: Path, tmp_path: Path, caplog) -> None:
    config = tfds.download.DownloadConfig(manual_dir=str(benchmark_data))
    fractions = {}
    for name, sizes in EXPECTED_SIZES.items():
        builder = tfds.builder(f"micronet_segmentation/{name}", data_dir=tmp_path)
        with caplog.at_level(logging.WARNING):
            builder.download_and_prepare(download_config=config)
        assert {s: i.num_examples for s, i in builder.info.splits.items()} == sizes, name
        fractions[name] = _fractions(builder.as_dataset(split="train"), 3)
        if name == "super2":  # 16-bit sources: scaled to the full uint8 range, not clipped
            for example in tfds.as_numpy(builder.as_dataset(split="test_ood")):
                assert example["image"].dtype == np.uint8 and example["image"].max() > 100
                assert 0.2 < (example["segmentation_mask"] == 1).mean() < 0.8
    assert "120718#4-B1_50cyc_14260025.tif" in caplog.text  # reported by name, then skipped
    matrix, secondary, tertiary = fractions["super1"]
    assert 0.45 < secondary < 0.51 and 0.01 < tertiary < 0.03, fractions["super1"]
    for name in ("ebc1", "ebc2", "ebc3"):
        assert fractions[name][1] > 0.01, (name, fractions[name])
    info = tfds.builder("micronet_segmentation/super1", data_dir=tmp_path).info
    assert info.features["segmentation_mask"].names == ["matrix", "secondary", "tertiary"]
    ds = tfds.load("micronet_segmentation/ebc2", split="test", data_dir=tmp_path)
    example = next(iter(ds))
    assert example["image"].shape == (1024, 1024, 3)
    assert example["segmentation_mask"].shape == (1024, 1024, 1)


def test_environment_variable_and_unpaired_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MICRONET_TF_DATA", str(DUMMY))
    builder = tfds.builder("micronet_segmentation/ebc2", data_dir=tmp_path / "a")
    builder.download_and_prepare()
    assert builder.info.splits["train"].num_examples == 2
    strict = tfds.builder(
        "micronet_segmentation/ebc2", data_dir=tmp_path / "b", on_unpaired="error"
    )
    with pytest.raises(ValueError, match=r"masks without an image: 120718#4-B1_50cyc"):
        strict.download_and_prepare()
    monkeypatch.setenv("MICRONET_TF_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="MICRONET_TF_DATA=.* has no EBC2/"):
        tfds.builder("micronet_segmentation/ebc2", data_dir=tmp_path / "c").download_and_prepare()


@pytest.fixture()
def served_dummy(tmp_path: Path):
    """The dummy tree behind a local HTTP server, laid out like raw.githubusercontent.com."""
    root = tmp_path / "served"
    shutil.copytree(DUMMY, root / "benchmark_segmentation_data")
    with serving(root) as server:
        yield (
            root / "benchmark_segmentation_data",
            f"{server.url}/benchmark_segmentation_data/",
        )


def test_download_path(served_dummy, tmp_path: Path, monkeypatch, caplog) -> None:
    """Raw-URL download with checksums (names with '#', '(', spaces); an unpinned image that
    cannot be fetched is reported by URL and its mask by name."""
    served, base = served_dummy
    monkeypatch.setattr(benchmark, "RAW_BASE", base)
    monkeypatch.delenv("MICRONET_TF_DATA", raising=False)
    monkeypatch.setattr(benchmark.local_paths, "benchmark_data_dir", lambda: None)
    pinned = {
        benchmark.raw_url(p.relative_to(served).as_posix()): UrlInfo(
            size=p.stat().st_size, checksum=sha256_of(p), filename=None
        )
        for p in served.rglob("*.tif")
    }
    monkeypatch.setattr(Builder, "url_infos", pinned)
    unpinned = {("EBC1", "train"): ("120718#4-B1_50cyc_14260025.tif",)}
    monkeypatch.setattr(benchmark, "UNPINNED_UPSTREAM", unpinned)
    builder = tfds.builder("micronet_segmentation/ebc1", data_dir=tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        builder.download_and_prepare(
            download_dir=tmp_path / "downloads",
            download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / "no_manual"),
        )
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {
        "train": 2,
        "validation": 1,
        "test": 1,
    }
    assert "120718%234-B1_50cyc_14260025.tif" in caplog.text  # the URL that failed
    assert "masks without an image: 120718#4-B1_50cyc_14260025.tif" in caplog.text
    names = {e["image/filename"].decode() for e in tfds.as_numpy(builder.as_dataset("train"))}
    assert names == {"010417#4_S2480009.tif", "040617#2_S127(2)0015.tif"}


def test_offline_without_local_data_fails_fast_and_leaves_nothing(
    tmp_path: Path, monkeypatch
) -> None:
    import socket
    import time

    from micronet_tf.data.benchmark import BenchmarkDataUnavailable

    with socket.socket() as probe:  # a port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(benchmark, "RAW_BASE", f"http://127.0.0.1:{port}/data/")
    monkeypatch.delenv("MICRONET_TF_DATA", raising=False)
    monkeypatch.setattr(benchmark.local_paths, "benchmark_data_dir", lambda: None)
    started = time.monotonic()
    with pytest.raises(
        BenchmarkDataUnavailable,
        match=r"micronet_segmentation/super3: no local "
        r"copy .*127\.0\.0\.1.*MICRONET_TF_DATA.*manual_dir",
    ):
        builder = tfds.builder("micronet_segmentation/super3", data_dir=tmp_path / "data")
        builder.download_and_prepare(
            download_dir=tmp_path / "downloads",
            download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / "no_manual"),
        )
    assert time.monotonic() - started < 10
    # Nothing downloaded or generated (TFDS' own .config/metadata.json aside).
    left = [p for p in tmp_path.rglob("*") if p.is_file() and ".config" not in p.parts]
    assert left == [], left
