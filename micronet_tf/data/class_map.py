"""Class maps of users' label images: names, mask colours (or index values), the "rest" class.

A class map is what the command line's ``--classes`` says, e.g. ``matrix secondary:0,0,255
tertiary:255,0,0`` (colour masks; a name without a colour takes every other colour) or, with
``--mask-format index``, ``background oxide crack`` (mask values 0, 1, 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MASK_FORMATS = ("rgb", "index")


@dataclass(frozen=True)
class ClassMap:
    """Class names in mask order (index 0 first) and, for colour masks, their colours."""

    names: tuple[str, ...]
    mask_format: str = "index"
    colours: tuple[tuple[int, int, int] | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format={self.mask_format!r}: expected one of {MASK_FORMATS}")
        if len(self.names) < 2:
            raise ValueError(
                f"classes {list(self.names)}: name at least two classes (the "
                "background, or rest, and what to segment)"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"classes {list(self.names)}: a class name appears twice")
        if self.mask_format == "rgb":
            if self.colours is None or len(self.colours) != len(self.names):
                raise ValueError("colour masks need one colour (or None) per class")
            given = [c for c in self.colours if c is not None]
            if not given:
                raise ValueError(
                    f"classes {list(self.names)}: colour masks need the classes' "
                    "colours (name:R,G,B), or pass --mask-format index"
                )
            if len(self.colours) - len(given) > 1:
                raise ValueError(
                    f"classes {list(self.names)}: at most one class may be "
                    "given without a colour (it takes every other colour)"
                )
            if len(set(given)) != len(given):
                raise ValueError(f"classes {list(self.names)}: two classes share a colour")

    @property
    def folder_classes(self) -> Mapping[str, tuple[int, int, int] | None] | list[str]:
        """The ``classes`` argument of ``segmentation_dataset_from_folders``."""
        if self.mask_format == "rgb":
            return dict(zip(self.names, self.colours))
        return list(self.names)

    @property
    def rest_index(self) -> int:
        """The class that is "everything else": the one without a colour, else class 0."""
        if self.mask_format == "rgb" and None in self.colours:
            return self.colours.index(None)
        return 0

    def to_json(self) -> dict:
        record = {"names": list(self.names), "mask_format": self.mask_format}
        if self.colours is not None:
            record["colours"] = [None if c is None else list(c) for c in self.colours]
        return record

    @classmethod
    def from_json(cls, record: Mapping) -> ClassMap:
        colours = record.get("colours")
        return cls(
            tuple(record["names"]),
            record.get("mask_format", "index"),
            None if colours is None else tuple(None if c is None else tuple(c) for c in colours),
        )

    def describe(self) -> str:
        """``matrix (rest), secondary 0,0,255`` / ``background 0, oxide 1``."""
        if self.mask_format == "index":
            return ", ".join(f"{n} {i}" for i, n in enumerate(self.names))
        return ", ".join(
            f"{n} {'(rest)' if c is None else ','.join(map(str, c))}"
            for n, c in zip(self.names, self.colours)
        )


def _colour(text: str, token: str, argument: str) -> tuple[int, int, int]:
    parts = text.replace("#", "").split(",")
    if len(parts) == 1 and len(parts[0]) == 6:  # a hex colour, 0000ff
        try:
            return tuple(int(parts[0][i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            pass
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(
            f"{argument} {token!r}: expected NAME:R,G,B with 8-bit values "
            "(e.g. secondary:0,0,255) or NAME alone"
        )
    return values


def parse_class_map(
    tokens: Sequence[str], mask_format: str | None = None, *, argument: str = "--classes"
) -> ClassMap:
    """``["matrix", "secondary:0,0,255"]`` -> a :class:`ClassMap`. ``mask_format=None``:
    colour masks when any colour is given, index masks otherwise."""
    if not tokens:
        raise ValueError(
            f"{argument}: name the classes, e.g. {argument} matrix "
            "secondary:0,0,255 (colour masks) or --mask-format index "
            f"{argument} background oxide"
        )
    names, colours = [], []
    for token in tokens:
        name, sep, colour = token.partition(":")
        if not name:
            raise ValueError(f"{argument} {token!r}: a class needs a name")
        names.append(name)
        colours.append(_colour(colour, token, argument) if sep else None)
    if mask_format is None:
        mask_format = "rgb" if any(c is not None for c in colours) else "index"
    if mask_format == "index":
        if any(c is not None for c in colours):
            raise ValueError(
                f"{argument}: index masks (--mask-format index) take class names "
                "only, index 0 first; colours are for --mask-format rgb"
            )
        return ClassMap(tuple(names), "index")
    return ClassMap(tuple(names), mask_format, tuple(colours))
