"""Model registry in the spirit of timm: models are named by one string.

    @register_model
    def detr_lite_s(**overrides): return DETRLite(**{...defaults..., **overrides})

    model = create_model("detr_lite_s", num_classes=5)

Entry points are small functions whose names encode the variant; ``test_*`` variants are
tiny models for unit tests. This module is the bare registry: it knows the names registered
so far, not where models live. The catalogue of model modules sits on the floor above
(``src/paperzoo/models.py``, imported with the package): it installs a loader here
(:func:`add_loader`) that the first lookup of a name not yet registered calls, so a study's
own models need no import by the caller and a lookup imports no heavier module than it has to.
"""
from __future__ import annotations

import fnmatch
from typing import Callable

_MODELS: dict[str, Callable] = {}
# Loaders installed from above (the catalogue, src/paperzoo/models.py): ``load(name)`` imports
# model modules until ``name`` is registered, ``load(None)`` imports them all.
_LOADERS: list[Callable[[str | None], None]] = []


def add_loader(load: Callable[[str | None], None]) -> None:
    """Install ``load`` (once): a lookup of an unregistered name calls ``load(name)``, and
    :func:`list_models` calls ``load(None)``, before answering."""
    if load not in _LOADERS:
        _LOADERS.append(load)


def _load(name: str | None) -> None:
    """Run the installed loaders until ``name`` is registered (every loader for ``None``)."""
    for load in _LOADERS:
        if name is not None and name in _MODELS:
            return
        load(name)


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


def create_model(name: str, **overrides):
    """Build the registered model ``name``; keyword ``overrides`` replace its defaults."""
    if name not in _MODELS:
        _load(name)
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _MODELS[name](**overrides)


def list_models(pattern: str = "*", module: str | None = None) -> list[str]:
    """Sorted registered names matching the shell-style ``pattern`` (e.g. ``"detr_*"``);
    with ``module``, only entry points defined in that package (e.g. ``"paperzoo.layers"``:
    the image models, not the models a study package registers)."""
    _load(None)
    return sorted(n for n, fn in _MODELS.items() if fnmatch.fnmatch(n, pattern)
                  and (module is None or fn.__module__ == module or fn.__module__.startswith(module + ".")))


def is_model(name: str) -> bool:
    """Whether ``name`` is registered NOW (no import: the study modules use it to guard their
    own registration)."""
    return name in _MODELS
