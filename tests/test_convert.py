"""The converter: checkpoint formats, strict accounting and its error messages, safe loading."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import torch

from micronet_tf import torch_reference
from micronet_tf.convert import (
    ConversionError,
    convert_checkpoint,
    load_torch_weights,
    read_torch_checkpoint,
)
from micronet_tf.encoders import get_classifier, get_encoder
from tests.encoders.parity import assert_features_match, random_images

ENCODER = "resnet18"


@pytest.fixture(scope="module")
def reference():
    return torch_reference.build_encoder(ENCODER, seed=7)


@pytest.fixture(scope="module")
def state(reference):
    return {k: v.clone() for k, v in reference.state_dict().items()}


def _head(classes: int = 54) -> dict[str, torch.Tensor]:
    return {"fc.weight": torch.randn(classes, 512), "fc.bias": torch.randn(classes)}


def test_nasa_format_variants_load_identically(tmp_path: Path, reference, state) -> None:
    """Plain, module.-prefixed, state_dict-wrapped, and with a classifier head: same weights."""
    images = random_images(64, 64)
    expected = torch_reference.run_nhwc(reference, images)
    variants = {
        "plain": state,
        "data_parallel": {f"module.{k}": v for k, v in state.items()},
        "wrapped": {"state_dict": state, "epoch": 3, "architecture": "Unet"},
        "with_head": {**state, **_head()},
    }
    for label, checkpoint in variants.items():
        path = tmp_path / f"{label}.pth.tar"
        torch.save(checkpoint, path)
        model = get_encoder(ENCODER, weights=path)
        assert_features_match(model(images, training=False), expected, label)


def test_wrapped_checkpoint_keeps_metadata(state) -> None:
    checkpoint = read_torch_checkpoint({"state_dict": state, "encoder": "resnet18", "epoch": 9})
    assert checkpoint.metadata == {"encoder": "resnet18", "epoch": 9}
    assert set(checkpoint.state_dict) == set(state)
    assert isinstance(checkpoint.state_dict["conv1.weight"], np.ndarray)


def test_missing_tensor_is_named(state) -> None:
    broken = {k: v for k, v in state.items() if k != "layer2.1.bn2.running_var"}
    with pytest.raises(ConversionError, match=r"missing from the checkpoint \(1\)") as error:
        load_torch_weights(get_encoder(ENCODER), broken)
    assert "layer2.1.bn2.running_var" in str(error.value)


def test_unexpected_tensor_is_named(state) -> None:
    broken = {**state, "layer9.0.conv1.weight": torch.zeros(3)}
    with pytest.raises(ConversionError, match="in the checkpoint but not in the model") as error:
        load_torch_weights(get_encoder(ENCODER), broken)
    assert "layer9.0.conv1.weight" in str(error.value)


def test_mis_shaped_tensor_is_named_and_nothing_is_assigned(state) -> None:
    broken = dict(state)
    broken["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    model = get_encoder(ENCODER)
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    with pytest.raises(ConversionError, match="shape mismatch") as error:
        load_torch_weights(model, broken)
    assert "layer1.0.conv1.weight: checkpoint (64, 64, 5, 5)" in str(error.value)
    assert all(
        np.array_equal(a, keras.ops.convert_to_numpy(w)) for a, w in zip(before, model.weights)
    )


def test_wrong_encoder_name_for_checkpoint(state) -> None:
    with pytest.raises(ConversionError, match="Check that the encoder name"):
        load_torch_weights(get_encoder("resnet34"), state)


def test_non_tensor_entry_is_rejected(state) -> None:
    with pytest.raises(ConversionError, match="'note' is a str, expected a tensor"):
        read_torch_checkpoint({**state, "note": "hello"})


class _Payload:
    """Unpickling this would run code: the loader must refuse it."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_pickle_is_refused(tmp_path: Path, capfd) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": _Payload()}, handle, protocol=2)
    with pytest.raises(ConversionError, match="weights_only=True"):
        read_torch_checkpoint(path)
    assert "pwned" not in capfd.readouterr().out


