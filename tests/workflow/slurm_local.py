"""A real single-node SLURM cluster on this machine, for the slow SLURM tests.

Debian's packages (``slurmctld slurmd slurm-client munge slurmdbd mariadb-server``; installed
here with apt when missing and the test runs as root) make a cluster in about a minute:
munged → MariaDB → slurmdbd (``sacct`` needs accounting: snakemake-executor-plugin-slurm polls
job states with it) → ``sacctmgr`` cluster / account / user → slurmctld → slurmd.
:func:`up` returns the account name to export as ``PAPERZOO_SLURM_ACCOUNT`` or raises
:class:`Unavailable` with the reason (the caller skips); :func:`down` stops every daemon it
started. Everything lives under a state directory given by the caller, except the config files
SLURM reads from ``/etc/slurm`` (written only if absent or ours, marked by :data:`MARK`).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server")
CLUSTER, ACCOUNT = "paperzoo", "pz_acct"
MARK = "# written by paperzoo tests/workflow/slurm_local.py"
DB_PASS = "pz-test-only"


class Unavailable(RuntimeError):
    """A real SLURM cluster cannot be brought up here (the message says why)."""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def _wait(what: str, ok, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if ok():
            return
        time.sleep(1.0)
    raise Unavailable(f"SLURM test cluster: {what} did not come up within {timeout:.0f} s")


def install() -> None:
    """apt-get the packages when a binary is missing (root and apt only)."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sacct", "munged", "slurmdbd", "mysqld_safe")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("SLURM is not installed and this is not a root Debian machine: "
                          f"apt-get install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    p = _run(["apt-get", "install", "-y", "-qq", *PACKAGES], env=env, timeout=600)
    if p.returncode:
        _run(["apt-get", "update", "-qq"], env=env, timeout=600)
        p = _run(["apt-get", "install", "-y", "-qq", *PACKAGES], env=env, timeout=600)
    if p.returncode:
        raise Unavailable(f"apt-get install {' '.join(PACKAGES)} failed: {p.stderr[-500:]}")


def _write_conf(path: Path, text: str, mode: int = 0o644) -> None:
    if path.exists() and MARK not in path.read_text(errors="replace"):
        raise Unavailable(f"{path} exists and was not written by these tests: not touching a real cluster's config")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MARK + "\n" + text)
    path.chmod(mode)


def up(state: Path) -> str:
    """Start the cluster (state files under ``state``); return the account to submit with."""
    if os.geteuid() != 0:
        raise Unavailable("the local SLURM cluster needs root (daemons, /etc/slurm)")
    install()
    state = Path(state)
    state.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    # munge: one key, the daemon as the munge user
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    if _run(["munge", "-n"]).returncode:
        _run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"])
        _wait("munged", lambda: _run(["munge", "-n"]).returncode == 0)
    # MariaDB for slurmdbd
    Path("/run/mysqld").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/mysqld", "mysql", "mysql")
    if _run(["mysqladmin", "ping"]).returncode:
        subprocess.Popen(["mysqld_safe"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait("mysqld", lambda: _run(["mysqladmin", "ping"]).returncode == 0)
    sql = (f"CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
           f"CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '{DB_PASS}'; "
           f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;")
    p = _run(["mysql", "-e", sql])
    if p.returncode:
        raise Unavailable(f"MariaDB setup failed: {p.stderr[-300:]}")
    etc = Path("/etc/slurm")
    for d in ("spool/ctld", "spool/d", "log"):
        (state / d).mkdir(parents=True, exist_ok=True)
    _write_conf(etc / "slurmdbd.conf", "\n".join([
        "AuthType=auth/munge", "DbdHost=localhost", "SlurmUser=root", "StorageType=accounting_storage/mysql",
        "StorageHost=localhost", "StorageUser=slurm", f"StoragePass={DB_PASS}", "StorageLoc=slurm_acct_db",
        f"LogFile={state}/log/slurmdbd.log", "PidFile=/run/slurmdbd.pid", ""]), mode=0o600)
    _write_conf(etc / "slurm.conf", "\n".join([
        f"ClusterName={CLUSTER}", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory", "SchedulerType=sched/backfill",
        "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=localhost",
        "JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherFrequency=5", "MpiDefault=none",
        "ReturnToService=2", "KillWait=60", "MinJobAge=300",
        f"StateSaveLocation={state}/spool/ctld", f"SlurmdSpoolDir={state}/spool/d",
        "SlurmctldPidFile=/run/slurmctld.pid", "SlurmdPidFile=/run/slurmd.pid",
        f"SlurmctldLogFile={state}/log/slurmctld.log", f"SlurmdLogFile={state}/log/slurmd.log",
        f"NodeName={host} CPUs={os.cpu_count() or 2} RealMemory=20000 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    if _run(["sacctmgr", "-n", "-P", "show", "cluster"]).returncode:
        _run(["slurmdbd"])
        _wait("slurmdbd", lambda: _run(["sacctmgr", "-n", "-P", "show", "cluster"]).returncode == 0)
    _run(["sacctmgr", "-i", "add", "cluster", CLUSTER])
    _run(["sacctmgr", "-i", "add", "account", ACCOUNT, f"Cluster={CLUSTER}"])
    _run(["sacctmgr", "-i", "add", "user", "root", f"Account={ACCOUNT}", f"Cluster={CLUSTER}"])
    if _run(["scontrol", "ping"]).stdout.find("UP") < 0:
        _run(["slurmctld", "-i"])
        _wait("slurmctld", lambda: "UP" in _run(["scontrol", "ping"]).stdout)
    if not Path("/run/slurmd.pid").exists() or _run(["sinfo", "-h", "-o", "%T"]).stdout.strip() in ("", "down", "down*"):
        _run(["slurmd"])
    _wait("the node", lambda: _run(["sinfo", "-h", "-o", "%T"]).stdout.strip().rstrip("*") in ("idle", "mixed"),
          timeout=90)
    return ACCOUNT


def down() -> None:
    """Stop slurmd, slurmctld, slurmdbd (by their pid files), MariaDB and munged."""
    for pid_file in ("/run/slurmd.pid", "/run/slurmctld.pid", "/run/slurmdbd.pid"):
        try:
            os.kill(int(Path(pid_file).read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    _run(["mysqladmin", "shutdown"])
    _run(["pkill", "-u", "munge", "munged"])
    # The configs go too: a slurm.conf naming a controller that is gone makes every later Snakemake
    # start wait ~9 s (its SLURM executor plugin runs `scontrol show config`, which retries the port).
    for conf in (Path("/etc/slurm/slurm.conf"), Path("/etc/slurm/slurmdbd.conf")):
        if conf.exists() and MARK in conf.read_text(errors="replace"):
            conf.unlink()
