"""The DAG as Snakemake plans it, weighted by the ledger's measured job times: its critical path,
and its wall time replayed for other core counts.

``dag_jobs`` reads ``snakemake -n --forceall``; ``critical_path`` is the longest chain of
dependent jobs (the wall time no number of cores can beat); the rest is core scaling:

    paperzoo cost --scale mini --simulate-cores 2,4,8,16,32

For each core count ``n`` Snakemake plans the DAG from nothing (``snakemake -n --forceall
--cores n``: jobs, their inputs and outputs, priorities and threads as they are at ``n`` cores;
``cpgnet_latency`` takes every core up to 16 there), and the jobs are replayed with greedy list
scheduling: whenever a job ends, the ready jobs (every input made) are taken by priority (ties
by output path, so the replay is deterministic) and started while their threads fit into the
free cores. Each
job lasts its measured wall seconds from the ledger (``cost_jobs.csv``), where one was measured.

What the replay assumes, and so where it can be wrong:

* a job's wall time is the one measured on the 2-core machine with another job beside it:
  beside more jobs it may be slower (memory bandwidth), on a bigger machine faster (clock);
* the jobs that take every core (``cpgnet_latency``) are timed at 1 thread inside and last as
  long at any core count;
* Snakemake's own start-up and scheduling gaps (about 2-4 s per job, in the measured walls of
  the jobs themselves) and its ILP scheduler's choices beyond priority are not modelled.

The prediction at 2 cores is checked against the measured wall of the last whole run
(``runs_span`` of the ledger) by :func:`check_against`.
"""
from __future__ import annotations

import heapq
from graphlib import TopologicalSorter
from pathlib import Path


def measured(jobs: list[dict], recs: list[dict]) -> list[float | None]:
    """Each job's measured wall seconds from the ledger ``recs``, matched through its benchmark
    file ``logs/<study>/<scale>/<rule>/<job>.benchmark.tsv``: 0 for a job without a benchmark file,
    None for one whose benchmark was never measured (or measured NaN)."""
    secs = {(r["study"], r["rule"], r["job"]): r["s"] for r in recs if r["s"] == r["s"]}
    out: list[float | None] = []
    for j in jobs:
        if not j["benchmark"]:
            out.append(0.0)
            continue
        parts = Path(j["benchmark"]).parts
        out.append(secs.get((parts[-4], parts[-2], parts[-1].removesuffix(".benchmark.tsv"))))
    return out


def job_seconds(jobs: list[dict], recs: list[dict]) -> list[float]:
    """Each job's measured wall seconds, 0 where none was measured (:func:`measured`)."""
    return [w or 0.0 for w in measured(jobs, recs)]


def dependencies(jobs: list[dict]) -> list[set[int]]:
    """For each job, the jobs that make one of its inputs (by index)."""
    producer = {out: i for i, j in enumerate(jobs) for out in j["output"]}
    return [{producer[x] for x in j["input"] if x in producer} - {i} for i, j in enumerate(jobs)]


def replay(jobs: list[dict], seconds: list[float], cores: int) -> dict:
    """Greedy list scheduling of ``jobs`` (each with ``input``, ``output``, ``threads``, ``priority``)
    on ``cores``: the makespan, the mean number of cores busy, and each job's start time."""
    deps = dependencies(jobs)
    users: list[list[int]] = [[] for _ in jobs]
    for i, ds in enumerate(deps):
        for d in ds:
            users[d].append(i)
    waiting = [len(ds) for ds in deps]
    threads = [max(1, min(int(j.get("threads", 1)), cores)) for j in jobs]
    # ties broken by the first output's path, not Snakemake's planning order (which varies between plans)
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i]["output"][:1], jobs[i]["rule"]))
    rank = {i: r for r, i in enumerate(order)}
    ready = [(-int(j.get("priority", 0)), rank[i], i) for i, j in enumerate(jobs) if not deps[i]]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    free, t, busy, start = cores, 0.0, 0.0, [0.0] * len(jobs)
    done = 0
    while done < len(jobs):
        skipped = []
        while ready:
            item = heapq.heappop(ready)
            i = item[2]
            if threads[i] <= free:
                free -= threads[i]
                start[i] = t
                busy += threads[i] * seconds[i]
                heapq.heappush(running, (t + seconds[i], i))
            else:
                skipped.append(item)
        for item in skipped:
            heapq.heappush(ready, item)
        if not running:
            raise ValueError("replay: jobs wait on inputs no job makes (a cycle?)")
        t, i = heapq.heappop(running)
        finished = [i]
        while running and running[0][0] == t:
            finished.append(heapq.heappop(running)[1])
        for i in finished:
            free += threads[i]
            done += 1
            for u in users[i]:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, (-int(jobs[u].get("priority", 0)), rank[u], u))
    return {"cores": cores, "wall_s": t, "busy_cores": busy / t if t else 0.0, "start": start}


