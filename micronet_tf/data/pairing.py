"""Pairing micrographs with their label images by name, as NASA's code does."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
MASK_SUFFIX = "_mask"
UNPAIRED_CHOICES = ("skip", "error")


@dataclass
class Pairing:
    """Matched ``(image name, mask name)`` pairs and the names left without a partner."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    images_without_mask: list[str] = field(default_factory=list)
    masks_without_image: list[str] = field(default_factory=list)

    @property
    def unpaired(self) -> bool:
        return bool(self.images_without_mask or self.masks_without_image)

    def describe(self, where: str) -> str:
        parts = []
        if self.images_without_mask:
            parts.append(f"images without a mask: {', '.join(self.images_without_mask)}")
        if self.masks_without_image:
            parts.append(f"masks without an image: {', '.join(self.masks_without_image)}")
        return f"{where}: " + "; ".join(parts)

    def check(self, where: str, on_unpaired: str) -> None:
        """Log the unpaired names (``"skip"``) or raise a ValueError naming them (``"error"``)."""
        if on_unpaired not in UNPAIRED_CHOICES:
            raise ValueError(f"on_unpaired={on_unpaired!r}: expected one of {UNPAIRED_CHOICES}")
        if not self.unpaired:
            return
        message = self.describe(where)
        if on_unpaired == "error":
            raise ValueError(message + " (pass on_unpaired='skip' to leave them out)")
        logger.warning("%s; skipped", message)


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and PurePath(name).suffix.lower() in IMAGE_SUFFIXES


def pair_names(images: Iterable[str], masks: Iterable[str]) -> Pairing:
    """Pair ``name.ext`` with ``name_mask.ext`` or the same name (any image extension each).

    Non-image names (``.DS_Store``, ``Thumbs.db``) are ignored; two images or two masks that
    claim the same partner are an error naming both.
    """
    by_stem: dict[str, str] = {}
    for name in sorted(filter(is_image_name, images)):
        stem = PurePath(name).stem
        if stem in by_stem:
            raise ValueError(
                f"images {by_stem[stem]!r} and {name!r} have the same name stem; keep one of them"
            )
        by_stem[stem] = name
    mask_for: dict[str, str] = {}
    unmatched_masks = []
    for name in sorted(filter(is_image_name, masks)):
        stem = PurePath(name).stem
        key = stem if stem in by_stem else stem.removesuffix(MASK_SUFFIX)
        if key not in by_stem:
            unmatched_masks.append(name)
            continue
        if key in mask_for:
            raise ValueError(
                f"masks {mask_for[key]!r} and {name!r} both match image "
                f"{by_stem[key]!r}; keep one of them"
            )
        mask_for[key] = name
    pairing = Pairing(masks_without_image=unmatched_masks)
    for stem, image in sorted(by_stem.items(), key=lambda item: item[1]):
        if stem in mask_for:
            pairing.pairs.append((image, mask_for[stem]))
        else:
            pairing.images_without_mask.append(image)
    return pairing
