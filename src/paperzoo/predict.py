"""Cost before compute: parameters, FLOPs and predicted device-hours per training rule.

    python -m paperzoo.predict --scale paper [--tflops 60] [--study kd_detr ...]

For every training rule of a study at the given scale (its config after the overlay), the
models are built on PyTorch's ``meta`` device (no memory, no weights) and one forward pass of
one image is counted with ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts
2). A training step costs about 3 forward passes (backward ≈ 2 × forward) per image; a
distilled student adds the frozen teacher's forward. Then

    FLOPs of a rule = runs × steps × batch × FLOPs per image and step,
    device-hours    = FLOPs / (``--tflops`` × 1e12) / 3600,

where ``--tflops`` is the *sustained* throughput you expect of your accelerator on this model
(an assumption you set, not a measurement; a well-fed A100 in mixed precision sustains very
roughly 60-120 TFLOP/s on convolutional and transformer detectors). Evaluation, data loading
and the DETR matchers' CPU work are not counted, so the figure is a floor.

Every paper-scale learning study is planned: ``kd_detr``, ``cfnet``, ``lae`` and ``cpgnet``
(the studies ``config/scales/paper.yaml`` enables); at ``mini``/``tiny`` also ``drkd``,
``group_detr`` and ``apis`` (``ufo`` prints a row saying it is not planned: the sampled path
sets its cost). Per-study approximations are in each planner's docstring (LAE's frozen
backbone needs no weight gradients: 2 forward-equivalents per PET step, 1 per head-only step).

Two uses beyond the table:

* ``--profile FILE`` rewrites the ``set-resources`` block of a SLURM profile: every planned rule
  gets ``runtime`` = its longest job's predicted minutes × ``--safety`` + 15 minutes of start-up
  and evaluation, rounded up to 15 minutes (``workflow/profiles/slurm/config.yaml`` holds the
  result for ``--scale paper --tflops 60``; a test recomputes it).
* ``--validate LEDGER`` (at an embedded scale) sets the prediction against what ran: for every
  planned rule with jobs in the cost ledger (``results/report/<scale>/cost_jobs.csv``), the
  predicted FLOPs per job over the measured mean job seconds = the achieved GFLOP/s, and that as
  a fraction of ``--peak-gflops`` (the machine's 1-thread fp32 GEMM peak, ``benchmarks/bench_gemm.py``).
"""
from __future__ import annotations

import argparse

from .planners import NOT_PLANNED, PLANNERS, Job, forward_flops  # noqa: F401  (re-exported: tests, users)


# parameter counts the papers publish for the models we build at paper scale (None: not confirmed)
PUBLISHED_PARAMS_M = {
    "vit_base_patch16_224_in21k_lae": (86.0, "ViT-Base, Dosovitskiy et al. 2021, Table 1"),
    "dab_detr_r50": (44.0, "DAB-DETR-R50, Liu et al. 2022, Table 2"),
}


def rows(scale: str, studies: list[str] | None, tflops: float, root=".") -> list[dict]:
    """One row per planned (study, rule, arm): parameters, forward GFLOPs per image, runs, steps,
    batch, FLOPs per job and in all, device-hours per job and in all; a study without a planner
    gets a row with a ``note``."""
    from pathlib import Path

    from paperzoo.engine.config import resolve, study_block
    from paperzoo.engine.io import read_yaml

    cfg = resolve({**read_yaml(Path(root) / "config" / "config.yaml"), "scale": scale}, Path(root))
    data = cfg.get("data", {})
    out, counted = [], {}
    for study in studies or cfg["studies"]:
        if study not in PLANNERS:
            out.append({"study": study, "rule": "—", "note": NOT_PLANNED.get(study, "no training rules")})
            continue
        for job in PLANNERS[study](study_block(cfg, study), data):
            key = (study, job.key) if job.key is not None else None
            if key not in counted or key is None:
                counted[key] = forward_flops(job.build, job.image, job.forward, train_mode=job.train_mode,
                                             in_channels=job.in_channels, example=job.example, device=job.device)
            params, f1 = counted[key]
            per_img = job.passes * f1
            if job.extra_build is not None:
                _, fx = forward_flops(job.extra_build, job.image, job.extra_forward)
                per_img += job.extra_fwd * fx
            per_job = job.steps * job.batch * per_img
            pub = PUBLISHED_PARAMS_M.get(job.model)
            out.append({"study": study, "rule": job.rule, "arm": job.arm,
                        "model": job.model + (f" (+ {job.extra} fwd)" if job.extra else ""),
                        "params_M": params / 1e6, "published_params_M": pub[0] if pub else None,
                        "published_source": pub[1] if pub else None,
                        "image": f"{job.image[0]}x{job.image[1]}", "fwd_GFLOPs_per_img": f1 / 1e9,
                        "passes": job.passes, "runs": job.runs, "jobs": job.runs if job.jobs is None else job.jobs,
                        "ledger_rule": job.rule.removeprefix(f"{study}_").removesuffix("_pair"),
                        "ledger_match": job.ledger_match, "group": job.group or job.arm, "steps": job.steps, "batch": job.batch,
                        "TFLOPs_per_job": per_job / 1e12, "PFLOPs": job.runs * per_job / 1e15,
                        "hours_per_job": per_job / (tflops * 1e12) / 3600,
                        "device_hours": job.runs * per_job / (tflops * 1e12) / 3600})
    return out


