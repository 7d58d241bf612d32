"""Shared building blocks (``docs/ARCHITECTURE.md``): box ops, Hungarian matcher, set criterion,
positional encodings, backbones, the DETR-lite transformer and the model registry.

Importing this package registers the shared models; ``create_model`` and ``list_models``
import the remaining model modules (``registry.MODEL_MODULES``, the studies' own) on demand, so
every registered name resolves without a study-specific import.
"""
from . import backbones, dense, detr_lite  # noqa: F401  (registration side effects)
from .registry import create_model, list_models, register_model  # noqa: F401
