"""Dual Path Network encoders (smp's vendored pretrainedmodels ``DPN`` as ``DPNEncoder`` taps it).

Every block is pre-activation (BN -> ReLU -> conv, BatchNorm eps 1e-3) and carries a pair: a
residual part (added) and a dense part (concatenated). smp's stride-4/8/16 outputs are
``relu(concat(resid, dense))`` on the output only (the next stage gets the raw pair); the
stride-32 output is ``conv5_bn_ac`` = ReLU(BN(concat)). smp dilates conv4_* (16) and conv5_* (32).
"""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, register_encoder
from micronet_tf.layers import (
    ChannelSlice,
    batch_norm,
    conv2d,
    encoder_stage,
    max_pool_after_relu,
    relu,
)

BN_EPSILON = 1e-3  # every BatchNorm2d of pretrainedmodels' DPN (momentum: torch's default)
Pair = tuple[keras.KerasTensor, keras.KerasTensor]  # (resid, dense)


def _bn_act(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """``CatBnAct`` without the concatenation: BN then ReLU."""
    return relu(batch_norm(x, epsilon=BN_EPSILON, name=f"{name}.bn"), name=f"{name}.act")


def _bn_act_conv(
    x: keras.KerasTensor,
    filters: int,
    kernel: int,
    *,
    name: str,
    strides: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> keras.KerasTensor:
    """``BnActConv2d``: BN -> ReLU -> conv (no bias)."""
    return conv2d(
        _bn_act(x, name=name),
        filters,
        kernel,
        strides=strides,
        padding=padding,
        groups=groups,
        name=f"{name}.conv",
    )


def _split(x: keras.KerasTensor, at: int, *, names: tuple[str, str]) -> Pair:
    """PyTorch's ``x[:, :at]``, ``x[:, at:]``."""
    return ChannelSlice(0, at, name=names[0])(x), ChannelSlice(at, None, name=names[1])(x)


def _concat(pair: Pair, *, name: str) -> keras.KerasTensor:
    return layers.Concatenate(name=name)(list(pair))


def _dual_path_block(
    x: keras.KerasTensor | Pair,
    *,
    bw: int,
    r: int,
    inc: int,
    groups: int,
    block_type: str,
    b: bool,
    name: str,
) -> Pair:
    """``DualPathBlock``: a projection ("proj" / "down", 1x1, stride 2 in "down") splits into
    the pair in the first block of a stage; resid = x_s1 + out1, dense = concat(x_s2, out2)."""
    x_in = _concat(x, name=f"{name}.x_in") if isinstance(x, tuple) else x
    stride = 2 if block_type == "down" else 1
    if block_type == "normal":
        x_s1, x_s2 = x
    else:
        projection = "c1x1_w_s2" if block_type == "down" else "c1x1_w_s1"
        x_s = _bn_act_conv(x_in, bw + 2 * inc, 1, strides=stride, name=f"{name}.{projection}")
        x_s1, x_s2 = _split(x_s, bw, names=(f"{name}.x_s1", f"{name}.x_s2"))
    out = _bn_act_conv(x_in, r, 1, name=f"{name}.c1x1_a")
    out = _bn_act_conv(out, r, 3, strides=stride, padding=1, groups=groups, name=f"{name}.c3x3_b")
    if b:  # dpn68b: CatBnAct, then two separate 1x1 convs
        out = _bn_act(out, name=f"{name}.c1x1_c")
        out1 = conv2d(out, bw, 1, name=f"{name}.c1x1_c1")
        out2 = conv2d(out, inc, 1, name=f"{name}.c1x1_c2")
    else:
        out = _bn_act_conv(out, bw + inc, 1, name=f"{name}.c1x1_c")
        out1, out2 = _split(out, bw, names=(f"{name}.out1", f"{name}.out2"))
    resid = layers.Add(name=f"{name}.resid")([x_s1, out1])
    return resid, _concat((x_s2, out2), name=f"{name}.dense")


def build_dpn_features(
    inputs: keras.KerasTensor,
    *,
    small: bool,
    num_init_features: int,
    k_r: int,
    groups: int,
    k_sec: tuple[int, int, int, int],
    inc_sec: tuple[int, int, int, int],
    b: bool = False,
) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``DPNEncoder.forward`` returns them; smp's
    ``get_stages()`` is ``{16: conv4_*, 32: conv5_* + conv5_bn_ac}``."""
    stem = "features.conv1_1"
    kernel = 3 if small else 7
    x = conv2d(
        inputs, num_init_features, kernel, strides=2, padding=kernel // 2, name=f"{stem}.conv"
    )
    x = _bn_act(x, name=stem)
    features = [x]  # smp taps conv1_1 before its max pool
    x = max_pool_after_relu(x, 3, strides=2, padding=1, name=f"{stem}.pool")
    bw_factor = 1 if small else 4
    for stage, (blocks, inc) in enumerate(zip(k_sec, inc_sec), 2):
        bw = 64 * 2 ** (stage - 2) * bw_factor
        r = (k_r * bw) // (64 * bw_factor)
        with encoder_stage(2**stage):
            for index in range(1, blocks + 1):
                block_type = "normal" if index > 1 else ("proj" if stage == 2 else "down")
                x = _dual_path_block(
                    x,
                    bw=bw,
                    r=r,
                    inc=inc,
                    groups=groups,
                    block_type=block_type,
                    b=b,
                    name=f"features.conv{stage}_{index}",
                )
            if stage == 5:
                features.append(
                    _bn_act(
                        _concat(x, name="features.conv5_bn_ac.cat"), name="features.conv5_bn_ac"
                    )
                )
            else:  # the tap only: the next stage continues from the raw pair
                tap = f"features.conv{stage}_{blocks}.tap"
                features.append(relu(_concat(x, name=f"{tap}.cat"), name=f"{tap}.relu"))
    return features


def dpn_head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    """Global average, then ``last_linear`` (a 1x1 ``Conv2d`` with bias), at every size.

    This is pretrainedmodels' ``DPN.logits`` without test-time pooling (training mode, or
    ``test_time_pool=False``). In eval mode the original pools 7x7 (stride 1) before
    ``last_linear`` and averages the global mean and max after it: identical at 224x224 (a 7x7
    map), different above, and an error below 193x193 (a map under 7x7).
    """
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avgpool")(x)
    x = conv2d(x, classes, 1, use_bias=True, name="last_linear")
    return layers.Flatten(name="last_linear.flatten")(x)


def _register(
    name: str,
    *,
    small: bool,
    num_init_features: int,
    k_r: int,
    groups: int,
    k_sec: tuple[int, int, int, int],
    inc_sec: tuple[int, int, int, int],
    b: bool = False,
) -> None:
    bw_factor = 1 if small else 4
    channels, out_channels = num_init_features, [3, num_init_features]
    for stage, (blocks, inc) in enumerate(zip(k_sec, inc_sec)):
        channels = 64 * 2**stage * bw_factor + (blocks + 2) * inc  # resid + dense
        out_channels.append(channels)
    register_encoder(
        EncoderSpec(
            name=name,
            family="dpn",
            build=build_dpn_features,
            params={
                "small": small,
                "num_init_features": num_init_features,
                "k_r": k_r,
                "groups": groups,
                "k_sec": k_sec,
                "inc_sec": inc_sec,
                "b": b,
            },
            out_channels=tuple(out_channels),
            classifier_head=dpn_head,
            head_prefixes=("last_linear",),
            head_output="last_linear",
            input_rule="stride-2 steps round up",
        )
    )


_register(
    "dpn68",
    small=True,
    num_init_features=10,
    k_r=128,
    groups=32,
    k_sec=(3, 4, 12, 3),
    inc_sec=(16, 32, 32, 64),
)
_register(
    "dpn68b",
    small=True,
    num_init_features=10,
    k_r=128,
    groups=32,
    k_sec=(3, 4, 12, 3),
    inc_sec=(16, 32, 32, 64),
    b=True,
)
_register(
    "dpn92",
    small=False,
    num_init_features=64,
    k_r=96,
    groups=32,
    k_sec=(3, 4, 20, 3),
    inc_sec=(16, 32, 24, 128),
)
_register(
    "dpn98",
    small=False,
    num_init_features=96,
    k_r=160,
    groups=40,
    k_sec=(3, 6, 20, 3),
    inc_sec=(16, 32, 32, 128),
)
_register(
    "dpn107",
    small=False,
    num_init_features=128,
    k_r=200,
    groups=50,
    k_sec=(4, 8, 20, 3),
    inc_sec=(20, 64, 64, 128),
)
_register(
    "dpn131",
    small=False,
    num_init_features=128,
    k_r=160,
    groups=40,
    k_sec=(4, 8, 28, 3),
    inc_sec=(16, 32, 32, 128),
)
