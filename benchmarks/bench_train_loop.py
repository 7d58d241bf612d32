"""Each learning study's real training step through ``engine.train`` vs a bare torch loop.

    python benchmarks/bench_train_loop.py --root DIR [--study S ...] [--steps 30] [--scale mini]

``DIR`` is a checkout whose DAG has run at ``--scale`` (its data, teachers, inits and
pretrained backbones exist). For each study the script asks Snakemake for the shell command of
one representative training job (``snakemake -n -p --forcerun``), runs that step's module in
this process with ``engine.train.train`` intercepted: the first call's model, loss, batches and
optimiser settings are timed for ``--steps`` steps (a) through the real ``engine.train`` (its
step: clipping, scheduler, loss parts and history; evaluation callbacks off; in memory, so
without the partial checkpoint every 120 s and the final save, one-off costs that a short
timing would overstate) and
(b) through a bare loop written here with ``torch.optim`` directly (same optimiser and
hyperparameters, same clipping and EMA when the study uses them, no scheduler, no history),
each from the same copy of the model, alternated ``--reps`` times (5; the best of each kept:
single timings on a shared VM vary by about 10 %). Then the step is
aborted: nothing is written to ``DIR``. One more step, from the same start, runs under
``torch.utils.flop_counter.FlopCounterMode`` (forward and backward, the frozen teacher's forward
included; 2 FLOPs per multiply-add; elementwise ops not counted), so each study also gets its
achieved GFLOP/s (counted FLOPs per step / engine seconds per step) and that as a fraction of
this machine's 1-thread fp32 GEMM peak, measured by ``bench_gemm.py`` in the same process.
Results: ``benchmarks/results/train_loop-<scale>.json`` (ms per step, the ratio bare / engine:
1.0 means no overhead; a study measured again replaces its entry, the others are kept with the
host they ran on).

Numbers depend on the machine and its load: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import os
import pstats
import runpy
import shlex
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]

# study -> (representative training output at the scale, its step module); seed 0 of a long arm
JOBS = {
    "cfnet": ("results/cfnet/{scale}/runs/cfnet_m3/seed0/metrics.json", "paperzoo.studies.cfnet.steps"),
    "drkd": ("results/drkd/{scale}/runs/drkd/seed0/metrics.json", "paperzoo.studies.drkd.steps"),
    "kd_detr": ("results/kd_detr/{scale}/runs/kd_detr/seed0/metrics.json", "paperzoo.studies.kd_detr.steps"),
    "group_detr": ("results/group_detr/{scale}/runs/g11/seed0/metrics.json", "paperzoo.studies.group_detr.steps"),
    "cpgnet": ("results/cpgnet/{scale}/runs/fuse2_tcl/seed0/train.json", "paperzoo.studies.cpgnet.steps"),
    "apis": ("results/apis/{scale}/runs/fullmask/seed0/metrics.json", "paperzoo.studies.apis.steps"),
    "ufo": ("results/ufo/{scale}/runs/ufo_largest/seed0/metrics.json", "paperzoo.studies.ufo.steps"),
    "lae": ("results/lae/{scale}/runs/classes_lae_adapter/seed0/metrics.json", "paperzoo.studies.lae.steps"),
}


class _Measured(Exception):
    def __init__(self, result: dict):
        super().__init__("measured")
        self.result = result


def shell_command(root: Path, target: str, scale: str) -> list[str]:
    """The job's step command (``python -m <module> ...``, without the log redirect)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", target, "-n", "-p", "--forcerun", target,
                           "--config", f"scale={scale}"], cwd=root, capture_output=True, text=True)
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip().removeprefix("Shell command:").strip()
        if line.startswith("python -m paperzoo.studies.") and target in line:
            return shlex.split(line.split(" > ", 1)[0])
    raise SystemExit(f"{root}: no step command for {target} in `snakemake -n -p` (has the DAG run at this "
                     f"scale? is the target a run of this study?)\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _bare_optimizer(kw: dict, params):
    import torch

    name = kw.get("optimizer", "adamw")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=kw.get("lr", 3e-4), betas=kw.get("betas", (0.9, 0.999)),
                                 weight_decay=kw.get("weight_decay", 1e-4))
    if name == "adam":
        return torch.optim.Adam(params, lr=kw.get("lr", 3e-4), betas=kw.get("betas", (0.9, 0.999)),
                                weight_decay=kw.get("weight_decay", 1e-4))
    if name == "sgd":
        return torch.optim.SGD(params, lr=kw.get("lr", 3e-4), momentum=kw.get("momentum", 0.9),
                               nesterov=kw.get("nesterov", False), weight_decay=kw.get("weight_decay", 1e-4))
    raise SystemExit(f"bench_train_loop: optimizer {name!r} has no bare counterpart here")


