"""engine.ledger: benchmark files summed per study and rule, NaN-safe, written atomically."""
import math
import os

import pytest

from paperzoo.engine import ledger as cost

HEAD = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root, study, rule, job, s, cpu, rss, scale="mini"):
    p = root / study / scale / rule / f"{job}.benchmark.tsv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(HEAD + f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    return p


def test_summary_per_study_and_rule(tmp_path):
    _bench(tmp_path, "a", "train", "x_seed0", 10.0, 9.0, 100.0)
    _bench(tmp_path, "a", "train", "x_seed1", 30.0, 28.0, 300.0)
    _bench(tmp_path, "a", "figures", "log", 2.0, "-", 50.0)       # Snakemake writes '-' when unmeasured
    _bench(tmp_path, "b", "teacher", "log", 5.0, 4.0, 80.0)
    _bench(tmp_path, "b", "teacher", "log", 99.0, 99.0, 99.0, scale="tiny")   # other scale: ignored
    studies, rules = cost.summarise(cost.collect(tmp_path, "mini"))
    a = next(s for s in studies if s["study"] == "a")
    assert (a["jobs"], a["wall_s"], a["cpu_s"], a["max_rss_mb"]) == (3, 42.0, 37.0, 300.0)
    assert a["longest_job"] == "train/x_seed1" and a["longest_s"] == 30.0
    tr = next(r for r in rules if (r["study"], r["rule"]) == ("a", "train"))
    assert tr["mean_job_s"] == 20.0
    fig = next(r for r in rules if r["rule"] == "figures")
    assert fig["cpu_s"] == 0.0 and math.isclose(fig["wall_s"], 2.0)
    out = cost.write(studies, rules, tmp_path / "out", "mini")
    md = out[0].read_text()
    assert "| `a` | 3 | 0.7 | 0.6 |" in md and "| 0.29 | train/x_seed1 (30) |" in md and "| **all** | 4 |" in md
    assert a["span_s"] >= 30.0 and 0 < a["busy"] <= 42.0 / 30.0
    assert out[1].read_text().splitlines()[0] == "study,rule,jobs,wall_s,cpu_s,max_rss_mb"


def test_no_benchmarks_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no benchmark files"):
        cost.main(["--scale", "mini", "--logs", str(tmp_path), "--out", str(tmp_path / "out")])
    (tmp_path / "a" / "mini" / "r").mkdir(parents=True)
    (tmp_path / "a" / "mini" / "r" / "j.benchmark.tsv").write_text("")
    with pytest.raises(ValueError, match="empty benchmark file"):
        cost.collect(tmp_path, "mini")


def test_ledger_merges_a_later_run_and_reruns_replace_their_jobs(tmp_path, capsys):
    """A run of one study merges into the committed per-job ledger: the other study's jobs stay,
    a job measured again replaces its record; --fresh uses the logs alone; a damaged ledger is
    refused with its name and the way out."""
    first, second, out = tmp_path / "logs1", tmp_path / "logs2", tmp_path / "out"
    _bench(first, "a", "train", "x_seed0", 10.0, 9.0, 100.0)
    _bench(first, "b", "teacher", "log", 5.0, 4.0, 80.0)
    cost.main(["--logs", str(first), "--out", str(out)])
    assert len((out / "cost_jobs.csv").read_text().splitlines()) == 3
    _bench(second, "a", "train", "x_seed0", 12.0, 11.0, 110.0)       # a's job rerun
    _bench(second, "a", "train", "x_seed1", 20.0, 19.0, 120.0)       # and a new one
    cost.main(["--logs", str(second), "--out", str(out)])
    recs = cost.read_ledger(out / "cost_jobs.csv")
    assert {(r["study"], r["job"]): r["s"] for r in recs} == {("a", "x_seed0"): 12.0, ("a", "x_seed1"): 20.0,
                                                             ("b", "log"): 5.0}
    assert "| `b` | 1 |" in (out / "cost.md").read_text()
    cost.main(["--logs", str(second), "--out", str(out), "--fresh"])
    assert "`b`" not in (out / "cost.md").read_text()
    (out / "cost_jobs.csv").write_text("study,rule,job,mtime,s,cpu_time,max_rss\na,train,x,notatime,1,1,1\n")
    with pytest.raises(ValueError, match="cost_jobs.csv, line 2: not a cost ledger row.*--fresh"):
        cost.main(["--logs", str(second), "--out", str(out)])


