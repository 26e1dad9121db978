"""Registry-driven parity harness: build smp's PyTorch encoder (random weights, random BatchNorm
statistics and conv biases), convert its state dict with our converter, compare every output.

Each encoder family's test module subclasses ``EncoderFamilyParity`` and sets ``FAMILY`` and
``FULL``. Every registered variant of the family then gets one parity check at a small size
(all of its state dict consumed); the ``FULL`` variants (one representative plus the family's
largest) also get more sizes, depths 3 and 4, dilation (or its refusal, as in smp), classifier
logits against the original classification network, and a ``.keras`` round trip.
``test_registry_coverage.py`` fails when a registered family has no such class.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import torch

from micronet_tf import torch_reference
from micronet_tf.convert import ConversionReport, load_torch_weights
from micronet_tf.encoders import encoder_spec, get_classifier, get_encoder, list_encoders

# Max abs difference allowed, relative to the reference map's scale max(1, max|ref|), float32.
# Round-off grows with depth; measured worst case over all families ~3e-6.
RELATIVE_TOLERANCE = 2e-5


def random_images(height: int, width: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, height, width, 3), np.float32)


def assert_features_match(
    keras_outputs, torch_outputs, context: str, tolerance: float = RELATIVE_TOLERANCE
) -> float:
    """Every map equal within ``tolerance`` (relative, as RELATIVE_TOLERANCE); returns the worst
    relative difference seen."""
    keras_outputs = [np.asarray(o) for o in keras_outputs]
    assert len(keras_outputs) == len(torch_outputs), context
    worst = 0.0
    for index, (ours, ref) in enumerate(zip(keras_outputs, torch_outputs)):
        assert ours.shape == ref.shape, f"{context}, output {index}: {ours.shape} vs {ref.shape}"
        scale = max(1.0, float(np.abs(ref).max()))
        diff = float(np.abs(ours - ref).max())
        assert diff <= tolerance * scale, (
            f"{context}, output {index} {ref.shape}: max abs diff {diff:.3g} exceeds "
            f"{tolerance:g} x scale {scale:.3g}"
        )
        worst = max(worst, diff / scale)
    return worst


def assert_fully_consumed(
    report: ConversionReport, context: str, unused: tuple[str, ...] = ()
) -> None:
    """Every checkpoint tensor assigned (but BatchNorm batch counters and tensors under the
    ``unused`` module paths), every Keras weight set from the checkpoint."""
    ignored = [
        k
        for k in report.ignored
        if not k.endswith(".num_batches_tracked")
        and not any(k.startswith(f"{prefix}.") for prefix in unused)
    ]
    assert report.assigned and not ignored and not report.not_in_checkpoint, (
        f"{context}: ignored {ignored[:5]}, not in checkpoint {report.not_in_checkpoint[:5]}"
    )


def assert_parity_catches(name: str, traps: dict, images: np.ndarray) -> list[np.ndarray]:
    """Each trap, applied to smp's encoder ``name`` (same random weights), makes the parity
    check fail (or the network itself, when branches no longer line up); returns smp's
    outputs."""
    expected = torch_reference.run_nhwc(torch_reference.build_encoder(name, seed=6), images)
    control = torch_reference.run_nhwc(torch_reference.build_encoder(name, seed=6), images)
    assert_features_match(control, expected, f"{name} rebuilt")  # no trap: no failure
    for trap, apply in traps.items():
        wrong = torch_reference.build_encoder(name, seed=6)  # faster than a deep copy
        apply(wrong)
        with pytest.raises(
            (AssertionError, RuntimeError), match="exceeds|vs|Sizes of tensors must match"
        ):
            assert_features_match(torch_reference.run_nhwc(wrong, images), expected, trap)
    return expected


def family_variants(family: str) -> list[str]:
    return [name for name in list_encoders() if encoder_spec(name).family == family]


def first_of_each_family(exclude: tuple[str, ...] = ()) -> list[str]:
    """The first registered variant of every encoder family (but the ``exclude``d families):
    what registry-driven downstream tests run on, so a new family is covered without new code."""
    chosen: dict[str, str] = {}
    for name in list_encoders():
        chosen.setdefault(encoder_spec(name).family, name)
    return [name for family, name in chosen.items() if family not in exclude]


class EncoderFamilyParity:
    """Parity of ``get_encoder`` / ``get_classifier`` with smp for one encoder family."""

    FAMILY: str = ""
    FULL: tuple[str, ...] = ()  # one representative and the family's largest variant
    VARIANT_SIZE: tuple[int, int] = (64, 64)  # every variant is checked at this size
    SIZES: tuple[tuple[int, int], ...] = ((96, 160),)  # the FULL variants at these too
    DILATED_SIZE: tuple[int, int] = (64, 96)
    CLASSIFIER_SIZE: tuple[int, int] = (64, 96)
    # Build options of ours (get_encoder / get_classifier) and the matching reference's
    # (torch_reference.build_encoder / build_classifier): a second class of the same family
    # can cover another option value.
    ENCODER_OPTIONS: dict = {}
    REFERENCE_OPTIONS: dict = {}

    def reference(self, name: str, **kwargs):
        return torch_reference.build_encoder(name, **kwargs, **self.REFERENCE_OPTIONS)

    def encoder(self, name: str, **kwargs) -> keras.Model:
        return get_encoder(name, **kwargs, **self.ENCODER_OPTIONS)

    @staticmethod
    def load(model: keras.Model, reference, name: str) -> ConversionReport:
        """As ``get_encoder`` loads a checkpoint: the spec's head (and, say, EfficientNet's
        unused ``_conv_head``, which smp keeps in its encoder) is not the encoder's."""
        return load_torch_weights(
            model,
            reference.state_dict(),
            ignore_prefixes=encoder_spec(name).encoder_ignored_prefixes,
        )

    def test_variant_matches_pytorch(self, variant: str, tmp_path: Path) -> None:
        """Every variant (the whole registry, family by family) from a NASA-format file with
        DataParallel's ``module.`` prefix, at VARIANT_SIZE, the FULL ones at SIZES too; the
        strict load proves every tensor of smp's state dict used (but the spec's head)."""
        reference = self.reference(variant, seed=1)
        checkpoint = tmp_path / f"{variant}_pretrained_microscopynet_v1.0.pth.tar"
        torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, checkpoint)
        model = self.encoder(variant, weights=checkpoint)
        assert [o.shape[-1] for o in model.outputs] == list(encoder_spec(variant).out_channels)
        sizes = (self.VARIANT_SIZE, *(self.SIZES if variant in self.FULL else ()))
        for height, width in sizes:
            images = random_images(height, width)
            assert_features_match(
                model(images, training=False),
                torch_reference.run_nhwc(reference, images),
                f"{variant} at {height}x{width}",
            )

    @pytest.mark.parametrize("depth", [3, 4])
    def test_shallow_encoder_matches_pytorch(self, name: str, depth: int, tmp_path: Path) -> None:
        reference = self.reference(name, depth=depth, seed=3)
        # A NASA-format file of the whole encoder: the deeper stages' tensors must be ignored
        # (derived from the Keras graph), everything else used.
        checkpoint = torch_reference.save_nasa_checkpoint(reference, tmp_path / "enc.pth.tar")
        model = self.encoder(name, depth=depth, weights=checkpoint)
        images = random_images(*self.SIZES[0])
        outputs = model(images, training=False)
        assert len(outputs) == depth + 1
        assert [o.shape[-1] for o in outputs] == list(encoder_spec(name).out_channels[: depth + 1])
        assert_features_match(
            outputs, torch_reference.run_nhwc(reference, images), f"{name} depth {depth}"
        )

    @pytest.mark.parametrize("output_stride", [16, 8])
    def test_dilation_as_smp(self, name: str, output_stride: int) -> None:
        if not encoder_spec(name).dilatable:
            with pytest.raises(ValueError):  # smp refuses too ...
                self.reference(name, output_stride=output_stride)
            with pytest.raises(ValueError, match="cannot be dilated.*these can be"):
                self.encoder(name, output_stride=output_stride)  # ... and we say who can
            return
        reference = self.reference(name, output_stride=output_stride, seed=4)
        model = self.encoder(name, output_stride=output_stride)
        self.load(model, reference, name)
        height, width = self.DILATED_SIZE
        images = random_images(height, width)
        outputs = model(images, training=False)
        assert outputs[-1].shape[1:3] == (-(-height // output_stride), -(-width // output_stride))
        assert_features_match(
            outputs,
            torch_reference.run_nhwc(reference, images),
            f"{name} output stride {output_stride}",
        )

    def test_classifier_logits_match_pytorch(self, name: str) -> None:
        reference = torch_reference.build_classifier(
            name, classes=54, seed=5, **self.REFERENCE_OPTIONS
        )
        model = get_classifier(name, classes=54, **self.ENCODER_OPTIONS)
        assert_fully_consumed(
            load_torch_weights(model, reference.state_dict()), f"{name} classifier"
        )
        images = random_images(*self.CLASSIFIER_SIZE)
        assert_features_match(
            [model(images, training=False)],
            torch_reference.run_nhwc(reference, images),
            f"{name} classifier",
        )

    def test_keras_file_round_trip(self, name: str, tmp_path: Path) -> None:
        model = self.encoder(name, depth=4)
        path = tmp_path / f"{name}.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path)
        images = random_images(*self.SIZES[-1], batch=1)
        for ours, theirs in zip(model(images), reloaded(images)):
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def parametrize_encoders(metafunc) -> None:
    """pytest hook body: ``variant`` runs over every registered variant of the class's family,
    ``name`` over its ``FULL`` variants."""
    cls = metafunc.cls
    if cls is None or not issubclass(cls, EncoderFamilyParity):
        return
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", family_variants(cls.FAMILY))
    if "name" in metafunc.fixturenames:
        metafunc.parametrize("name", cls.FULL)
