"""After ``import micronet_tf``, a plain ``keras.saving.load_model`` finds our layers, losses
and metrics, while ``import micronet_tf`` itself still imports neither Keras nor TensorFlow
(importing TensorFlow before torchvision crashes the process).

Keras looks custom classes up by their registered name (``micronet_tf>InputSizeCheck``) in
``keras.src.saving.object_registration.GLOBAL_CUSTOM_OBJECTS``. When that module loads (now,
or later through an import hook), its registry is replaced by one that, asked for a
``micronet_tf>`` name it does not hold yet, first imports the modules that register them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

PREFIX = "micronet_tf>"
REGISTRY_MODULE = "keras.src.saving.object_registration"
# Importing these registers every class the project's .keras files name.
REGISTERING_MODULES = ("micronet_tf.layers", "micronet_tf.models", "micronet_tf.training")


class _LazyRegistry(dict):
    """Keras' registry of custom objects, importing micronet_tf's on the first miss."""

    def __contains__(self, name: object) -> bool:
        if not dict.__contains__(self, name) and isinstance(name, str) and name.startswith(PREFIX):
            for module in REGISTERING_MODULES:
                importlib.import_module(module)
        return dict.__contains__(self, name)


def _patch(module) -> None:
    registry = module.GLOBAL_CUSTOM_OBJECTS
    if not isinstance(registry, _LazyRegistry):
        module.GLOBAL_CUSTOM_OBJECTS = _LazyRegistry(registry)


class _PatchOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Loads Keras' registry module as usual, then patches it."""

    def find_spec(self, name, path=None, target=None):
        if name != REGISTRY_MODULE:
            return None
        sys.meta_path.remove(self)  # find the real module, once
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _patch(module)
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install() -> None:
    if REGISTRY_MODULE in sys.modules:
        _patch(sys.modules[REGISTRY_MODULE])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
