"""`snakemake --workflow-profile workflow/profiles/slurm` submits real jobs through
snakemake-executor-plugin-slurm with the flags the profile promises.

No SLURM here: tests/workflow/fake_slurm/ holds stand-ins for sbatch, sacct, squeue,
sinfo, scontrol, sacctmgr, srun and scancel (put first on PATH). fake sbatch records its
arguments (one JSON line per call in $FAKE_SLURM_LOG) and really runs the job in the
background; fake sacct reports COMPLETED/FAILED from the job's exit code. So the whole
path is exercised: profile -> plugin -> sbatch line -> job script -> jobstep plugin -> srun
-> the rule's shell command -> outputs -> status polling -> Snakemake exits 0.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAKE_SLURM = Path(__file__).resolve().parent / "fake_slurm"
PROFILE = "workflow/profiles/slurm"

ACCOUNT = "pz_acct"           # what the test exports as PAPERZOO_SLURM_ACCOUNT
PARTITION = "pz_gpu"          # ... as PAPERZOO_SLURM_PARTITION (not sinfo's default: "debug")
GPU_RULE = "interface_phonons_localized"   # gets --set-resources gpu=1 mem_mb=1234
CPU_RULE = "interface_phonons_elastic"     # keeps the profile's default-resources
TARGETS = {
    GPU_RULE: "results/interface_phonons/tiny/runs/localized/seed0/metrics.json",
    CPU_RULE: "results/interface_phonons/tiny/runs/elastic/seed0/metrics.json",
}
# sbatch/srun options that take a separate value (as the plugin writes them)
VALUE_OPTS = {"-A", "-p", "-t", "-D", "-C", "-M", "--mem", "--mem-per-cpu", "--job-name",
              "--output", "--comment", "--account", "--partition", "--time", "--clusters"}


def parse_args(argv: list[str]) -> dict[str, list[str]]:
    """sbatch/srun argv -> {option: [values...]}; `--x=y` and `--x y` both become x: [y]."""
    out: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "=" in a:
            k, v = a.split("=", 1)
        elif a in VALUE_OPTS:
            k, v = a, argv[i + 1]
            i += 1
        elif a.startswith("-"):
            k, v = a, ""
        else:  # srun: the command starts here
            break
        out.setdefault(k, []).append(v)
        i += 1
    return out


def one(opts: dict[str, list[str]], *names: str) -> str | None:
    vals = [v for n in names for v in opts.get(n, [])]
    assert len(vals) <= 1, f"{names} given more than once: {vals}"
    return vals[0] if vals else None


def copy_repo(dst: Path) -> Path:
    """What the DAG reads, not results/, logs/ or .snakemake/ (as a clean clone has)."""
    shutil.copy2(REPO / "Snakefile", dst / "Snakefile")
    for name in ("workflow", "config", "src", "envs"):  # envs/: rules' `conda:` files
        shutil.copytree(REPO / name, dst / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake"))
    return dst


def install_fake_slurm(dst: Path) -> Path:
    """Copy the shims and make them executable (a checkout may have lost the mode bits)."""
    shutil.copytree(FAKE_SLURM, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for f in dst.iterdir():
        if not f.name.startswith(("_", ".")):
            f.chmod(0o755)
    return dst


def stop_leftover_jobs(state: Path, env: dict) -> None:
    """If Snakemake died early, do not leave fake jobs running after the test."""
    ids = [d.name for d in (state / "jobs").glob("*")
           if (d / "state").exists() and (d / "state").read_text().strip() in ("PENDING", "RUNNING")]
    if ids:
        subprocess.run(["scancel", *ids], env=env, check=False)


@pytest.mark.slow
def test_slurm_profile_submits_with_partition_account_mem_time_and_gpus(tmp_path):
    (tmp_path / "repo").mkdir()
    root = copy_repo(tmp_path / "repo")
    fake_bin = install_fake_slurm(tmp_path / "fake_slurm")
    state = tmp_path / "slurm_state"
    sbatch_log = tmp_path / "sbatch.jsonl"
    calls_log = tmp_path / "slurm_calls.jsonl"

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SNAKEMAKE_PROFILE"))}
    env.update({
        "PATH": os.pathsep.join([str(fake_bin), str(BIN), os.environ["PATH"]]),
        "PAPERZOO_SLURM_ACCOUNT": ACCOUNT,
        "PAPERZOO_SLURM_PARTITION": PARTITION,
        "FAKE_SLURM_DIR": str(state),
        "FAKE_SLURM_LOG": str(sbatch_log),
        "FAKE_SLURM_CALLS": str(calls_log),
        "FAKE_SLURM_ACCOUNTS": f"other_acct,{ACCOUNT}",   # what sacctmgr lists for the user
        "FAKE_SLURM_PARTITIONS": f"debug,{PARTITION}",     # sinfo's default is "debug"
        "FAKE_SLURM_PYTHON": sys.executable,
        # a status query waits (<= 20 s) for a running job to end instead of reporting
        # RUNNING: the plugin adds 10 s to its poll interval after every such answer
        "FAKE_SLURM_SACCT_WAIT": "20",
        "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
    })
    cmd = [str(BIN / "snakemake"), *TARGETS.values(),
           "--workflow-profile", PROFILE,
           "--config", "scale=tiny",
           "--set-resources", f"{GPU_RULE}:gpu=1", f"{GPU_RULE}:mem_mb=1234",
           "--jobs", "2",
           # fast polling for the test only (plugin default: 40 s before the first check)
           "--slurm-init-seconds-before-status-checks", "1",
           "--retries", "0", "--latency-wait", "5"]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=180)
    finally:
        stop_leftover_jobs(state, env)
    elapsed = time.monotonic() - t0
    out = f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    job_logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}"
                         for p in sorted(root.glob(".snakemake/slurm_logs/**/*.log")))
    rule_logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(root.glob("logs/**/*.log")))

    # ---- what was submitted (checked first: it holds even if a job itself failed)
    assert sbatch_log.exists(), f"sbatch was never called\n{out}"
    records = [json.loads(line) for line in sbatch_log.read_text().splitlines()]
    sbatch = {}
    for r in (r for r in records if r["tool"] == "sbatch"):
        opts = parse_args(r["argv"])
        rule = one(opts, "--comment").removeprefix("rule_")
        assert rule not in sbatch, f"{rule} submitted twice"
        sbatch[rule] = (r, opts)
    assert set(sbatch) == set(TARGETS), f"submitted rules {sorted(sbatch)}\n{out}"

    profile = yaml.safe_load((REPO / PROFILE / "config.yaml").read_text())
    defaults = profile["default-resources"]
    expected_mem = {GPU_RULE: "1234", CPU_RULE: str(defaults["mem_mb"])}
    for rule, (record, opts) in sbatch.items():
        argv = record["argv"]
        assert one(opts, "-p", "--partition") == PARTITION, (rule, argv)
        assert one(opts, "-A", "--account") == ACCOUNT, (rule, argv)
        assert one(opts, "--mem") == expected_mem[rule], (rule, argv)
        assert one(opts, "-t", "--time") == str(defaults["runtime"]), (rule, argv)
        assert one(opts, "--cpus-per-task") == "1", (rule, argv)     # rules declare threads: 1
        assert one(opts, "-D") == str(root), (rule, argv)
        assert "--parsable" in opts and "--wrap" in opts, (rule, argv)
        assert one(opts, "--signal") == "TERM@300", (rule, argv)          # checkpoint before the limit
        assert f"--target-jobs '{rule}:" in one(opts, "--wrap"), (rule, argv)
    gpu_opts, cpu_opts = sbatch[GPU_RULE][1], sbatch[CPU_RULE][1]
    assert one(gpu_opts, "--gpus", "-G") == "1", sbatch[GPU_RULE][0]["argv"]
    assert not {"--gpus", "-G", "--gres"} & set(cpu_opts), sbatch[CPU_RULE][0]["argv"]

    # the account was validated against sacctmgr before submission (plugin behaviour)
    calls = [json.loads(line) for line in calls_log.read_text().splitlines()]
    assert any(c["tool"] == "sacctmgr" for c in calls)

    # ---- the jobs really ran: Snakemake waited for them via sacct and exited cleanly
    assert proc.returncode == 0, f"snakemake failed\n{out}\n{job_logs}\n{rule_logs}"
    for target in TARGETS.values():
        assert (root / target).is_file(), f"{target} missing\n{out}"
        json.loads((root / target).read_text())
    # inside each job the jobstep plugin ran the rule through srun, GPU flag passed on
    srun = {r["jobid"]: parse_args(r["argv"]) for r in records if r["tool"] == "srun"}
    gpu_id, cpu_id = sbatch[GPU_RULE][0]["jobid"], sbatch[CPU_RULE][0]["jobid"]
    assert set(srun) == {gpu_id, cpu_id}, records
    assert one(srun[gpu_id], "--gpus") == "1"
    assert "--gpus" not in srun[cpu_id]
    for jobid in (gpu_id, cpu_id):
        assert (state / "jobs" / jobid / "state").read_text().strip() == "COMPLETED"
    assert elapsed < 120, f"took {elapsed:.0f} s"


def test_profile_runtimes_reach_the_training_jobs():
    """The profile's set-resources (from ``paperzoo.predict``) override a training rule's own
    ``runtime``: the dry-run's job resources carry the predicted minutes."""
    profile = yaml.safe_load((REPO / PROFILE / "config.yaml").read_text())
    want = profile["set-resources"]["kd_detr_student"]["runtime"]
    assert want != profile["default-resources"]["runtime"]
    env = {**os.environ, "PAPERZOO_SLURM_ACCOUNT": ACCOUNT, "PAPERZOO_SLURM_PARTITION": PARTITION}
    proc = subprocess.run([str(BIN / "snakemake"), "kd_detr", "-n", "--workflow-profile", PROFILE, "--executor",
                           "local", "--cores", "1", "--config", "scale=tiny"],   # --config takes what follows
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = proc.stdout.split("\nrule ")
    student = [b for b in blocks if b.startswith("kd_detr_student:")]
    assert student, proc.stdout[-3000:]
    assert all(f"runtime={want}," in b for b in student), student[0]
