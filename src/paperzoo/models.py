"""The catalogue of model families: every module that registers models by name, shared
(``paperzoo.layers``) and the studies' own, the way ``timm/models/__init__.py`` lists timm's.

    from paperzoo.models import create_model, list_models
    model = create_model("cfnet_mini_m2", num_classes=4)

It lives on the floor above layers and studies (``docs/ARCHITECTURE.md``), so ``layers/``
names nothing in ``studies/``: the registry there (:mod:`paperzoo.layers.registry`) is bare,
and this module installs its loader into it on import. The package imports this module
(``paperzoo/__init__.py``), so ``paperzoo.layers.create_model`` and ``create_model`` here
resolve every name in any process. Unlike timm's, the families are imported on demand, in
:data:`MODEL_MODULES` order, only until the name resolves: a job whose models need neither
torchvision nor timm does not pay for importing them (~2.5 s per job:
``benchmarks/results/startup.json``).
"""
from __future__ import annotations

import importlib

from paperzoo.layers import registry
from paperzoo.layers.registry import create_model, is_model, list_models, register_model  # noqa: F401

# Every module that registers models (tests/layers/test_registry.py checks the list is complete),
# those that import torchvision at module level (dense, detr_lite and the detectors built on them)
# after those that do not, so a lookup of a light model never imports torchvision.
MODEL_MODULES = (
    "paperzoo.layers.backbones", "paperzoo.layers.vit", "paperzoo.studies.cpgnet.model",
    "paperzoo.studies.apis.models", "paperzoo.layers.dense", "paperzoo.layers.detr_lite",
    "paperzoo.studies.group_detr.models", "paperzoo.studies.cfnet.models", "paperzoo.studies.drkd.models",
    "paperzoo.studies.kd_detr.models",
)


def load(name: str | None = None) -> None:
    """Import the modules of :data:`MODEL_MODULES` in order until ``name`` is registered, or
    all of them for ``None`` (registration side effects; cheap: the heavy libraries, e.g.
    timm, are imported inside the entry points)."""
    for mod in MODEL_MODULES:
        if name is not None and registry.is_model(name):
            return
        importlib.import_module(mod)


def load_all() -> None:
    """Import every module of :data:`MODEL_MODULES`."""
    load(None)


registry.add_loader(load)
