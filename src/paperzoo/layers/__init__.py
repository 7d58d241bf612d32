"""Shared building blocks (``docs/ARCHITECTURE.md``): box ops, Hungarian matcher, set criterion,
positional encodings, backbones, the DETR-lite transformer and the model registry.

Importing this package is cheap: it registers nothing itself. ``create_model`` imports the
model modules (``registry.MODEL_MODULES``, shared and the studies' own) on demand, in order,
until the name resolves, so every registered name resolves without a study-specific import and
a job whose models need neither torchvision nor timm does not pay for importing them (~2.5 s per
job: ``benchmarks/results/startup.json``).
"""
from .registry import create_model, list_models, register_model  # noqa: F401
