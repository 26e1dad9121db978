"""The paper's augmentation as albumentations transforms (shared by tf.data and PyTorch users)."""

from __future__ import annotations

import albumentations as A
import cv2


def crop_transforms(crop: int) -> list[A.BasicTransform]:
    """Pad (black image, class 0 mask) to at least ``crop`` x ``crop``, then a random crop."""
    return [
        A.PadIfNeeded(
            min_height=crop, min_width=crop, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0
        ),
        A.RandomCrop(height=crop, width=crop),
    ]


def paper_augmentation(
    crop: int | None = 512, *, keep_orientation: bool = False, seed: int | None = None
) -> A.Compose:
    """Random crop, flips (+ 90° rotations unless ``keep_orientation``, e.g. EBC), noise,
    CLAHE / brightness / gamma, sharpen / blur, contrast: the paper's training augmentation."""
    if keep_orientation:  # EBC: the coating's growth direction matters; mirror left-right only
        geometric = [A.HorizontalFlip(p=0.5)]
    else:
        geometric = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=1.0)]
    photometric = [
        A.GaussNoise(std_range=(0.01, 0.03), p=0.5),
        A.OneOf(
            [
                A.CLAHE(p=1.0),
                A.RandomBrightnessContrast(contrast_limit=0.0, p=1.0),
                A.RandomGamma(p=1.0),
            ],
            p=0.5,
        ),
        A.OneOf(
            [A.Sharpen(p=1.0), A.Blur(blur_limit=3, p=1.0), A.MotionBlur(blur_limit=3, p=1.0)],
            p=0.5,
        ),
        A.RandomBrightnessContrast(brightness_limit=0.0, p=0.5),
    ]
    # Cropping first: every later transform then works on crop x crop pixels only.
    cropping = [] if crop is None else crop_transforms(crop)
    return A.Compose(cropping + geometric + photometric, seed=seed)


def crop_only(crop: int | None, seed: int | None = None) -> A.Compose:
    """No augmentation, only the padded random crop (so that samples can be batched)."""
    return A.Compose([] if crop is None else crop_transforms(crop), seed=seed)
