"""Would a cheaper training step pay? Each learning study's real step, timed as it is and
with one-line speed-ups that change floats (so adopting one means rerunning the study and
re-checking its verdicts).

    python benchmarks/bench_step_variants.py --root DIR [--study S ...] [--steps 20] [--reps 3]

``DIR`` is a checkout whose DAG has run at ``--scale`` (as for ``bench_train_loop.py``, whose
job lookup and ``engine.train`` interception this reuses: nothing is written to ``DIR``).
Variants, each a bare loop (loss forward, backward, AdamW step) from the same start weights,
alternated ``--reps`` times, best kept:

* ``base``: AdamW as ``torch.optim`` picks it on CPU, one tensor at a time (the studies ran it so
  until 2026-12-03; ``engine.train`` now asks for the multi-tensor kernels, the same numbers);
* ``fused``: ``AdamW(fused=True)`` (one fused CPU kernel for all parameters);
* ``channels_last``: the model converted to ``torch.channels_last`` (convolutions in NHWC);
* ``fused+channels_last``.

``torch.compile`` is not among them: on kd_detr (detection model + Hungarian loss, graph breaks
at the matcher) compiling the points forward took 116 s for 131 → 105 ms/step, which a ~100 s
job cannot earn back (measured once, 2026-12-02; the number is recorded in the results file).

Results: ``benchmarks/results/step_variants-<scale>.json`` (ms/step per variant, speed-up vs
``base``; a study measured again replaces its entry). Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

VARIANTS = ("base", "fused", "channels_last", "fused+channels_last")
COMPILE_NOTE = {"study": "kd_detr", "what": "torch.compile(forward_with_points, dynamic=False)",
                "compile_s": 116.2, "eager_ms_per_step": 131.0, "compiled_ms_per_step": 105.1,
                "date": "2026-12-02", "verdict": "does not pay: compile time > the 1000-step saving (26 s)"}


def _time_variant(model, loss_fn, batches, start: dict, variant: str, steps: int) -> float:
    import torch
    from bench_train_loop import plain_steps

    model.load_state_dict(start)
    fmt = torch.channels_last if "channels_last" in variant else torch.contiguous_format
    model.to(memory_format=fmt)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True if "fused" in variant else None)
    model.train()
    plain_steps(model, loss_fn, batches, opt, 0, 2)      # warm-up (allocator, oneDNN primitives)
    t = time.perf_counter()
    plain_steps(model, loss_fn, batches, opt, 2, steps)
    per_step = (time.perf_counter() - t) / steps
    model.to(memory_format=torch.contiguous_format)
    return per_step


def measure(module: str, argv: list[str], steps: int, reps: int) -> dict:
    from bench_train_loop import on_first_train

    def timed(real, model, loss_fn, batches, **kw):
        start = copy.deepcopy(model.state_dict())
        times = {v: [] for v in VARIANTS}
        for _ in range(reps):
            for v in VARIANTS:
                times[v].append(_time_variant(model, loss_fn, batches, start, v, steps))
        best = {v: min(t) for v, t in times.items()}
        return {"ms_per_step": {v: round(1e3 * b, 2) for v, b in best.items()},
                "speedup_vs_base": {v: round(best["base"] / b, 3) for v, b in best.items()},
                "ms_all": {v: [round(1e3 * x, 2) for x in t] for v, t in times.items()}}

    return on_first_train(module, argv, timed)


def main() -> None:
    import torch
    from bench_gemm import cpu_name
    from bench_train_loop import JOBS, shell_command

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="a checkout whose DAG has run at --scale")
    ap.add_argument("--study", action="append", choices=sorted(JOBS), help="default: all")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", default="mini")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dest = REPO / "benchmarks" / "results" / f"step_variants-{args.scale}.json"
    out = json.loads(dest.read_text()) if dest.exists() else {}
    out.update(scale=args.scale, steps=args.steps, reps=args.reps, torch_compile=COMPILE_NOTE)
    out.setdefault("studies", {})
    host = {"host": platform.node(), "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d %H:%M")}
    root = args.root.resolve()
    os.chdir(root)
    for study in args.study or sorted(JOBS):
        target, module = JOBS[study]
        target = target.format(scale=args.scale)
        cmd = shell_command(root, target, args.scale)
        try:
            res = measure(module, cmd[3:], args.steps, args.reps)
        except (SystemExit, Exception) as exc:  # noqa: BLE001  (one study's failure is reported, not fatal)
            out["studies"][study] = {"job": target, "error": f"{type(exc).__name__}: {exc}", **host}
            print(f"{study:11s} FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        out["studies"][study] = {"job": target, **res, **host}
        print(f"{study:11s} " + "  ".join(f"{v} {res['ms_per_step'][v]:.1f} ms ({res['speedup_vs_base'][v]:.2f}x)"
                                         for v in VARIANTS), flush=True)
        dest.write_text(json.dumps(out, indent=1) + "\n")
    print(dest)


if __name__ == "__main__":
    main()
