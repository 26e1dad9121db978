"""The README's encoder tables are the registry's (tools/make_encoder_table.py writes them), its
Layout table is the tree, and the names it used before the renames still work."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_encoder_table_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_encoder_table", ROOT / "tools" / "make_encoder_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.tables()
    assert table in (ROOT / "README.md").read_text(), (
        "README.md's encoder table is out of date: paste the output of "
        "`.venv/bin/python tools/make_encoder_table.py`"
    )


def test_readme_layout_table_lists_every_package_and_module() -> None:
    """The Layout table has one row per package and module of micronet_tf, and each row's path
    exists (so a rename or a new module fails here until the table says so)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout\n") : text.index("## Design choices")]
    listed = re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
    assert len(listed) == len(set(listed)), "a path is listed twice"
    missing_paths = [p for p in listed if not (ROOT / p).exists()]
    assert not missing_paths, f"listed but not in the tree: {missing_paths}"
    package = ROOT / "micronet_tf"
    tree = {
        str(p.relative_to(ROOT)) for p in package.rglob("*.py") if "tfds_datasets" not in p.parts
    }
    tree |= {f"{p.parent.relative_to(ROOT)}/" for p in package.rglob("__init__.py")} - {
        "micronet_tf/"
    }
    tree.add("micronet_tf/tfds_datasets/")
    unlisted = sorted(tree - set(listed))
    assert not unlisted, f"in the tree but not in the README's Layout table: {unlisted}"


def test_renamed_modules_keep_working_with_a_warning() -> None:
    """Public paths from before the renames (issue 19) still work for one release, and say so."""
    import importlib
    import sys

    for old, new, name in (
        ("micronet_tf.tiling", "micronet_tf.prediction", "predict"),
        ("micronet_tf.batch", "micronet_tf.file_commands", "predict_files"),
    ):
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=f"{old} was renamed {new}"):
            module = importlib.import_module(old)
        assert getattr(module, name) is getattr(importlib.import_module(new), name)
