"""Shared building blocks (``docs/ARCHITECTURE.md``): box ops, Hungarian matcher, set criterion,
positional encodings, backbones, the DETR-lite transformer and the model registry.

Importing this package registers every model, so ``create_model`` sees them all.
"""
from . import backbones, dense, detr_lite  # noqa: F401  (registration side effects)
from .registry import create_model, list_models, register_model  # noqa: F401
