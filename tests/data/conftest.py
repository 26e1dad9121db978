"""tests/data: leave out tf.test.TestCase's ``test_session`` helper (a context manager, not a
test), which TFDS's DatasetBuilderTestCase inherits and pytest would report as skipped."""

from __future__ import annotations


def pytest_collection_modifyitems(config, items) -> None:
    kept = [item for item in items if item.name != "test_session"]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.name == "test_session"])
        items[:] = kept
