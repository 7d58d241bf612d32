"""Per-run metrics, aggregation, atomic writes and resumable loops."""
import json

import numpy as np
import pytest

from paperzoo.engine.checkpoint import finish, load_checkpoint, partial_path, run_resumable, save_checkpoint
from paperzoo.engine.io import atomic_path, write_json
from paperzoo.engine.metrics import aggregate, write_run_metrics


def test_aggregate_mean_std_n(tmp_path):
    files = []
    for seed, acc in enumerate([0.5, 0.6, 0.7]):
        f = tmp_path / f"a/seed{seed}/metrics.json"
        write_run_metrics(f, study="s", scale="tiny", arm="a", seed=seed, metrics={"acc": acc})
        files.append(f)
    f = tmp_path / "b/seed0/metrics.json"
    write_run_metrics(f, study="s", scale="tiny", arm="b", seed=0, metrics={"acc": 0.9})
    agg = aggregate([files[2], f, files[0], files[1]])   # order of the files does not matter
    a = agg["arms"]["a"]["acc"]
    assert {k: a[k] for k in ("mean", "std", "n")} == pytest.approx({"mean": 0.6, "std": 0.1, "n": 3})
    assert a["by_seed"] == {"0": 0.5, "1": 0.6, "2": 0.7}      # kept for paired verdicts
    assert agg["arms"]["b"]["acc"] == {"mean": 0.9, "std": 0.0, "n": 1, "by_seed": {"0": 0.9}}
    assert agg["provenance"] == {"runs": 4, "run_wall_s": 0.0, "git_commits": ["unknown"], "git_dirty": False}


def test_bad_runs_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="metric 'acc' of arm 'a' is nan"):
        write_run_metrics(tmp_path / "m.json", study="s", scale="t", arm="a", seed=0, metrics={"acc": float("nan")})
    f = tmp_path / "m.json"
    write_run_metrics(f, study="s", scale="t", arm="a", seed=0, metrics={"acc": 1})
    with pytest.raises(ValueError, match="seed 0 of arm 'a' appears twice"):
        aggregate([f, f])


def test_atomic_path_leaves_target_untouched_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"ok": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_checkpoint_roundtrip_numpy(tmp_path):
    state = {"x": np.arange(6.0).reshape(2, 3), "k": 3, "nested": {"rng": np.array([1, 2], dtype=np.uint64)}}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    np.testing.assert_array_equal(back["x"], state["x"])
    assert back["k"] == 3 and back["nested"]["rng"].dtype == np.uint64


def test_resume_after_kill_gives_the_uninterrupted_result(tmp_path):
    final = tmp_path / "result.json"

    def run(kill_at=None):
        acc = {"total": np.zeros(1)}

        def step(i):
            if i == kill_at:
                raise KeyboardInterrupt
            acc["total"] += i

        run_resumable(10, step, lambda: dict(acc), acc.update, final, every_s=0.0, progress=False)
        return float(acc["total"][0])

    with pytest.raises(KeyboardInterrupt):
        run(kill_at=6)
    assert partial_path(final).exists()
    assert run() == sum(range(10))  # resumed from the step-6 checkpoint, same total
    finish(final)
    assert not partial_path(final).exists()


def test_run_meta_records_the_cpu():
    """Learned metrics are bit-reproducible only on the same CPU: every run says which."""
    import time

    import torch  # noqa: F401  (loaded: the capability is recorded)

    from paperzoo.engine.metrics import run_meta
    meta = run_meta(time.perf_counter(), 1, ("numpy",), arm="x")
    assert meta["cpu_model"] and meta["cpu_count"] >= 1
    assert meta["torch_cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "ZVECTOR", "NO AVX", "VSX", "SVE256"}
    assert meta["arm"] == "x" and meta["threads"] == 1


def test_run_meta_records_process_cpu_share():
    """A run says how much of its life it was on a core: CPU seconds that follow busy work,
    never more than the process's wall seconds on one thread (else a competed-for core is invisible)."""
    import time

    from paperzoo.engine.metrics import process_times, run_meta

    before = process_times()
    t = time.process_time()
    while time.process_time() - t < 0.3:                 # busy work: 0.3 CPU-s on this thread
        pass
    after = run_meta(time.perf_counter(), 1, ("numpy",))
    assert after["process_cpu_s"] - before["process_cpu_s"] >= 0.29
    assert after["process_s"] - before["process_s"] >= 0.29
    assert after["process_s"] > 0 and after["process_cpu_s"] > 0


def test_run_meta_records_commit_dirty_flag_and_config_digest(tmp_path):
    """Provenance per run: the git commit and dirty flag of the checkout, and the SHA-256 of
    the config block that ``engine.cli.parse_step`` read (a different block, a different digest)."""
    import subprocess
    import time

    from paperzoo.engine import metrics

    d1 = metrics.set_params_digest({"steps": 3, "lr": 1e-3})
    assert d1 == metrics.set_params_digest({"lr": 1e-3, "steps": 3})            # key order does not matter
    assert metrics.set_params_digest({"steps": 4, "lr": 1e-3}) != d1
    meta = metrics.run_meta(time.perf_counter(), 1)
    assert len(meta["git_commit"]) == 40 and isinstance(meta["git_dirty"], bool)
    assert meta["params_sha256"] == metrics.set_params_digest({"steps": 4, "lr": 1e-3})
    # the dataset: the SHA-256 of its manifest (no manifest, no entry)
    data = tmp_path / "data"
    data.mkdir()
    assert metrics.set_data_digest(data) is None and "data_manifest_sha256" not in metrics.run_meta(0.0, 1)
    (data / "manifest.json").write_text('{"files": {"a.npz": "00"}}')
    digest = metrics.set_data_digest(data)
    assert metrics.run_meta(0.0, 1)["data_manifest_sha256"] == digest and len(digest) == 64
    (data / "manifest.json").write_text('{"files": {"a.npz": "01"}}')
    assert metrics.set_data_digest(data) != digest
    metrics.set_data_digest(None)
    # a repository of its own: clean, then dirty after a tracked change; no repository: unknown
    repo = tmp_path / "r"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f").write_text("a")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    assert metrics.git_state(repo)["git_dirty"] is False
    (repo / "results").mkdir()
    (repo / "results" / "metrics.json").write_text("{}")
    subprocess.run([*git, "add", "results"], check=True)
    subprocess.run([*git, "commit", "-qm", "y"], check=True)
    (repo / "results" / "metrics.json").write_text('{"x": 1}')   # the pipeline rewriting its own aggregate
    assert metrics.git_state(repo)["git_dirty"] is False
    (repo / "f").write_text("b")
    assert metrics.git_state(repo)["git_dirty"] is True
    assert metrics.git_state(tmp_path / "nowhere") == {"git_commit": "unknown", "git_dirty": None}


def test_a_half_written_run_file_stops_the_aggregate_with_its_name_and_the_way_out(tmp_path):
    import json

    import pytest

    from paperzoo.engine.metrics import aggregate

    good = tmp_path / "a" / "metrics.json"
    good.parent.mkdir()
    good.write_text(json.dumps({"study": "s", "scale": "mini", "arm": "a", "seed": 0, "metrics": {"AP": 0.1}}))
    bad = tmp_path / "b" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text(good.read_text()[:25])                       # cut mid-write
    with pytest.raises(ValueError, match=r"b/metrics.json: not valid JSON .* delete it and rerun"):
        aggregate([good, bad])
