"""DVC round trip on the `tiny` scale: repro → push → fresh clone → pull → adopt → nothing
to do; then metrics/params diff across two commits and an experiment run.

The round trip runs the two phonon studies' stages (``dvc repro <stages>``; the config's
``studies`` restricted to them, so the adopted clone's ``rule all`` is complete): DVC's
machinery is the same for every stage, and the whole tiny DAG is run by ``test_dag.py``.
Repeating all ten studies here cost about 8 minutes of CI for no other check."""
import json
import subprocess

import pytest
import yaml

from .helpers import BIN, copy_workflow, env, snakemake

GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
          "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def run(cwd, *cmd):
    exe = str(BIN / cmd[0]) if (BIN / cmd[0]).exists() else cmd[0]
    proc = subprocess.run([exe, *cmd[1:]], cwd=cwd, env=env(**GIT_ID), capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def set_config(repo, **keys):
    path = repo / "config" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg.update(keys)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


STAGES = {"interface_phonons": "study@interface_phonons", "valley_phonons": "study@valley_phonons",
          "report": "report"}
STUDIES = ["interface_phonons", "valley_phonons"]


def restrict_report_stage(repo):
    """The copy's ``report`` stage depends on the two studies the test enables (the real one on all ten)."""
    path = repo / "dvc.yaml"
    dvc = yaml.safe_load(path.read_text())
    deps = dvc["stages"]["report"]["deps"]
    dvc["stages"]["report"]["deps"] = [d for d in deps if "results/" not in d or any(f"/{s}/" in d for s in STUDIES)]
    assert len(dvc["stages"]["report"]["deps"]) == 1 + 2 * len(STUDIES), dvc["stages"]["report"]["deps"]
    path.write_text(yaml.safe_dump(dvc, sort_keys=False))


@pytest.mark.slow
def test_dvc_push_clone_pull_adopt_and_diff(tmp_path):
    repo, remote, clone = tmp_path / "repo", tmp_path / "remote", tmp_path / "clone"
    repo.mkdir()
    copy_workflow(repo)
    (repo / ".gitignore").write_text((copy_workflow.__globals__["REPO"] / ".gitignore").read_text())
    set_config(repo, scale="tiny", studies=STUDIES)
    restrict_report_stage(repo)
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "dvc", "init", "-q")
    run(repo, "dvc", "config", "core.analytics", "false")
    run(repo, "dvc", "remote", "add", "-d", "local", str(remote))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "init")

    run(repo, "dvc", "repro", *STAGES.values())
    assert (repo / "results/valley_phonons/tiny/claims.json").exists()
    claims = json.loads((repo / "results/interface_phonons/tiny/claims.json").read_text())
    assert claims["claims"] and all(c["verdict"] in {"reproduced", "inconclusive", "contradicted", "not run"}
                                    for c in claims["claims"])
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "tiny results")
    run(repo, "dvc", "push")

    # a fresh clone gets code + committed metrics from git, heavy outputs from the remote
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "results/interface_phonons/tiny/runs").exists()
    run(clone, "dvc", "pull", *STAGES.values())
    assert (clone / "results/interface_phonons/tiny/figures/fig_conductance_vs_T.png").exists()
    snakemake(clone, "--touch", "--forceall", "--cores", "1")          # adopt
    dry = snakemake(clone, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]
    for warning in ("Empty file path", "double '/'"):     # the eight studies that are off stay quiet
        assert warning not in dry.stdout + dry.stderr, dry.stdout[:2000]
    status = run(clone, "dvc", "status", *STAGES.values())
    assert "changed" not in status, status

    # metrics and params diff across two commits
    cfg = yaml.safe_load((repo / "config/config.yaml").read_text())
    cfg["interface_phonons"]["model"]["lam"] = 2 * cfg["interface_phonons"]["model"]["lam"]
    (repo / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run(repo, "dvc", "repro", *STAGES.values())
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "stronger quartic term")
    pdiff = run(repo, "dvc", "params", "diff", "HEAD~1")
    assert "interface_phonons.model.lam" in pdiff
    mdiff = run(repo, "dvc", "metrics", "diff", "HEAD~1", "--json")
    changed = json.loads(mdiff)
    assert "arms.elastic.keff_quantum_T0p1.mean" in changed["results/interface_phonons/tiny/metrics.json"], mdiff[:2000]

    # one experiment (sweep point) through dvc exp run -S
    run(repo, "dvc", "exp", "run", "-S", "config/config.yaml:interface_phonons.model.lam=0.0", *STAGES.values())
    shown = run(repo, "dvc", "exp", "show", "--json")
    assert '"lam": 0.0' in shown, shown[:2000]