def simulate(root: Path, scale: str, recs: list[dict], cores: list[int]) -> list[dict]:
    """The replay at each core count, the DAG planned by Snakemake at that count."""
    rows = []
    for n in cores:
        jobs = dag_jobs(root, scale, cores=n)
        secs = job_seconds(jobs, recs)
        r = replay(jobs, secs, n)
        rows.append({"cores": n, "wall_s": r["wall_s"], "busy_cores": r["busy_cores"], "jobs": len(jobs),
                     "total_s": sum(secs), "measured": sum(s > 0 for s in secs)})
    return rows


def check_against(rows: list[dict], measured_wall_s: float, cores: int = 2) -> dict:
    """The prediction at ``cores`` against a measured wall time (their ratio)."""
    row = next(r for r in rows if r["cores"] == cores)
    return {"cores": cores, "predicted_s": row["wall_s"], "measured_s": measured_wall_s,
            "ratio": row["wall_s"] / measured_wall_s}


def markdown(rows: list[dict], check: dict | None = None) -> str:
    lines = ["Core scaling, predicted (`paperzoo cost --simulate-cores`): the whole DAG replayed "
             "with greedy scheduling on each job's wall time measured on 2 cores (method and assumptions: "
             "`engine/dag.py`).", "",
             "| cores | predicted wall (min) | mean cores busy | speed-up over 2 cores |", "|---|---|---|---|"]
    base = next((r["wall_s"] for r in rows if r["cores"] == 2), rows[0]["wall_s"])
    for r in rows:
        lines.append(f"| {r['cores']} | {r['wall_s'] / 60:.1f} | {r['busy_cores']:.1f} | {base / r['wall_s']:.2f}× |")
    if check:
        lines += ["", f"Check: at {check['cores']} cores the replay predicts {check['predicted_s'] / 60:.1f} min; the "
                      f"ledger's last whole run took {check['measured_s'] / 60:.1f} min "
                      f"(predicted / measured = {check['ratio']:.2f})."]
    return "\n".join(lines) + "\n"


def dag_jobs(root: Path, scale: str, cores: int = 2) -> list[dict]:
    """Every job of the whole DAG at ``scale`` as Snakemake plans it from nothing on ``cores``
    (``snakemake -n --forceall``): rule, inputs, outputs, benchmark file, threads and priority."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", str(cores),
                           "--config", f"scale={scale}"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"snakemake -n --forceall failed in {root}:\n{proc.stderr[-2000:]}")
    jobs, cur = [], None
    for line in proc.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.rstrip().endswith(":"):
            cur = {"rule": line.split(" ", 1)[1].rstrip(":").strip(), "input": [], "output": [], "benchmark": None,
                   "threads": 1, "priority": 0}
            jobs.append(cur)
        elif cur is not None and line.startswith("    ") and ":" in line:
            key, val = line.strip().split(":", 1)
            if key in ("input", "output"):
                cur[key] = [v.strip() for v in val.split(",") if v.strip()]
            elif key == "benchmark":
                cur["benchmark"] = val.strip()
            elif key in ("threads", "priority"):
                cur[key] = int(val.strip())
        elif not line.strip():
            cur = None
    return jobs


def critical_path(jobs: list[dict], recs: list[dict]) -> dict:
    """The longest chain of dependent ``jobs`` (B depends on A when an input of B is an output of
    A), each weighted by its measured wall seconds from ``recs`` (matched through the benchmark
    path ``logs/<study>/<scale>/<rule>/<job>.benchmark.tsv``; a job without one, or never
    measured, weighs 0 and is counted as unmeasured)."""
    seconds = measured(jobs, recs)
    weight, unmeasured = [w or 0.0 for w in seconds], sum(w is None for w in seconds)
    deps = dependencies(jobs)
    finish: dict[int, float] = {}               # longest chain ending with job i
    best_dep: dict[int, int | None] = {}
    for i in TopologicalSorter(dict(enumerate(deps))).static_order():   # CycleError on a cycle
        best_dep[i] = max(deps[i], key=finish.__getitem__, default=None)
        finish[i] = weight[i] + (finish[best_dep[i]] if best_dep[i] is not None else 0.0)
    last = max(finish, key=finish.__getitem__, default=None)
    chain = []
    while last is not None:
        if weight[last] > 0:
            chain.append({"rule": jobs[last]["rule"], "benchmark": jobs[last]["benchmark"], "s": weight[last]})
        last = best_dep[last]
    chain.reverse()
    return {"length_s": sum(c["s"] for c in chain), "chain": chain, "jobs": len(jobs), "unmeasured": unmeasured,
            "total_s": sum(weight)}


def critical_path_markdown(cp: dict, cores: int = 2) -> str:
    floor = max(cp["length_s"], cp["total_s"] / cores)
    lines = [f"Critical path of the whole DAG ({cp['jobs']} jobs, {cp['unmeasured']} without a measurement "
             f"counted as 0 s): **{cp['length_s'] / 60:.1f} min**; Σ job wall {cp['total_s'] / 60:.1f} min, so "
             f"on {cores} cores the run needs at least {floor / 60:.1f} min.", "",
             "| job on the critical path | s |", "|---|---|"]
    lines += [f"| {c['rule']} `{Path(c['benchmark']).name.removesuffix('.benchmark.tsv')}` | {c['s']:.0f} |"
              for c in cp["chain"]]
    return "\n".join(lines) + "\n"
