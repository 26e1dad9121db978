"""Print the README's encoder tables (markdown) from the registry and the zoo manifest: one row
per family (input sizes, dilation, options), one per encoder (channels, NASA's accuracy).

Run: .venv/bin/python tools/make_encoder_table.py. tests/test_readme.py checks that the README
holds exactly these tables, so they cannot drift from the code.
"""

from __future__ import annotations

from micronet_tf.encoders import encoder_spec, list_encoders
from micronet_tf.zoo import packaged_manifest


def _top1(encoder: str, pretraining: str) -> str:
    for entry in packaged_manifest().entries:
        if (entry.encoder, entry.pretraining, entry.default) == (encoder, pretraining, True):
            return f"{entry.accuracy['top1']:g}"
    return "-"


def family_table() -> str:
    rows = [
        "| family | encoders | feature-map sizes (inputs of 32 x 32 and up) | "
        "dilation (DeepLabV3 / V3+ / PAN) | "
        "build options |",
        "|---|---|---|---|---|",
    ]
    families: dict[str, list[str]] = {}
    for name in list_encoders():
        families.setdefault(encoder_spec(name).family, []).append(name)
    for family, names in families.items():
        spec = encoder_spec(names[0])
        options = "; ".join(
            f"`{k}`: {' / '.join(f'`{v}`' for v in values)} (default first)"
            for k, values in spec.options.items()
        )
        rows.append(
            f"| {family} | {len(names)} | {spec.input_rule} | "
            f"{'yes' if spec.dilatable else 'no (smp refuses)'} | {options or '-'} |"
        )
    return "\n".join(rows)


def encoder_table() -> str:
    rows = [
        "| encoder | family | channels (first output, strides 2 to 32) | "
        "NASA top-1 %: MicroNet / ImageNet→MicroNet |",
        "|---|---|---|---|",
    ]
    for name in list_encoders():
        spec = encoder_spec(name)
        rows.append(
            f"| `{name}` | {spec.family} | {', '.join(map(str, spec.out_channels))} | "
            f"{_top1(name, 'micronet')} / {_top1(name, 'imagenet-micronet')} |"
        )
    return "\n".join(rows)


def tables() -> str:
    return f"{family_table()}\n\n{encoder_table()}"


if __name__ == "__main__":
    print(tables())
