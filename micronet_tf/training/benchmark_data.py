"""The paper's benchmark sets as training / evaluation streams: which classes, which targets."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from micronet_tf.data._benchmark import BENCHMARK_SETS, BenchmarkSet

_PREFIX = "micronet_segmentation/"


@dataclass(frozen=True)
class BenchmarkTask:
    """What the paper predicts on a set: Super -> matrix / secondary / tertiary (softmax-style
    one-hot targets); EBC -> oxide vs not-oxide (one channel)."""

    set: BenchmarkSet

    @property
    def dataset(self) -> str:
        return _PREFIX + self.set.name

    @property
    def targets(self) -> int | list[int]:
        return len(self.set.class_names) if self.set.is_super else [1]

    @property
    def class_names(self) -> list[str]:
        return list(self.set.class_names) if self.set.is_super else ["oxide"]

    @property
    def model_classes(self) -> int:
        return len(self.class_names)

    @property
    def keep_orientation(self) -> bool:  # EBC cross-sections: only horizontal flips
        return not self.set.is_super

    @property
    def background_channel(self) -> int | None:
        """The channel that is "everything else" (not shown in accuracy maps)."""
        return 0 if self.set.is_super else None


def benchmark_task(dataset: str) -> BenchmarkTask:
    """``"micronet_segmentation/super3"`` (or ``"super3"``) -> its :class:`BenchmarkTask`."""
    name = dataset.removeprefix(_PREFIX).lower()
    if name not in BENCHMARK_SETS:
        raise ValueError(f"dataset={dataset!r}: expected micronet_segmentation/<set> with <set> "
                         f"one of {', '.join(BENCHMARK_SETS)}")
    return BenchmarkTask(BENCHMARK_SETS[name])


def load_split(task: BenchmarkTask, split: str, data_dir: str | None = None) -> tf.data.Dataset:
    """One split through TFDS (built offline from MICRONET_TF_DATA / ../shared when present)."""
    import tensorflow_datasets as tfds

    available = task.set.splits
    if split not in available:
        raise ValueError(f"split={split!r}: {task.dataset} has {', '.join(available)}")
    return tfds.load(task.dataset, split=split, data_dir=data_dir)
