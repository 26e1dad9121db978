"""What a segmentation run predicts (which mask classes become target channels) and the
paper's benchmark sets as such tasks."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from micronet_tf.data.benchmark import BENCHMARK_SETS, EBC_CLASSES, SUPER_CLASSES, SUPER_COLOURS
from micronet_tf.data.class_map import ClassMap

_PREFIX = "micronet_segmentation/"


@dataclass(frozen=True)
class SegmentationTask:
    """A class map and the mask classes that become the model's channels.

    By default two classes train one sigmoid channel for class 1 (the background is the
    rest), three or more a one-hot channel each, the "rest" class (the colourless one, else
    class 0) left out of the mean IoU and the accuracy maps. Super: matrix / secondary /
    tertiary one-hot; EBC: the oxide channel of background / oxide / crack (``channels=(1,)``).
    """

    dataset: str  # what the run records as its data
    class_map: ClassMap
    keep_orientation: bool = False  # only horizontal flips (layered cross-sections, EBC)
    channels: tuple[int, ...] | None = None  # mask classes -> channels; None: the default

    @property
    def channel_classes(self) -> tuple[int, ...]:
        if self.channels is not None:
            return tuple(self.channels)
        count = len(self.class_map.names)
        return (1,) if count == 2 else tuple(range(count))

    @property
    def targets(self) -> int | list[int]:
        """``make_segmentation_pipeline``'s ``classes``: a one-hot count or class indices."""
        channels = self.channel_classes
        if len(channels) > 1 and channels == tuple(range(len(self.class_map.names))):
            return len(channels)
        return list(channels)

    @property
    def class_names(self) -> list[str]:
        return [self.class_map.names[i] for i in self.channel_classes]

    @property
    def model_classes(self) -> int:
        return len(self.channel_classes)

    @property
    def background_channel(self) -> int | None:
        """The channel that is "everything else" (not shown in accuracy maps)."""
        rest = self.class_map.rest_index
        channels = self.channel_classes
        return channels.index(rest) if rest in channels and len(channels) > 1 else None

    def labels_record(self) -> dict:
        """What a trained model stores to read masks as its training did."""
        return {
            "class_map": self.class_map.to_json(),
            "channels": list(self.channel_classes),
            "keep_orientation": self.keep_orientation,
        }

    @classmethod
    def from_labels_record(cls, record: dict, dataset: str = "") -> SegmentationTask:
        return cls(
            dataset,
            ClassMap.from_json(record["class_map"]),
            bool(record.get("keep_orientation", False)),
            tuple(record["channels"]),
        )


@dataclass(frozen=True)
class BenchmarkTask(SegmentationTask):
    """A benchmark set of the paper: its TFDS name, class map and splits."""

    splits: tuple[str, ...] = ()


def benchmark_task(dataset: str) -> BenchmarkTask:
    """``"micronet_segmentation/super3"`` (or ``"super3"``) -> its :class:`BenchmarkTask`."""
    name = dataset.removeprefix(_PREFIX).lower()
    if name not in BENCHMARK_SETS:
        raise ValueError(
            f"dataset={dataset!r}: expected micronet_segmentation/<set> with <set> "
            f"one of {', '.join(BENCHMARK_SETS)}, or a folder written by "
            "`micronet-tf dataset`"
        )
    chosen = BENCHMARK_SETS[name]
    if chosen.is_super:
        return BenchmarkTask(
            _PREFIX + name,
            ClassMap(SUPER_CLASSES, "rgb", SUPER_COLOURS),
            splits=tuple(chosen.splits),
        )
    return BenchmarkTask(
        _PREFIX + name,
        ClassMap(EBC_CLASSES, "index"),
        keep_orientation=True,
        channels=(1,),
        splits=tuple(chosen.splits),
    )


def load_split(task: BenchmarkTask, split: str, data_dir: str | None = None) -> tf.data.Dataset:
    """One split through TFDS (built offline from MICRONET_TF_DATA / ../shared when present)."""
    import tensorflow_datasets as tfds

    if split not in task.splits:
        raise ValueError(f"split={split!r}: {task.dataset} has {', '.join(task.splits)}")
    return tfds.load(task.dataset, split=split, data_dir=data_dir)