def test_critical_path_is_the_longest_chain_of_measured_dependent_jobs():
    from paperzoo.engine.dag import critical_path, critical_path_markdown

    def job(rule, inp, out, bench):
        return {"rule": rule, "input": inp, "output": out,
                "benchmark": None if bench is None else f"logs/s/mini/{rule}/{bench}.benchmark.tsv"}

    jobs = [job("data", [], ["d"], "x"),
            job("teacher", ["d"], ["t"], "log"),                      # 100 s after data (5 s)
            job("student", ["d", "t"], ["a"], "a_seed0"),             # 30 s after the teacher
            job("student", ["d"], ["b"], "b_seed0"),                  # 120 s, but only after data
            job("agg", ["a", "b"], ["m"], None),                      # no benchmark: 0 s
            job("figures", ["m"], ["f"], "never_measured")]
    recs = [{"study": "s", "rule": r, "job": j, "s": v} for r, j, v in
            [("data", "x", 5.0), ("teacher", "log", 100.0), ("student", "a_seed0", 30.0),
             ("student", "b_seed0", 120.0), ("student", "other", float("nan"))]]
    cp = critical_path(jobs, recs)
    assert cp["length_s"] == 135.0 and [c["rule"] for c in cp["chain"]] == ["data", "teacher", "student"]
    assert cp["unmeasured"] == 1 and cp["total_s"] == 255.0 and cp["jobs"] == 6
    md = critical_path_markdown(cp, cores=2)
    assert "**2.2 min**" in md and "at least 2.2 min" in md and "teacher `log` | 100 |" in md


def test_summary_for_the_readme_has_the_study_table_and_the_critical_path(tmp_path):
    from paperzoo.engine.ledger import summarise, write_summary

    recs = [{"study": "a", "rule": "train", "job": "x_seed0", "mtime": 100.0, "s": 60.0, "cpu_time": 50.0,
             "max_rss": 900.0}]
    studies, _ = summarise(recs)
    text = write_summary(tmp_path, studies, "mini").read_text()
    assert "| `a` | 1 | 1.0 |" in text and "| rule |" not in text and "Critical path" not in text
    (tmp_path / "critical_path.md").write_text("Critical path of the whole DAG: **1.0 min**\n")
    assert "Critical path of the whole DAG" in write_summary(tmp_path, studies, "mini").read_text()


def test_summary_counts_decided_claims_per_kind_and_minutes_per_decided_paper_claim(tmp_path):
    """The summary sets each study's minutes beside its decided verdicts, per claim kind;
    claims that did not run are left out, and a study without a decided paper claim gets no ratio."""
    import json

    from paperzoo.engine.ledger import summarise, write_summary

    recs = [{"study": s, "rule": "train", "job": "x_seed0", "mtime": 100.0, "s": 600.0, "cpu_time": 1.0,
             "max_rss": 1.0} for s in ("a", "b", "c")]
    studies, _ = summarise(recs)
    res = tmp_path / "results"
    claims = {"a": [("paper", "reproduced"), ("paper", "contradicted"), ("paper", "inconclusive"),
                    ("paper", "not run"), ("paper", "negligible"), ("paper", "out of regime"),
                    ("prediction", "inconclusive"), ("check", "reproduced")],
              "b": [("paper", "inconclusive"), ("check", "contradicted")]}
    for st, cl in claims.items():
        (res / st / "mini").mkdir(parents=True)
        (res / st / "mini" / "claims.json").write_text(json.dumps(
            {"claims": [{"id": f"c{i}", "kind": k, "verdict": v} for i, (k, v) in enumerate(cl)]}))
    text = write_summary(tmp_path, studies, "mini", results=res).read_text()
    # negligible is decided; out of regime is not (claims v3)
    assert "| `a` | 10.0 | 3 / 5 | 0 / 1 | 1 / 1 | 3.3 |" in text
    assert "| `b` | 10.0 | 0 / 1 | 0 / 0 | 1 / 1 | – |" in text
    assert "| `c` | 10.0 | " not in text.split("What the compute buys")[1]      # no claims file: no row
    assert "| **all studies** | 20.0 | 3 / 6 | | | **6.7** |" in text                 # Σ minutes / Σ decided paper claims
    assert "What the compute buys" not in write_summary(tmp_path, studies, "mini").read_text()


