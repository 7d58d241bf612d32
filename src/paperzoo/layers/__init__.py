"""Shared building blocks (``docs/ARCHITECTURE.md``): box ops, Hungarian matcher, set criterion,
positional encodings, backbones, the DETR-lite transformer and the model registry.

Importing this package is cheap: it registers nothing itself. The registry here is bare; the
catalogue of model modules (shared and the studies' own) is ``src/paperzoo/models.py``, on the
floor above, which ``paperzoo/__init__.py`` imports: ``create_model`` then imports the model
modules on demand, in order, until the name resolves, so every registered name resolves without
a study-specific import and a job whose models need neither torchvision nor timm does not pay
for importing them (~2.5 s per job: ``benchmarks/results/startup.json``).
"""
from .registry import create_model, list_models, register_model  # noqa: F401
