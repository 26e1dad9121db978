"""Every registered encoder has parity coverage: a family test class in this folder (several
when they cover different build options), whose FULL variants include the family's largest
(by parameter count of smp's encoder)."""

from __future__ import annotations

import importlib
from pathlib import Path

import segmentation_models_pytorch as smp
import torch

from micronet_tf.encoders import encoder_spec, list_encoders
from tests.encoders.parity import EncoderFamilyParity, family_variants


def _family_tests() -> dict[str, list[type[EncoderFamilyParity]]]:
    classes: dict[str, list[type[EncoderFamilyParity]]] = {}
    for path in sorted(Path(__file__).parent.glob("test_*_parity.py")):
        module = importlib.import_module(f"tests.encoders.{path.stem}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, EncoderFamilyParity)
                and value is not EncoderFamilyParity
            ):
                classes.setdefault(value.FAMILY, []).append(value)
    return classes


def _parameter_count(name: str) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        encoder = smp.encoders.get_encoder(name, weights=None)
    return sum(p.numel() for p in encoder.parameters())


def test_every_registered_encoder_has_parity_coverage() -> None:
    tests = _family_tests()
    families = {encoder_spec(name).family for name in list_encoders()}
    assert families == set(tests), f"families without a parity test: {families - set(tests)}"
    for family, classes in tests.items():
        variants = family_variants(family)
        largest = max(variants, key=_parameter_count)
        for cls in classes:
            assert cls.FULL and set(cls.FULL) <= set(variants), (family, cls.FULL)
            assert largest in cls.FULL, f"{cls.__name__}: FULL must include {largest}"
            assert len(cls.FULL) >= min(2, len(variants)), f"{cls.__name__}: FULL needs 2"
