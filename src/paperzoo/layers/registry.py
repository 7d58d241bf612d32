"""Model registry in the spirit of timm: models are named by one string.

    @register_model
    def detr_lite_s(**overrides): return DETRLite(**{...defaults..., **overrides})

    model = create_model("detr_lite_s", num_classes=5)

Entry points are small functions whose names encode the variant; ``test_*`` variants are
tiny models for unit tests. Importing ``paperzoo.layers`` registers everything.
"""
from __future__ import annotations

import fnmatch
from typing import Callable

_MODELS: dict[str, Callable] = {}


def register_model(fn: Callable) -> Callable:
    """Register ``fn`` under its ``__name__`` (must be unique)."""
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def create_model(name: str, **overrides):
    """Build the registered model ``name``; keyword ``overrides`` replace its defaults."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _MODELS[name](**overrides)


def list_models(pattern: str = "*", module: str | None = None) -> list[str]:
    """Sorted registered names matching the shell-style ``pattern`` (e.g. ``"detr_*"``);
    with ``module``, only entry points defined in that package (e.g. ``"paperzoo.layers"``:
    the image models, not the point-cloud models a study package registers when imported)."""
    return sorted(n for n, fn in _MODELS.items() if fnmatch.fnmatch(n, pattern)
                  and (module is None or fn.__module__ == module or fn.__module__.startswith(module + ".")))


def is_model(name: str) -> bool:
    return name in _MODELS
