"""Training with the paper's recipe: loss, IoU metrics, two-stage schedule, distribution."""

from micronet_tf.training.callbacks import TwoStageSchedule
from micronet_tf.training.checkpoints import RunCheckpoint, RunFinishedError
from micronet_tf.training.losses import DiceBCELoss
from micronet_tf.training.metrics import SegmentationIoU, iou_metrics
from micronet_tf.training.optimizers import TorchAdam

__all__ = [
    "DiceBCELoss",
    "RunCheckpoint",
    "RunFinishedError",
    "SegmentationIoU",
    "TorchAdam",
    "TrainingResult",
    "TwoStageSchedule",
    "get_strategy",
    "iou_metrics",
    "pretrain_on_folders",
    "train_classifier",
    "train_on_benchmark",
    "train_on_folders",
    "train_segmentation",
]


def __getattr__(name: str):
    # tf.distribute-dependent parts load on first use.
    if name in ("train_segmentation", "TrainingResult"):
        from micronet_tf.training import train

        return getattr(train, name)
    if name in ("train_classifier", "ClassifierResult"):
        from micronet_tf.training import classifier

        return getattr(classifier, name)
    if name == "pretrain_on_folders":
        from micronet_tf.training.pretraining import pretrain_on_folders

        return pretrain_on_folders
    if name in (
        "train_on_benchmark",
        "train_on_folders",
        "evaluate_on_benchmark",
        "evaluate_on_folders",
    ):
        from micronet_tf.training import runs

        return getattr(runs, name)
    if name == "get_strategy":
        from micronet_tf.training.distribute import get_strategy

        return get_strategy
    raise AttributeError(f"module 'micronet_tf.training' has no attribute {name!r}")
