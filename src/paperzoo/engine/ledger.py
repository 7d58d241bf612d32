"""What each study cost, from Snakemake's per-job benchmark files.

    paperzoo cost --scale mini [--logs logs] [--out results/report/mini] [--fresh]   (python -m paperzoo.engine.ledger)

Every rule writes ``logs/<study>/<scale>/<rule>/<name>.benchmark.tsv`` (``bench_path`` in
``workflow/rules/common.smk``): wall seconds ``s``, ``cpu_time`` (user + system seconds of the
job's processes), ``max_rss`` (MB). This module sums them per study and rule and writes
``cost.md`` / ``cost.csv``:

* per study: jobs, the sum of job wall seconds, CPU seconds, the span from the first job's
  start (end time minus its wall) to the last job's end, the mean number of jobs running over
  that span (Σ wall / span: cores minus this is the mean idle cores), the largest peak RSS, and
  the longest job (the study's floor on any number of cores);
* per rule: the same, with the mean wall seconds of one job.

Every job's record also goes to ``cost_jobs.csv`` (the ledger, committed with the report): a
later run merges its benchmark files into it, a rerun job replacing its old record, so a table
built after rerunning one study still covers the others (``--fresh``: the logs alone;
``--replace STUDY``: that study's old records go, for a study whose DAG changed). Runs in a
merged ledger are told apart by gaps of five minutes with no job (``runs_span``).

``--critical-path``, ``--simulate-cores``: the DAG's critical path and core scaling (``engine.dag``).

Sums of job wall time are not the DAG's wall time: jobs run in parallel (two at a time on two
cores), so the study's wall on ``n`` cores is roughly ``max(longest job, sum / n)`` plus
scheduling gaps. A benchmark file is written when its job ends, so a study whose runs were
reused from an earlier session shows only the jobs that ran since; the table states the
files' date range.
"""
from __future__ import annotations

import argparse
import csv
import io
import statistics
import time
from pathlib import Path

from . import dag
from .io import atomic_path

COLUMNS = ("s", "cpu_time", "max_rss")
RUN_GAP_S = 300.0    # no job running for this long separates two runs in a merged ledger


def read_benchmark(path: Path) -> dict[str, float]:
    """The last row of one benchmark TSV as floats (``s``, ``cpu_time``, ``max_rss``); a
    missing or non-numeric value (Snakemake writes ``-`` when it could not measure) is NaN."""
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text()), delimiter="\t"))
    if not rows:
        raise ValueError(f"{path}: empty benchmark file")
    out = {}
    for k in COLUMNS:
        try:
            out[k] = float(rows[-1][k])
        except (KeyError, TypeError, ValueError):
            out[k] = float("nan")
    return out


def collect(logs: Path, scale: str) -> list[dict]:
    """One record per benchmark file of ``scale``: study, rule, job name, the measures and the
    file's modification time."""
    recs = []
    for p in sorted(Path(logs).glob(f"*/{scale}/*/*.benchmark.tsv")):
        study, _, rule = p.parts[-4], p.parts[-3], p.parts[-2]
        recs.append({"study": study, "rule": rule, "job": p.name.removesuffix(".benchmark.tsv"),
                     "mtime": p.stat().st_mtime, **read_benchmark(p)})
    return recs


LEDGER_FIELDS = ("study", "rule", "job", "mtime", "s", "cpu_time", "max_rss")


