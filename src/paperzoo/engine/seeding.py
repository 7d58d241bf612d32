"""Seeding and CPU determinism for every entry point."""
from __future__ import annotations

import os
import random
import sys

import numpy as np


def seed_everything(seed: int, threads: int = 1) -> np.random.Generator:
    """Seed python, numpy and (if already imported) torch; pin the thread count.

    ``threads`` is the rule's ``threads:``; when Snakemake runs jobs side by side each job
    gets one thread, because 2-thread OpenMP jobs collapse under contention on 2 cores.
    Returns a numpy ``Generator`` seeded with ``seed`` for new-style numpy code.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch = sys.modules.get("torch")
    if torch is None:  # only seed torch where the caller uses it: importing it costs ~4 s
        return np.random.default_rng(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    deterministic_algorithms(torch)
    return np.random.default_rng(seed)


def deterministic_algorithms(torch) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its import of
    ``torch._inductor`` (and through it ``torch._dynamo``: ~2 s per job on these CPUs, for a
    compiler no job uses). The aten switch is the same one: ``torch.set_deterministic_debug_mode
    ("warn")`` is the public spelling of ``use_deterministic_algorithms(True, warn_only=True)``
    minus inductor's own ``deterministic`` flag, which is set too if inductor is already loaded."""
    torch.set_deterministic_debug_mode("warn")
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        inductor_config.deterministic = True