def test_compare_ledgers_ratio_per_study_over_jobs_both_measured(tmp_path, capsys):
    def rec(study, job, s):
        return {"study": study, "rule": "train", "job": job, "mtime": 0.0, "s": s, "cpu_time": s, "max_rss": 1.0}

    here = [rec("a", "x_seed0", 30.0), rec("a", "x_seed1", 90.0), rec("a", "x_seed2", 5.0), rec("b", "t", 60.0)]
    other = [rec("a", "x_seed0", 20.0), rec("a", "x_seed1", 40.0), rec("b", "t", 60.0), rec("c", "u", 9.0)]
    text = cost.compare_ledgers(here, other)
    # a: Σ 120 s vs 60 s -> 2.0; per-job 1.5 and 2.25; x_seed2 has no counterpart
    assert "(3 jobs; 1 measured only here)" in text
    assert "| `a` | 2 | 2.0 | 1.0 | 2.00 | 1.88 (1.50 – 2.25) |" in text
    assert "| `b` | 1 | 1.0 | 1.0 | 1.00 | 1.00 (1.00 – 1.00) |" in text
    assert "`c`" not in text and "| **all** | 3 | 3.0 | 2.0 | 1.50 | |" in text
    # through the command line: --against writes machine_ratio.md beside the cost tables
    logs = tmp_path / "logs"
    _bench(logs, "a", "train", "x_seed0", 30.0, 29.0, 10.0)
    ledger = tmp_path / "other.csv"
    ledger.write_text("study,rule,job,mtime,s,cpu_time,max_rss\na,train,x_seed0,0,20,19,10\n")
    out = tmp_path / "out"
    cost.main(["--logs", str(logs), "--out", str(out), "--fresh", "--against", str(ledger),
               "--results", str(tmp_path / "none")])
    assert "| `a` | 1 | 0.5 | 0.3 | 1.50 |" in (out / "machine_ratio.md").read_text()
    with pytest.raises(SystemExit, match="no such file"):
        cost.main(["--logs", str(logs), "--out", str(out), "--fresh", "--against", str(tmp_path / "missing.csv")])


def test_merged_runs_span_is_the_sum_of_each_runs_span_and_replace_drops_a_study(tmp_path):
    """A ledger merged from two runs a day apart does not count the day as idle time, and
    --replace drops a study's old jobs (a job the changed DAG no longer has) before merging."""
    assert cost.runs_span([(0.0, 10.0), (5.0, 20.0), (1000.0, 1030.0)]) == (50.0, 2)
    assert cost.runs_span([(0.0, 10.0), (200.0, 210.0)]) == (210.0, 1)      # a gap under 5 min: one run
    assert cost.runs_span([]) == (0.0, 0)
    # a study interleaved with others inside one run keeps one span: first start to last end
    windows = cost.run_windows([(0.0, 10.0), (8.0, 400.0), (390.0, 800.0)])
    assert windows == [(0.0, 800.0)] and cost.runs_span([(0.0, 10.0), (390.0, 800.0)], windows) == (800.0, 1)
    first, second, out = tmp_path / "logs1", tmp_path / "logs2", tmp_path / "out"
    _bench(first, "a", "init", "seed1", 10.0, 9.0, 100.0)
    _bench(first, "a", "train", "x_seed0", 10.0, 9.0, 100.0)
    _bench(first, "b", "teacher", "log", 5.0, 4.0, 80.0)
    cost.main(["--logs", str(first), "--out", str(out)])
    _bench(second, "a", "train", "x_seed0", 12.0, 11.0, 110.0)
    day = 86400.0
    for p in second.rglob("*.benchmark.tsv"):
        st = p.stat()
        os.utime(p, (st.st_atime + day, st.st_mtime + day))
    with pytest.raises(SystemExit, match="--replace c: no benchmark files"):
        cost.main(["--logs", str(second), "--out", str(out), "--replace", "c"])
    cost.main(["--logs", str(second), "--out", str(out), "--replace", "a"])
    recs = cost.read_ledger(out / "cost_jobs.csv")
    assert sorted((r["study"], r["job"]) for r in recs) == [("a", "x_seed0"), ("b", "log")]
    studies, _ = cost.summarise(recs)
    md = cost.markdown(studies, [], "mini")
    allrow = next(line for line in md.splitlines() if line.startswith("| **all**"))
    assert "(2 runs)" in allrow and float(allrow.split("|")[5].split()[0]) < 60.0