def read_ledger(path: Path) -> list[dict]:
    """The per-job records of an earlier ``cost_jobs.csv`` (none if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    recs = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                recs.append({"study": row["study"], "rule": row["rule"], "job": row["job"],
                             **{k: float(row[k]) for k in ("mtime", "s", "cpu_time", "max_rss")}})
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}, line {i}: not a cost ledger row ({exc}); expected the columns "
                                 f"{', '.join(LEDGER_FIELDS)}. Delete the file (or pass --fresh) to rebuild "
                                 f"it from the logs alone") from exc
    return recs


def merge(ledger: list[dict], recs: list[dict]) -> list[dict]:
    """The ledger's records with every job that has a benchmark file now replaced by it (a job
    rerun since is measured again); sorted by study, rule, job."""
    out = {(r["study"], r["rule"], r["job"]): r for r in ledger}
    out.update({(r["study"], r["rule"], r["job"]): r for r in recs})
    return [out[k] for k in sorted(out)]


def compare_ledgers(here: list[dict], other: list[dict], label_here: str = "here",
                    label_other: str = "other") -> str:
    """Per study, the wall-time ratio here / other over the jobs both ledgers measured (the same
    study, rule and job): Σ here / Σ other, and the median and range of the per-job ratios.

    For "machines of the same kind differ": a ledger taken on another machine (or on the same
    one under other load) says how far a budget set on one holds on the other. Jobs measured on
    one side only are counted, not compared.
    """
    theirs = {(r["study"], r["rule"], r["job"]): r["s"] for r in other}
    by_study: dict[str, list[tuple[float, float]]] = {}
    only_here = 0
    for r in here:
        o = theirs.get((r["study"], r["rule"], r["job"]))
        if o is None or not o > 0 or not r["s"] == r["s"]:
            only_here += 1
            continue
        by_study.setdefault(r["study"], []).append((r["s"], o))
    lines = [f"Job wall time, {label_here} against {label_other}, over the jobs both measured "
             f"({sum(map(len, by_study.values()))} jobs; {only_here} measured only {label_here}).", "",
             f"| study | jobs | Σ {label_here} (min) | Σ {label_other} (min) | Σ ratio | per-job ratio: median "
             f"(min – max) |", "|---|---|---|---|---|---|"]
    tot_a = tot_b = 0.0
    for study in sorted(by_study):
        pairs = by_study[study]
        a, b = sum(x for x, _ in pairs), sum(y for _, y in pairs)
        tot_a, tot_b = tot_a + a, tot_b + b
        ratios = sorted(x / y for x, y in pairs)
        lines.append(f"| `{study}` | {len(pairs)} | {a / 60:.1f} | {b / 60:.1f} | {a / b:.2f} | "
                     f"{statistics.median(ratios):.2f} ({ratios[0]:.2f} – {ratios[-1]:.2f}) |")
    if tot_b:
        lines.append(f"| **all** | {sum(map(len, by_study.values()))} | {tot_a / 60:.1f} | {tot_b / 60:.1f} | "
                     f"{tot_a / tot_b:.2f} | |")
    return "\n".join(lines) + "\n"


def _nan_sum(xs) -> float:
    return float(sum(x for x in xs if x == x))


def _nan_max(xs) -> float:
    xs = [x for x in xs if x == x]
    return max(xs) if xs else float("nan")


def run_windows(intervals: list[tuple[float, float]], gap_s: float = RUN_GAP_S) -> list[tuple[float, float]]:
    """The runs in a merged ledger (a study rerun the next day): job ``(start, end)``
    intervals split where no job ran for ``gap_s`` or more; one ``(first start, last end)``
    per run."""
    runs: list[list[float]] = []
    for a, b in sorted(intervals):
        if runs and a <= runs[-1][1] + gap_s:
            runs[-1][1] = max(runs[-1][1], b)
        else:
            runs.append([a, b])
    return [(a, b) for a, b in runs]


def runs_span(intervals: list[tuple[float, float]], windows: list[tuple[float, float]] | None = None
              ) -> tuple[float, int]:
    """(span seconds, number of runs) of job intervals: per run window (default: the
    intervals' own, ``run_windows``), the first of its jobs' starts to the last end, summed,
    so the hours between two runs do not count as idle time."""
    windows = run_windows(intervals) if windows is None else windows
    span, runs = 0.0, 0
    for lo, hi in windows:
        inside = [(a, b) for a, b in intervals if lo <= a and b <= hi]
        if inside:
            span += max(b for _, b in inside) - min(a for a, _ in inside)
            runs += 1
    return span, runs


def _intervals(rs: list[dict]) -> list[tuple[float, float]]:
    return [(r["mtime"] - (r["s"] if r["s"] == r["s"] else 0.0), r["mtime"]) for r in rs]


def summarise(recs: list[dict]) -> tuple[list[dict], list[dict]]:
    """(per-study rows, per-rule rows), each with jobs, wall_s, cpu_s, max_rss_mb and the
    longest job."""
    def group(keyf):
        out: dict = {}
        for r in recs:
            out.setdefault(keyf(r), []).append(r)
        return out

    windows = run_windows(_intervals(recs))
    studies = []
    for study, rs in sorted(group(lambda r: r["study"]).items()):
        longest = max(rs, key=lambda r: r["s"] if r["s"] == r["s"] else -1)
        wall = _nan_sum(r["s"] for r in rs)
        intervals = _intervals(rs)
        span, runs = runs_span(intervals, windows)
        studies.append({"study": study, "jobs": len(rs), "wall_s": wall,
                        "cpu_s": _nan_sum(r["cpu_time"] for r in rs), "max_rss_mb": _nan_max(r["max_rss"] for r in rs),
                        "longest_job": f"{longest['rule']}/{longest['job']}", "longest_s": longest["s"],
                        "first": min(r["mtime"] for r in rs), "last": max(r["mtime"] for r in rs),
                        "span_s": span, "runs": runs, "intervals": intervals,
                        "busy": wall / span if span > 0 else float("nan")})
    rules = []
    for (study, rule), rs in sorted(group(lambda r: (r["study"], r["rule"])).items()):
        wall = _nan_sum(r["s"] for r in rs)
        rules.append({"study": study, "rule": rule, "jobs": len(rs), "wall_s": wall, "mean_job_s": wall / len(rs),
                      "cpu_s": _nan_sum(r["cpu_time"] for r in rs), "max_rss_mb": _nan_max(r["max_rss"] for r in rs)})
    return studies, rules


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def _span_cell(span_s: float, runs: int) -> str:
    return f"{span_s / 60:.1f}" + (f" ({runs} runs)" if runs > 1 else "")


def markdown(studies: list[dict], rules: list[dict], scale: str) -> str:
    lines = [f"Job costs at scale `{scale}` from Snakemake's benchmark files (sums over jobs; jobs run in parallel, "
             "so a study's wall on n cores is about max(longest job, sum / n)).", "",
             "| study | jobs | Σ job wall (min) | CPU ≥ (min) | span (min) | jobs running (mean) | peak RSS (GB) | "
             "longest job (s) | measured (UTC) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in studies:
        lines.append(f"| `{s['study']}` | {s['jobs']} | {s['wall_s'] / 60:.1f} | {s['cpu_s'] / 60:.1f} | "
                     f"{_span_cell(s['span_s'], s['runs'])} | {s['busy']:.2f} | {s['max_rss_mb'] / 1024:.2f} | "
                     f"{s['longest_job']} ({s['longest_s']:.0f}) | {_day(s['first'])} – {_day(s['last'])} |")
    tot_w, tot_c = sum(s["wall_s"] for s in studies), sum(s["cpu_s"] for s in studies)
    span, runs = runs_span([iv for s in studies for iv in s["intervals"]])
    busy = f"{tot_w / span:.2f}" if span > 0 else ""
    lines += [f"| **all** | {sum(s['jobs'] for s in studies)} | {tot_w / 60:.1f} | {tot_c / 60:.1f} | "
              f"{_span_cell(span, runs)} | {busy} | | | |", "",
              "span: first job start to last job end of the study (its wall clock if it ran alone; studies "
              f"run together overlap); where the ledger merges several runs (no job for {RUN_GAP_S / 60:.0f} "
              "minutes or more between them) it is the sum of the runs' spans and says how many; "
              "jobs running: Σ job wall / span, at most the cores (2 here), so "
              "cores − jobs running is the mean idle cores. CPU ≥: a lower bound, not the CPU time: Snakemake's "
              "benchmark samples a job's CPU seconds every second for its first 30 s and every 30 s after, and "
              "what a job uses after its last sample is not counted (a 37 s job at 100 % CPU was recorded as "
              "15 s), so Σ wall − CPU is not idle time.", "",
              "| study | rule | jobs | Σ wall (s) | mean job (s) | CPU ≥ (s) | peak RSS (MB) |", "|---|---|---|---|---|---|---|"]
    for r in rules:
        lines.append(f"| `{r['study']}` | {r['rule']} | {r['jobs']} | {r['wall_s']:.0f} | {r['mean_job_s']:.1f} | "
                     f"{r['cpu_s']:.0f} | {r['max_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def write(studies: list[dict], rules: list[dict], out_dir: Path, scale: str,
          recs: list[dict] | None = None) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv_path = out_dir / "cost.md", out_dir / "cost.csv"
    written = [md, csv_path]
    if recs is not None:                      # the per-job ledger the next run merges with
        ledger = out_dir / "cost_jobs.csv"
        with atomic_path(ledger) as tmp:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(LEDGER_FIELDS)
                for r in recs:
                    w.writerow([r["study"], r["rule"], r["job"], round(r["mtime"], 1),
                                *(round(r[k], 3) for k in ("s", "cpu_time", "max_rss"))])
        written.append(ledger)
    with atomic_path(md) as tmp:
        Path(tmp).write_text(markdown(studies, rules, scale))
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["study", "rule", "jobs", "wall_s", "cpu_s", "max_rss_mb"])
            for r in rules:
                w.writerow([r["study"], r["rule"], r["jobs"], round(r["wall_s"], 2), round(r["cpu_s"], 2),
                            round(r["max_rss_mb"], 1)])
    return written


def claims_markdown(studies: list[dict], results: Path, scale: str) -> str:
    """What each study's compute buys: its Σ job minutes beside how many of its claims got a
    decided final verdict (reproduced, negligible or contradicted; ``engine.claims.DECIDED``) out of
    those that ran, per kind (the paper's
    statements, our predictions, self-checks), from ``<results>/<study>/<scale>/claims.json``.
    Empty when no study has a claims file."""
    from .claims import DECIDED
    from .io import read_json

    rows, total_min, total_decided, total_paper = [], 0.0, 0, 0
    for s in studies:
        path = Path(results) / s["study"] / scale / "claims.json"
        if not path.is_file():
            continue
        claims = [c for c in read_json(path).get("claims", []) if c.get("verdict") != "not run"]
        count = {k: (sum(c["verdict"] in DECIDED for c in claims if c.get("kind") == k),
                     sum(c.get("kind") == k for c in claims)) for k in ("paper", "prediction", "check")}
        decided = count["paper"][0]
        total_min, total_decided, total_paper = total_min + s["wall_s"] / 60, total_decided + decided, \
            total_paper + count["paper"][1]
        per = f"{s['wall_s'] / 60 / decided:.1f}" if decided else "–"
        rows.append(f"| `{s['study']}` | {s['wall_s'] / 60:.1f} | {count['paper'][0]} / {count['paper'][1]} | "
                    f"{count['prediction'][0]} / {count['prediction'][1]} | {count['check'][0]} / {count['check'][1]} "
                    f"| {per} |")
    if not rows:
        return ""
    per = f"{total_min / total_decided:.1f}" if total_decided else "–"
    rows.append(f"| **all studies** | {total_min:.1f} | {total_decided} / {total_paper} | | | **{per}** |")
    return "\n".join(["What the compute buys: claims with a decided final verdict (reproduced, negligible or "
                      "contradicted; Holm-adjusted, out of regime not counted) of those that ran, per kind.", "",
                      "| study | Σ job wall (min) | paper claims decided | predictions decided | checks decided | "
                      "min per decided paper claim |", "|---|---|---|---|---|---|", *rows]) + "\n"


def write_summary(out_dir: Path, studies: list[dict], scale: str, results: Path | None = None) -> Path:
    """``cost_summary.md`` (what the README shows): the per-study table, what it buys in decided
    claims (:func:`claims_markdown`, from ``results``) and, when ``critical_path.md`` and
    ``core_scaling.md`` are in ``out_dir``, the critical path and the predicted wall per core
    count; the per-rule table stays in cost.md."""
    text = "\n\n".join(markdown(studies, [], scale).split("\n\n")[:3]).rstrip() + "\n"
    text += "\nPer rule: `cost.md` in the same folder.\n"
    bought = claims_markdown(studies, results, scale) if results is not None else ""
    if bought:
        text += "\n" + bought
    cp = Path(out_dir) / "critical_path.md"
    if cp.exists():   # its headline; the chain of jobs stays in critical_path.md
        text += "\n" + cp.read_text().split("\n\n")[0].strip() + " The chain of jobs: `critical_path.md`.\n"
    if (Path(out_dir) / "core_scaling.md").exists():
        text += "\n" + (Path(out_dir) / "core_scaling.md").read_text()
    dest = Path(out_dir) / "cost_summary.md"
    with atomic_path(dest) as tmp:
        Path(tmp).write_text(text)
    return dest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="mini")
    ap.add_argument("--logs", type=Path, default=Path("logs"))
    ap.add_argument("--out", type=Path, help="output folder (default results/report/<scale>)")
    ap.add_argument("--study", action="append", help="only these studies (repeatable)")
    ap.add_argument("--results", type=Path, default=Path("results"),
                    help="where <study>/<scale>/claims.json are (the summary's decided-claims table)")
    ap.add_argument("--critical-path", action="store_true",
                    help="also the DAG's critical path (runs snakemake -n --forceall here): critical_path.md")
    ap.add_argument("--against", type=Path, metavar="LEDGER",
                    help="also compare the job wall times with another cost_jobs.csv (another machine's): "
                         "machine_ratio.md")
    ap.add_argument("--simulate-cores", metavar="N,N,...",
                    help="also replay the DAG on the measured job times at these core counts (runs snakemake -n "
                         "--forceall per count; engine.dag): core_scaling.md")
    ap.add_argument("--fresh", action="store_true",
                    help="ignore the earlier per-job ledger (cost_jobs.csv): only the benchmark files now in --logs")
    ap.add_argument("--replace", action="append", metavar="STUDY", default=[],
                    help="drop the ledger's jobs of this study before merging (repeatable): after a study's DAG "
                         "changed, jobs it no longer has would otherwise stay")
    args = ap.parse_args(argv)
    out = args.out or Path("results") / "report" / args.scale
    recs = collect(args.logs, args.scale)
    missing = sorted(set(args.replace) - {r["study"] for r in recs})
    if missing:
        raise SystemExit(f"--replace {', '.join(missing)}: no benchmark files of it under {args.logs}/<study>/"
                         f"{args.scale}/ (replacing would drop its jobs and add none)")
    if not args.fresh:
        kept = [r for r in read_ledger(out / "cost_jobs.csv") if r["study"] not in args.replace]
        recs = merge(kept, recs)
    if args.study:
        recs = [r for r in recs if r["study"] in args.study]
    if not recs:
        raise SystemExit(f"no benchmark files under {args.logs}/*/{args.scale}/*/ (run the DAG first)")
    studies, rules = summarise(recs)
    for p in write(studies, rules, out, args.scale, recs=recs):
        print(p)
    if args.critical_path:
        text = dag.critical_path_markdown(dag.critical_path(dag.dag_jobs(Path("."), args.scale), recs))
        with atomic_path(out / "critical_path.md") as tmp:
            Path(tmp).write_text(text)
        print(out / "critical_path.md")
        print(text)
    if args.simulate_cores:
        try:
            cores = sorted({int(x) for x in args.simulate_cores.split(",")})
        except ValueError:
            raise SystemExit(f"--simulate-cores {args.simulate_cores!r}: expected core counts like 2,4,8,16") from None
        rows = dag.simulate(Path("."), args.scale, recs, cores)
        windows = run_windows(_intervals(recs))
        last = max(windows, key=lambda w: w[1] - w[0])
        measured, _ = runs_span(_intervals(recs), [last])
        text = dag.markdown(rows, dag.check_against(rows, measured) if 2 in cores else None)
        with atomic_path(out / "core_scaling.md") as tmp:
            Path(tmp).write_text(text)
        print(out / "core_scaling.md")
        print(text)
    if args.against:
        if not args.against.exists():
            raise SystemExit(f"--against {args.against}: no such file (expected a cost_jobs.csv)")
        text = compare_ledgers(recs, read_ledger(args.against), "here", str(args.against))
        with atomic_path(out / "machine_ratio.md") as tmp:
            Path(tmp).write_text(text)
        print(out / "machine_ratio.md")
        print(text)
    print(write_summary(out, studies, args.scale, results=args.results))
    print(markdown(studies, rules, args.scale).split("\n\n")[1])


if __name__ == "__main__":
    main()
