"""Checkpoints and resumable loops.

A long step saves its state every ``every_s`` seconds to ``<final>.partial`` (atomically),
resumes from that file after a kill, and removes it once the final output is written.
Checkpoints are read with ``torch.load(weights_only=True)``: state must be tensors, numbers,
strings, lists and dicts (numpy arrays are converted to tensors on save).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .io import atomic_path


def _to_torch(obj: Any) -> Any:
    import torch

    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_torch(v) for v in obj]
    return obj


def _from_torch(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: _from_torch(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_torch(v) for v in obj]
    return obj


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Atomically save ``state`` (tensors, numpy arrays, numbers, nested dicts/lists)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(_to_torch(state), tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    import torch

    return _from_torch(torch.load(path, map_location="cpu", weights_only=True))


def partial_path(final: str | os.PathLike) -> Path:
    final = Path(final)
    return final.with_name(final.name + ".partial")


def load_resume_state(path: str | os.PathLike, fingerprint: dict | None, *, kind: str, restart: str,
                      required: tuple[str, ...] = ()) -> dict | None:
    """The state saved at ``path`` for a resume, without its ``"_fingerprint"``; None when there
    is none to resume from. A file that cannot be read (truncated, corrupted, lacking a
    ``required`` key) or that another run left (its fingerprint differs from ``fingerprint``) is
    deleted with a line on stderr naming it (``<path>: unreadable <kind> ...`` / ``<path>: <kind>
    of a different run ...; deleted, starting <restart>``): never a crash loop, never a resume
    that mixes two runs."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path)
        saved = state.pop("_fingerprint", None)
        for key in required:
            state[key]
    except Exception as exc:  # noqa: BLE001  (any unreadable file: restart, never crash-loop)
        print(f"{path}: unreadable {kind} ({type(exc).__name__}: {exc}); deleted, starting {restart}",
              file=sys.stderr, flush=True)
        path.unlink(missing_ok=True)
        return None
    if fingerprint is not None and saved != fingerprint:
        diff = sorted(k for k in set(fingerprint) | set(saved or {}) if (saved or {}).get(k) != fingerprint.get(k))
        print(f"{path}: {kind} of a different run (differs in {diff or 'its fingerprint'}); deleted, starting "
              f"{restart}", file=sys.stderr, flush=True)
        path.unlink(missing_ok=True)
        return None
    return state


def run_resumable(
    total: int,
    step: Callable[[int], None],
    get_state: Callable[[], dict],
    set_state: Callable[[dict], None],
    final: str | os.PathLike,
    *,
    every_s: float = 120.0,
    desc: str = "",
    progress: bool = True,
    fingerprint: dict | None = None,
) -> int:
    """Run ``step(i)`` for ``i`` in ``[start, total)`` with a progress bar and checkpoints.

    ``final`` names the output this loop produces; its partial checkpoint lives at
    ``<final>.partial``. If that file exists the loop resumes from it (``set_state`` gets
    the saved dict, whose ``"_step"`` key says where to continue). The caller writes
    ``final`` and then calls :func:`finish` to remove the partial file. Returns the
    step index the loop resumed from (0 for a fresh start).

    SIGTERM during the loop: the state after the current step is saved to the partial file
    and the process exits with code 143 (preemption, a time limit, ``kill``); a rerun resumes.

    ``fingerprint``: what the run is (e.g. the config block's digest, steps, lr), saved in the
    partial file. A partial file with another fingerprint (left by a killed run of a different
    configuration), or one that cannot be read (truncated, corrupted), is NOT resumed: the loop
    says so on stderr, deletes it and starts from step 0, so that no output mixes two runs.
    """
    from tqdm.auto import tqdm

    ckpt = partial_path(final)
    start = 0
    state = load_resume_state(ckpt, fingerprint, kind="partial checkpoint", restart=f"{final} from step 0",
                              required=("_step",))
    if state is not None:
        start = int(state.pop("_step"))
        set_state(state)
        print(f"resuming {final} from {ckpt.name} at step {start}/{total}", file=sys.stderr, flush=True)
    last = time.monotonic()
    bar = tqdm(total=total, initial=start, desc=desc, disable=not progress, mininterval=2.0)

    def save(i_next: int) -> None:
        save_checkpoint(ckpt, {**get_state(), "_step": i_next,
                               **({"_fingerprint": fingerprint} if fingerprint is not None else {})})

    with _TermFlag() as term:
        for i in range(start, total):
            step(i)
            bar.update(1)
            if term.raised and i + 1 < total:
                save(i + 1)
                bar.close()
                print(f"SIGTERM: saved {ckpt} at step {i + 1}/{total}; exiting (a rerun resumes there)",
                      file=sys.stderr, flush=True)
                raise SystemExit(TERM_EXIT_CODE)
            if time.monotonic() - last >= every_s and i + 1 < total:
                save(i + 1)
                last = time.monotonic()
    bar.close()
    return start


TERM_EXIT_CODE = 143   # 128 + SIGTERM, what a shell reports for a process the signal ended


class _TermFlag:
    """Within the block, SIGTERM (what SLURM sends before a time limit or on preemption, and
    what ``kill`` sends by default) only sets ``raised``; the training loop then checkpoints at
    the end of the current step and exits with :data:`TERM_EXIT_CODE`. The previous handler is
    restored on exit. Outside the main thread (where handlers cannot be set) it does nothing."""

    def __enter__(self):
        import signal
        import threading

        self.raised, self._old = False, None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.raised = True

    def __exit__(self, *exc) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def finish(final: str | os.PathLike) -> None:
    """Remove the partial checkpoint of ``final`` once ``final`` has been written."""
    partial_path(final).unlink(missing_ok=True)
