"""Model registry in the spirit of timm: models are named by one string.

    @register_model
    def detr_lite_s(**overrides): return DETRLite(**{...defaults..., **overrides})

    model = create_model("detr_lite_s", num_classes=5)

Entry points are small functions whose names encode the variant; ``test_*`` variants are
tiny models for unit tests. The first lookup of a name not yet registered imports the modules
of :data:`MODEL_MODULES` one by one until the name is registered (every ``list_models`` imports
them all), so a study's own models need no import by the caller and a lookup imports no
heavier module than it has to.
"""
from __future__ import annotations

import fnmatch
import importlib
from typing import Callable

_MODELS: dict[str, Callable] = {}

# Every module that registers models (tests/layers/test_registry.py checks the list is complete),
# those that import torchvision at module level (dense, detr_lite and the detectors built on them)
# after those that do not, so a lookup of a light model never imports torchvision.
MODEL_MODULES = (
    "paperzoo.layers.backbones", "paperzoo.layers.vit", "paperzoo.studies.cpgnet.model",
    "paperzoo.studies.apis.models", "paperzoo.layers.dense", "paperzoo.layers.detr_lite",
    "paperzoo.studies.group_detr.models", "paperzoo.studies.cfnet.models", "paperzoo.studies.drkd.models",
    "paperzoo.studies.kd_detr.models",
)


def load_all() -> None:
    """Import every module of :data:`MODEL_MODULES` (registration side effects; cheap: the
    heavy libraries, e.g. timm, are imported inside the entry points)."""
    for mod in MODEL_MODULES:
        importlib.import_module(mod)


def register_model(fn: Callable) -> Callable:
    """Register ``fn`` under its ``__name__`` (must be unique)."""
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def register_presets(module: str, factory: Callable, presets: dict[str, dict], doc: str = "{defaults}") -> None:
    """One entry point per preset: ``name(**kw)`` builds ``factory(**{**defaults, **kw})``,
    attributed to ``module`` (for ``list_models(module=...)``), its docstring ``doc`` formatted
    with ``defaults``. Names already registered are skipped (a module imported twice)."""
    for name, defaults in presets.items():
        if name in _MODELS:
            continue

        def build(_defaults=defaults, **kw):
            return factory(**{**_defaults, **kw})

        build.__name__, build.__qualname__, build.__module__ = name, name, module
        build.__doc__ = doc.format(defaults=defaults)
        register_model(build)


def _load_until(name: str) -> None:
    """Import the modules of :data:`MODEL_MODULES` in order until ``name`` is registered."""
    for mod in MODEL_MODULES:
        if name in _MODELS:
            return
        importlib.import_module(mod)


def create_model(name: str, **overrides):
    """Build the registered model ``name``; keyword ``overrides`` replace its defaults."""
    if name not in _MODELS:
        _load_until(name)
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _MODELS[name](**overrides)


def list_models(pattern: str = "*", module: str | None = None) -> list[str]:
    """Sorted registered names matching the shell-style ``pattern`` (e.g. ``"detr_*"``);
    with ``module``, only entry points defined in that package (e.g. ``"paperzoo.layers"``:
    the image models, not the models a study package registers)."""
    load_all()
    return sorted(n for n, fn in _MODELS.items() if fnmatch.fnmatch(n, pattern)
                  and (module is None or fn.__module__ == module or fn.__module__.startswith(module + ".")))


def is_model(name: str) -> bool:
    """Whether ``name`` is registered NOW (no import: the study modules use it to guard their
    own registration)."""
    return name in _MODELS