def _num(x: float) -> str:
    """Three significant digits, no exponent for the sizes this table has."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def markdown(table: list[dict], scale: str, tflops: float) -> str:
    lines = [f"Predicted training cost at scale `{scale}`, {tflops:g} TFLOP/s sustained (an assumption): "
             "FLOPs counted on the meta device, 3 forward passes per training image (+ 1 teacher forward for a "
             "distilled student; LAE's frozen backbone: 2 per PET step, 1 per head-only step); evaluation and "
             "data loading not counted, so the figures are floors.", "",
             "| study | rule | arm | model | params (M) | published (M) | image | fwd GFLOPs/img | runs | steps | "
             "batch | PFLOPs | device-h |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    total = 0.0
    for r in table:
        if "note" in r:
            lines.append(f"| `{r['study']}` | — | | {r['note']} | | | | | | | | | |")
            continue
        total += r["device_hours"]
        pub = "not confirmed" if r["published_params_M"] is None else f"{r['published_params_M']:g}"
        lines.append(f"| `{r['study']}` | {r['rule']} | {r['arm'] or '—'} | `{r['model']}` | {r['params_M']:.3g} | "
                     f"{pub} | {r['image']} | {_num(r['fwd_GFLOPs_per_img'])} | {r['runs']} | {r['steps']:,} | "
                     f"{r['batch']} | {_num(r['PFLOPs'])} | {_num(r['device_hours'])} |")
    lines.append(f"| **total** | | | | | | | | | | | | **{_num(total)}** |")
    sources = sorted({r["published_source"] for r in table if r.get("published_source")})
    if sources:
        lines += ["", "Published parameter counts: " + "; ".join(sources) + "."]
    return "\n".join(lines) + "\n"


# --- the SLURM profile's runtime per rule --------------------------------------------------------

PROFILE_BEGIN = "# BEGIN set-resources (python -m paperzoo.predict --profile; do not edit by hand)"
PROFILE_END = "# END set-resources"


def runtimes(table: list[dict], safety: float = 2.0, overhead_min: float = 15.0) -> dict[str, int]:
    """Minutes per rule for the SLURM profile: the rule's longest job's predicted minutes ×
    ``safety`` + ``overhead_min`` (start-up, data loading, evaluation), rounded up to 15."""
    import math

    per_job: dict[tuple[str, str], float] = {}      # (rule, group) -> minutes of one job
    for r in table:
        if "note" not in r:
            k = (r["rule"], r["group"])
            per_job[k] = per_job.get(k, 0.0) + r["hours_per_job"] * 60
    out: dict[str, float] = {}
    for (rule, _), m in per_job.items():
        out[rule] = max(out.get(rule, 0.0), m)
    return {rule: int(15 * math.ceil((m * safety + overhead_min) / 15)) for rule, m in sorted(out.items())}


def profile_block(mins: dict[str, int], scale: str, tflops: float, safety: float) -> str:
    lines = [PROFILE_BEGIN,
             f"# runtime (minutes) per training rule at scale {scale}: the longest job's predicted time at "
             f"{tflops:g} TFLOP/s x {safety:g} + 15 min,",
             "# rounded up to 15 min. Regenerate after changing a budget: python -m paperzoo.predict --scale "
             f"{scale} --tflops {tflops:g} --profile workflow/profiles/slurm/config.yaml",
             "set-resources:"]
    lines += [f"  {rule}:\n    runtime: {m}" for rule, m in mins.items()]
    lines.append(PROFILE_END)
    return "\n".join(lines) + "\n"


def write_profile(path, block: str) -> bool:
    """Replace the marked block of the profile (appended if absent); True if the file changed."""
    from pathlib import Path

    from paperzoo.engine.io import write_text as atomic_write_text

    text = Path(path).read_text()
    if PROFILE_BEGIN in text:
        head, rest = text.split(PROFILE_BEGIN, 1)
        if PROFILE_END not in rest:
            raise ValueError(f"{path}: {PROFILE_BEGIN!r} without {PROFILE_END!r}: fix the file by hand")
        tail = rest.split(PROFILE_END, 1)[1].lstrip("\n")
        new = head + block + tail
    else:
        new = text.rstrip("\n") + "\n" + block
    if new != text:
        atomic_write_text(path, new)
    return new != text


# --- validation at an embedded scale ---------------------------------------------------------------

def validate(table: list[dict], ledger, peak_gflops: float | None) -> list[dict]:
    """Per planned rule with jobs in ``ledger`` (cost_jobs.csv): predicted TFLOPs per Snakemake
    job (the rule's planned FLOPs over its planned jobs), the measured mean job seconds, the
    achieved GFLOP/s and its fraction of ``peak_gflops``."""
    import csv

    with open(ledger) as fh:
        led = list(csv.DictReader(fh))
    out = []
    for rule in dict.fromkeys(r["rule"] for r in table if "note" not in r):
        rs = [r for r in table if r.get("rule") == rule]
        flops = sum(r["TFLOPs_per_job"] * 1e12 * r["runs"] for r in rs)
        n_jobs = sum(r["jobs"] for r in rs)
        match = rs[0]["ledger_match"] or (lambda j: True)
        secs = []
        for rec in led:
            if rec["study"] == rs[0]["study"] and rec["rule"] == rs[0]["ledger_rule"] and match(rec["job"]):
                try:
                    secs.append(float(rec["s"]))
                except (TypeError, ValueError):
                    pass
        if not secs or not n_jobs:
            continue
        per_job, mean_s = flops / n_jobs, sum(secs) / len(secs)
        ach = per_job / mean_s / 1e9
        out.append({"rule": rule, "planned_jobs": n_jobs, "measured_jobs": len(secs), "TFLOPs_per_job": per_job / 1e12,
                    "mean_job_s": mean_s, "achieved_gflops": ach,
                    "fraction_of_peak": None if not peak_gflops else ach / peak_gflops})
    return out


def validation_markdown(val: list[dict], peak: float | None) -> str:
    head = ("Predicted FLOPs against the measured jobs (cost ledger): achieved GFLOP/s = predicted FLOPs per job / "
            "mean job wall seconds (start-up, data loading and evaluation included)"
            + (f"; fraction of this machine's 1-thread fp32 GEMM peak ({peak:.1f} GFLOP/s)." if peak else "."))
    lines = [head, "", "| rule | jobs (planned / measured) | predicted TFLOPs/job | mean job s | achieved GFLOP/s |"
             " of peak |", "|---|---|---|---|---|---|"]
    for v in val:
        frac = "—" if v["fraction_of_peak"] is None else f"{100 * v['fraction_of_peak']:.0f} %"
        lines.append(f"| {v['rule']} | {v['planned_jobs']} / {v['measured_jobs']} | {_num(v['TFLOPs_per_job'])} | "
                     f"{v['mean_job_s']:.0f} | {v['achieved_gflops']:.2f} | {frac} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="paper")
    ap.add_argument("--study", action="append", help="only these studies (repeatable)")
    ap.add_argument("--tflops", type=float, default=60.0, help="sustained accelerator TFLOP/s you expect")
    ap.add_argument("--profile", help="rewrite this SLURM profile's set-resources block from the prediction")
    ap.add_argument("--safety", type=float, default=2.0, help="runtime = predicted x safety + 15 min (--profile)")
    ap.add_argument("--validate", metavar="LEDGER", help="cost_jobs.csv of a run at this (embedded) scale")
    ap.add_argument("--peak-gflops", type=float, help="1-thread fp32 GEMM peak (benchmarks/bench_gemm.py)")
    ap.add_argument("--out", help="also write the printed markdown here")
    args = ap.parse_args(argv)
    if args.tflops <= 0:
        ap.error("--tflops must be positive")
    if args.safety < 1:
        ap.error("--safety must be >= 1")
    table = rows(args.scale, args.study, args.tflops)
    text = markdown(table, args.scale, args.tflops)
    if args.validate:
        text += "\n" + validation_markdown(validate(table, args.validate, args.peak_gflops), args.peak_gflops)
    print(text)
    if args.out:
        from paperzoo.engine.io import write_text as atomic_write_text

        atomic_write_text(args.out, text)
    if args.profile:
        changed = write_profile(args.profile, profile_block(runtimes(table, args.safety), args.scale, args.tflops,
                                                            args.safety))
        print(f"{args.profile}: {'updated' if changed else 'already up to date'}")


if __name__ == "__main__":
    main()