def test_classifier_head_loads_or_warns(state, saved: Path) -> None:
    head = _head(10)
    model = get_classifier(ENCODER, classes=10)
    report = load_torch_weights(model, {**state, **head}, optional_prefixes=("fc",))
    assert "fc.weight" in report.assigned
    kernel = keras.ops.convert_to_numpy(model.get_layer("fc").kernel)
    np.testing.assert_allclose(kernel, head["fc.weight"].numpy().T)
    with pytest.warns(UserWarning, match="fc.weight"):
        get_classifier(ENCODER, classes=10, weights=saved)
    with pytest.raises(ConversionError, match="fc.weight: checkpoint \\(54, 512\\)"):
        load_torch_weights(get_classifier(ENCODER, classes=10), {**state, **_head(54)})


@pytest.fixture(scope="module")
def saved(state, tmp_path_factory) -> Path:
    """The module's encoder state saved once in NASA's format (removed with pytest's temp dirs)."""
    path = tmp_path_factory.mktemp("nasa") / "encoder.pth.tar"
    torch.save(state, path)
    return path


def test_convert_checkpoint_writes_keras_weights(tmp_path: Path, reference, saved: Path) -> None:
    out = tmp_path / "resnet18.weights.h5"
    convert_checkpoint(saved, ENCODER, out)
    images = random_images(64, 96)
    model = get_encoder(ENCODER, weights=out)
    assert_features_match(
        model(images, training=False), torch_reference.run_nhwc(reference, images), "h5 round trip"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["resnet18.weights.h5"]  # no temp files left
    stamp = out.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="exists"):
        convert_checkpoint(saved, ENCODER, out)
    assert out.stat().st_mtime_ns == stamp


def test_failed_conversion_leaves_no_output(tmp_path: Path, saved: Path) -> None:
    out = tmp_path / "wrong.weights.h5"
    with pytest.raises(ConversionError):
        convert_checkpoint(saved, "resnet50", out)
    assert list(tmp_path.iterdir()) == []


def test_classifier_conversion_reads_class_count(tmp_path: Path, state) -> None:
    checkpoint = tmp_path / "classifier.pth"
    torch.save({**state, **_head(54)}, checkpoint)
    model, report = convert_checkpoint(
        checkpoint, ENCODER, tmp_path / "c.weights.h5", classifier=True
    )
    assert model.output_shape == (None, 54)
    assert "fc.bias" in report.assigned


def test_weights_argument_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MICRONET_TF_HOME", str(tmp_path / "cache"))  # an empty zoo cache
    monkeypatch.delenv("MICRONET_TF_TRUST_UNVERIFIED", raising=False)
    monkeypatch.delenv("MICRONET_TF_ZOO_URL", raising=False)
    with pytest.raises(RuntimeError, match="no published sha256 yet"):  # micronet_tf.zoo
        get_encoder(ENCODER, weights="micronet")
    with pytest.raises(FileNotFoundError, match="no such file"):
        get_encoder(ENCODER, weights=tmp_path / "absent.pth")
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"")
    with pytest.raises(ValueError, match="unknown file type"):
        get_encoder(ENCODER, weights=odd)


def test_encoder_argument_errors() -> None:
    with pytest.raises(ValueError, match="Did you mean 'resnet50'"):
        get_encoder("resnet5O")
    with pytest.raises(ValueError, match="output_stride must be one of"):
        get_encoder(ENCODER, output_stride=4)
    with pytest.raises(ValueError, match="depth must be an integer in 1..5"):
        get_encoder(ENCODER, depth=6)
    with pytest.raises(ValueError, match="classes must be a positive integer"):
        get_classifier(ENCODER, classes=0)


def test_no_warning_for_a_complete_checkpoint(state) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_torch_weights(get_encoder(ENCODER), state, ignore_prefixes=("fc",))