def _bare_loop(model, loss_fn, batches, kw: dict, steps: int, ema) -> float:
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    params = kw.get("params")
    opt = _bare_optimizer(kw, trainable if params is None else params)
    clip = kw.get("clip_grad", 0.1)
    model.train()
    t = time.perf_counter()
    for i in range(steps):
        loss, _ = loss_fn(model, batches(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, clip)
        opt.step()
        if ema is not None:
            ema.update(model)
    return (time.perf_counter() - t) / steps


def count_step_flops(model, loss_fn, batches, start: dict) -> int:
    """FLOPs of one training step (loss forward + backward) from ``start``'s weights."""
    from torch.utils.flop_counter import FlopCounterMode

    model.load_state_dict(start)
    model.train()
    with FlopCounterMode(display=False) as fc:
        loss, _ = loss_fn(model, batches(0))
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(fc.get_total_flops())


def plain_steps(model, loss_fn, batches, opt, first: int, steps: int) -> None:
    """Steps ``first .. first + steps - 1``: loss forward, backward, ``opt.step()`` (no clipping, EMA or
    scheduler: the bare step the profiles and the step variants time)."""
    for i in range(first, first + steps):
        loss, _ = loss_fn(model, batches(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def profile_steps(model, loss_fn, batches, start: dict, steps: int, row_limit: int = 40) -> str:
    """``torch.profiler`` table (self CPU time, top ``row_limit`` ops) of ``steps`` bare training steps."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    model.load_state_dict(start)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss, _ = loss_fn(model, batches(0))        # warm-up step outside the profile
    loss.backward()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        for i in range(steps):
            with record_function("forward+loss"):
                loss, _ = loss_fn(model, batches(i))
            opt.zero_grad(set_to_none=True)
            with record_function("backward"):
                loss.backward()
            with record_function("optimizer"):
                opt.step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)
    model.load_state_dict(start)
    pr = cProfile.Profile()
    pr.enable()
    plain_steps(model, loss_fn, batches, opt, 0, steps)
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(row_limit)
    return table + "\n\n# cProfile of the same steps (Python functions, cumulative)\n" + buf.getvalue()


def on_first_train(module: str, argv: list[str], fn):
    """Run ``module`` as ``__main__`` with ``argv`` and, at its first ``engine.train`` call,
    return ``fn(real_train, model, loss_fn, batches, **kw)`` instead (the step then stops)."""
    import paperzoo.engine.train as engine

    real = engine.train

    def intercept(model, loss_fn, batches, **kw):
        raise _Measured(fn(real, model, loss_fn, batches, **kw))

    engine.train = intercept
    patched = []
    for name, mod in list(sys.modules.items()):           # modules that bound the function at import
        if name.startswith("paperzoo.") and getattr(mod, "train", None) is real:
            mod.train = intercept
            patched.append(mod)
    old_argv = sys.argv
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    except _Measured as m:
        return m.result
    finally:
        sys.argv = old_argv
        engine.train = real
        for mod in patched:
            mod.train = real
    raise SystemExit(f"{module}: the step finished without calling engine.train")


def measure(module: str, argv: list[str], steps: int, reps: int = 5) -> dict:
    """Run ``module`` as ``__main__`` with ``argv``; time its first ``engine.train`` call."""

    def timed(real, model, loss_fn, batches, **kw):
        ema = kw.get("ema")
        # the same model object is reloaded before each timing, so explicit parameter groups stay valid
        start = copy.deepcopy(model.state_dict())
        ema0 = copy.deepcopy(ema.state_dict()) if ema is not None else None
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        engine_s, bare_s = [], []
        for rep in range(reps):
            for which in ("engine", "bare"):
                model.load_state_dict(start)
                if ema is not None:
                    ema.load_state_dict(ema0)
                if which == "engine":
                    ekw = {k: v for k, v in kw.items() if k not in ("steps", "final", "callback", "eval_every",
                                                                    "progress", "desc")}
                    t = time.perf_counter()
                    real(model, loss_fn, batches, steps=steps, final=None, progress=False, **ekw)
                    engine_s.append((time.perf_counter() - t) / steps)
                else:
                    bare_s.append(_bare_loop(model, loss_fn, batches, kw, steps, ema))
        e, b = min(engine_s), min(bare_s)
        step_flops = count_step_flops(model, loss_fn, batches, start)
        return {"step_gflops": step_flops / 1e9, "achieved_gflops": step_flops / e / 1e9,
                "engine_ms_per_step": 1e3 * e, "bare_ms_per_step": 1e3 * b, "bare_over_engine": b / e,
                "trainable_params": n_params, "optimizer": kw.get("optimizer", "adamw"),
                "clip_grad": kw.get("clip_grad", 0.1), "ema": ema is not None,
                "engine_ms_all": [1e3 * x for x in engine_s], "bare_ms_all": [1e3 * x for x in bare_s]}

    return on_first_train(module, argv, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="a checkout whose DAG has run at --scale")
    ap.add_argument("--study", action="append", choices=sorted(JOBS), help="default: all")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--reps", type=int, default=5, help="engine/bare timings alternated this many times; best kept")
    ap.add_argument("--scale", default="mini")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="instead of timing: profile N bare steps with torch.profiler, write the op table to "
                         "benchmarks/results/profile-<study>-<scale>.txt")
    args = ap.parse_args()
    import platform

    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_gemm import cpu_name, gemm_peak

    torch.set_num_threads(1)
    root = args.root.resolve()
    dest = REPO / "benchmarks" / "results" / f"train_loop-{args.scale}.json"
    old = json.loads(dest.read_text()) if dest.exists() else {}
    host = {"host": platform.node(), "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d %H:%M")}
    if not args.profile:                       # the peak is only compared with timings
        peak = gemm_peak(1)["peak_gflops"]
        print(f"1-thread fp32 GEMM peak: {peak:.1f} GFLOP/s", flush=True)
    out = {"scale": args.scale, "steps": args.steps, "reps": args.reps, "studies": dict(old.get("studies", {}))}
    for k in ("host", "cpu"):               # an older file's machine moves into its study entries
        if k in old:
            for st in out["studies"].values():
                st.setdefault(k, old[k])
    os.chdir(root)
    for study in args.study or sorted(JOBS):
        target, module = JOBS[study]
        target = target.format(scale=args.scale)
        cmd = shell_command(root, target, args.scale)
        assert cmd[:3] == ["python", "-m", module], cmd
        if args.profile:
            table = on_first_train(module, cmd[3:], lambda real, model, loss_fn, batches, **kw: profile_steps(
                model, loss_fn, batches, copy.deepcopy(model.state_dict()), args.profile))
            prof = REPO / "benchmarks" / "results" / f"profile-{study}-{args.scale}.txt"
            prof.write_text(f"# {target}: {args.profile} steps, {host['cpu']}, {host['date']}\n{table}\n")
            print(table, flush=True)
            print(prof)
            continue
        try:
            res = measure(module, cmd[3:], args.steps, args.reps)
        except (SystemExit, Exception) as exc:   # noqa: BLE001  (one study's failure is reported, not fatal)
            out["studies"][study] = {"job": target, "error": f"{type(exc).__name__}: {exc}"}
            print(f"{study:11s} FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        res.update(job=target, gemm_peak_gflops_1t=peak, fraction_of_peak=res["achieved_gflops"] / peak, **host)
        out["studies"][study] = res
        print(f"{study:11s} engine {res['engine_ms_per_step']:8.1f} ms/step  bare {res['bare_ms_per_step']:8.1f}  "
              f"bare/engine {res['bare_over_engine']:.3f}  ({res['trainable_params']:,} params)  "
              f"{res['step_gflops']:.2f} GFLOP/step = {res['achieved_gflops']:.1f} GFLOP/s "
              f"({100 * res['fraction_of_peak']:.0f} % of peak)", flush=True)
    if not args.profile:
        dest.write_text(json.dumps(out, indent=1) + "\n")
        print(dest)


if __name__ == "__main__":
    main()