def test_replay_schedules_greedily_by_priority_on_the_cores():
    """engine.dag.replay on a hand-worked DAG: data (10 s) feeds three 1-thread jobs of 30, 20
    and 20 s (the 30-s one has priority) and an exclusive 2-thread job of 5 s; a report needs all."""
    from paperzoo.engine.dag import check_against, markdown, replay

    def job(name, inp, threads=1, priority=0):
        return {"rule": name, "input": inp, "output": [name], "threads": threads, "priority": priority}

    jobs = [job("data", []), job("a", ["data"], priority=5), job("b", ["data"]), job("c", ["data"]),
            job("x", ["data"], threads=2), job("report", ["a", "b", "c", "x"])]
    secs = [10.0, 30.0, 20.0, 20.0, 5.0, 1.0]
    # 2 cores: t=10 a (prio) and b start; x (2 threads) and c wait; t=30 b ends, c starts; t=40 a ends;
    # t=50 c ends, x runs 50-55; report 55-56
    two = replay(jobs, secs, 2)
    assert two["wall_s"] == 56.0 and two["start"][4] == 50.0 and two["start"][3] == 30.0
    assert two["busy_cores"] == pytest.approx((10 + 30 + 20 + 20 + 2 * 5 + 1) / 56)
    # 4 cores: a, b, c start at 10 (x waits for 2 free cores: 1 left); b, c end at 30, x 30-35; a ends 40
    four = replay(jobs, secs, 4)
    assert four["wall_s"] == 41.0 and four["start"][4] == 30.0
    # threads above the cores are capped (Snakemake does the same)
    assert replay(jobs, secs, 1)["wall_s"] == sum(secs)
    rows = [{"cores": 2, "wall_s": 56.0, "busy_cores": 1.6}, {"cores": 4, "wall_s": 41.0, "busy_cores": 2.2}]
    chk = check_against(rows, measured_wall_s=60.0)
    assert chk["ratio"] == pytest.approx(56 / 60)
    md = markdown(rows, chk)
    assert "| 4 | 0.7 | 2.2 | 1.37× |" in md and "predicted / measured = 0.93" in md


def test_simulate_plans_the_dag_at_each_core_count(monkeypatch):
    """engine.dag.simulate asks Snakemake for the plan at each core count (threads depend on it) and
    replays it on the ledger's job times."""
    from paperzoo.engine import dag

    asked = []

    def fake_dag_jobs(root, scale, cores=2):
        asked.append(cores)
        return [{"rule": "a", "input": [], "output": ["x"], "benchmark": "logs/s/mini/a/x.benchmark.tsv",
                 "threads": min(cores, 4), "priority": 0},
                {"rule": "b", "input": [], "output": ["y"], "benchmark": "logs/s/mini/b/y.benchmark.tsv",
                 "threads": 1, "priority": 0}]

    monkeypatch.setattr(dag, "dag_jobs", fake_dag_jobs)
    recs = [{"study": "s", "rule": "a", "job": "x", "s": 10.0}, {"study": "s", "rule": "b", "job": "y", "s": 10.0}]
    rows = dag.simulate(".", "mini", recs, [2, 8])
    assert asked == [2, 8]
    # 2 cores: a takes both, then b: 20 s; 8 cores: a (4 threads) and b side by side: 10 s
    assert [r["wall_s"] for r in rows] == [20.0, 10.0] and rows[0]["measured"] == 2
