"""A tiny stand-in for the SLURM client tools, for tests of the SLURM workflow profile.

The executables next to this file (sbatch, sacct, squeue, sinfo, scontrol, sacctmgr,
srun, scancel) are two-line wrappers that call ``python3 _fake_slurm.py <tool> ARGS``.
They answer exactly the calls that snakemake-executor-plugin-slurm (and its jobstep
plugin) make, and a "job" really runs: ``sbatch`` starts the wrapped command or
script locally in the background (cwd = ``-D``, stdout/stderr to ``--output``) and
its exit code becomes the state that ``sacct``/``squeue`` report.

Environment (all optional except where noted):
  FAKE_SLURM_DIR         state directory (jobs, job-id counter); default $TMPDIR/fake_slurm
  FAKE_SLURM_LOG         JSON lines, one per sbatch/srun call: {"tool", "argv", "cwd", "jobid"}
                         (default $FAKE_SLURM_DIR/sbatch.jsonl)
  FAKE_SLURM_CALLS       JSON lines, one per call of any tool (default $FAKE_SLURM_DIR/calls.jsonl)
  FAKE_SLURM_ACCOUNTS    comma-separated accounts that sacctmgr lists for the user (default "none")
  FAKE_SLURM_PARTITIONS  comma-separated partitions for sinfo; the first is the default
  FAKE_SLURM_SACCT_WAIT  seconds a status query (sacct/squeue --name) waits for a running job
                         of that name to finish before answering (default 0). The plugin backs
                         off by +10 s after every poll that sees no finished job; a short wait
                         here keeps tests fast without changing what is reported.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


# --------------------------------------------------------------------------- state
def state_dir() -> Path:
    d = Path(os.environ.get("FAKE_SLURM_DIR") or Path(tempfile.gettempdir()) / "fake_slurm")
    (d / "jobs").mkdir(parents=True, exist_ok=True)
    return d


def append_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a") as fh:  # one write per line, under a lock: concurrent shims
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(line)
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)


def sbatch_log() -> Path:
    return Path(os.environ.get("FAKE_SLURM_LOG") or state_dir() / "sbatch.jsonl")


def next_jobid() -> int:
    counter = state_dir() / "next_jobid"
    with open(state_dir() / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        n = int(counter.read_text()) if counter.exists() else 1001
        counter.write_text(str(n + 1))
        fcntl.flock(lock, fcntl.LOCK_UN)
    return n


def job_dir(jobid: str) -> Path:
    return state_dir() / "jobs" / str(jobid)


def read_job(jobid: str) -> dict:
    d = job_dir(jobid)
    spec = json.loads((d / "spec.json").read_text())
    state_file = d / "state"
    spec["state"] = state_file.read_text().strip() if state_file.exists() else "PENDING"
    return spec


def all_jobs() -> list[dict]:
    jobs = []
    for d in sorted(state_dir().joinpath("jobs").iterdir(), key=lambda p: int(p.name)):
        if (d / "spec.json").exists():
            jobs.append(read_job(d.name))
    return jobs


def write_state(jobid: str, state: str) -> None:
    d = job_dir(jobid)
    tmp = d / "state.tmp"
    tmp.write_text(state + "\n")
    os.replace(tmp, d / "state")


def die(tool: str, msg: str, code: int = 1) -> None:
    print(f"{tool}: error: {msg}", file=sys.stderr)
    sys.exit(code)


# --------------------------------------------------------------------------- option parsing
def parse_opts(tool: str, argv: list[str], with_value: set[str], flags: set[str]):
    """Split ``argv`` into ({option: value}, positional). Unknown options are an error,
    like the real tools (catches a profile passing a misspelt flag)."""
    opts: dict[str, str | bool] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if rest or not a.startswith("-") or a == "-":
            rest.append(a)
        elif a.startswith("--"):
            name, eq, val = a.partition("=")
            if name in with_value:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        die(tool, f"option '{name}' requires an argument")
                    val = argv[i]
                opts[name] = val
            elif name in flags and not eq:
                opts[name] = True
            else:
                die(tool, f"unrecognized option '{a}'")
        else:  # short option: -A acct, -Aacct, -n1
            name, val = a[:2], a[2:]
            if name in with_value:
                if not val:
                    i += 1
                    if i >= len(argv):
                        die(tool, f"option requires an argument -- '{name[1]}'")
                    val = argv[i]
                opts[name] = val
            elif name in flags:
                opts[name] = True
                if val:  # bundled short flags: -nu USER == -n -u USER
                    argv = argv[: i + 1] + [f"-{val}"] + argv[i + 1:]
            else:
                die(tool, f"invalid option -- '{a}'")
        i += 1
    return opts, rest


def first(opts: dict, *names: str, default=None):
    for n in names:
        if n in opts:
            return opts[n]
    return default


# --------------------------------------------------------------------------- sbatch
SBATCH_VALUE = {
    "-A", "--account", "-p", "--partition", "-t", "--time", "--mem", "--mem-per-cpu",
    "--mem-per-gpu", "-J", "--job-name", "-o", "--output", "-e", "--error", "-D", "--chdir",
    "--comment", "-C", "--constraint", "--qos", "-q", "-N", "--nodes", "-n", "--ntasks",
    "--ntasks-per-node", "--ntasks-per-gpu", "-c", "--cpus-per-task", "--cpus-per-gpu",
    "-G", "--gpus", "--gres", "-M", "--clusters", "--wrap", "-x", "--exclude",
    "--reservation", "--export", "-a", "--array", "--signal",
}
SBATCH_FLAGS = {"--parsable", "--requeue", "--no-requeue"}


def sbatch(argv: list[str]) -> None:
    opts, rest = parse_opts("sbatch", argv, SBATCH_VALUE, SBATCH_FLAGS)
    jobid = str(next_jobid())
    append_jsonl(sbatch_log(), {"tool": "sbatch", "argv": argv, "cwd": os.getcwd(), "jobid": jobid})

    if first(opts, "-a", "--array"):
        die("sbatch", "fake sbatch does not implement --array")
    wrap = first(opts, "--wrap")
    if wrap is not None and rest:
        die("sbatch", "script arguments not permitted with --wrap option")
    if wrap is None and not rest:
        die("sbatch", "no batch script and no --wrap given")

    d = job_dir(jobid)
    d.mkdir(parents=True)
    script = d / "script.sh"
    if wrap is not None:
        script.write_text(f"#!/bin/sh\n# This script was created by sbatch --wrap.\n\n{wrap}\n")
        script_args: list[str] = []
    else:
        src = rest[0]
        body = sys.stdin.read() if src in ("/dev/stdin", "-") else Path(src).read_text()
        script.write_text(body)
        script_args = rest[1:]

    workdir = str(Path(first(opts, "-D", "--chdir", default=os.getcwd())).resolve())
    output = first(opts, "-o", "--output", default=f"slurm-{jobid}.out").replace("%j", jobid)
    output = str(Path(workdir, output))
    if not Path(output).parent.is_dir():  # real sbatch fails silently here; be loud
        die("sbatch", f"output directory of {output} does not exist")

    gpus = first(opts, "-G", "--gpus")
    env = {
        "SLURM_JOB_ID": jobid, "SLURM_JOBID": jobid,
        "SLURM_JOB_NAME": first(opts, "-J", "--job-name", default=Path(script).name),
        "SLURM_SUBMIT_DIR": os.getcwd(), "SLURM_SUBMIT_HOST": os.uname().nodename,
        "SLURM_CLUSTER_NAME": "fakecluster", "SLURM_NNODES": "1", "SLURM_NODELIST": "localhost",
        "SLURM_CPUS_PER_TASK": str(first(opts, "-c", "--cpus-per-task", default="1")),
        "SLURM_JOB_PARTITION": str(first(opts, "-p", "--partition", default="")),
        "SLURM_JOB_ACCOUNT": str(first(opts, "-A", "--account", default="")),
    }
    if gpus:
        env["SLURM_GPUS"] = str(gpus)
    spec = {
        "jobid": jobid, "name": env["SLURM_JOB_NAME"], "account": env["SLURM_JOB_ACCOUNT"],
        "partition": env["SLURM_JOB_PARTITION"], "workdir": workdir, "output": output,
        "script": str(script), "script_args": script_args, "env": env, "submitted": time.time(),
    }
    (d / "spec.json").write_text(json.dumps(spec, indent=1))
    write_state(jobid, "PENDING")
    # detach: the job outlives this sbatch call, like a real batch job
    subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_run", jobid],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True, env=os.environ.copy())
    if "--parsable" in opts:
        print(jobid)
    else:
        print(f"Submitted batch job {jobid}")


def run_job(jobid: str) -> None:
    """Runner process for one job (started detached by sbatch)."""
    spec = read_job(jobid)
    d = job_dir(jobid)
    (d / "pgid").write_text(str(os.getpgrp()))
    env = {**os.environ, **spec["env"]}
    write_state(jobid, "RUNNING")
    with open(spec["output"], "ab") as out:
        try:
            proc = subprocess.Popen(["/bin/sh", spec["script"], *spec["script_args"]],
                                    cwd=spec["workdir"], env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
            rc = proc.wait()
        except OSError as err:  # e.g. workdir vanished
            out.write(f"fake sbatch: could not start job: {err}\n".encode())
            rc = 1
    (d / "exitcode").write_text(f"{rc}\n")
    if (d / "state").read_text().strip() != "CANCELLED":
        write_state(jobid, "COMPLETED" if rc == 0 else "FAILED")


# --------------------------------------------------------------------------- status queries
def wait_for_named(name: str | None) -> None:
    """Wait (bounded) until a running job of ``name`` finishes; see FAKE_SLURM_SACCT_WAIT."""
    timeout = float(os.environ.get("FAKE_SLURM_SACCT_WAIT") or 0)
    if not name or timeout <= 0:
        return
    deadline = time.monotonic() + timeout
    active = {j["jobid"] for j in all_jobs() if j["name"] == name and j["state"] not in FINAL}
    while active and time.monotonic() < deadline:
        if any(read_job(j)["state"] in FINAL for j in active):
            return
        time.sleep(0.1)


def field_value(job: dict, field: str) -> str:
    f = re.sub(r"%-?\d+$", "", field).lower()
    exitcode = (job_dir(job["jobid"]) / "exitcode")
    rc = exitcode.read_text().strip() if exitcode.exists() else "0"
    return {
        "jobidraw": job["jobid"], "jobid": job["jobid"], "state": job["state"],
        "jobname": job["name"], "account": job["account"], "partition": job["partition"],
        "exitcode": f"{rc}:0", "reason": "None", "nodelist": "localhost",
    }.get(f, "")


def sacct(argv: list[str]) -> None:
    value = {"--clusters", "-M", "--format", "-o", "--starttime", "-S", "--endtime", "-E",
             "--name", "-j", "--jobs", "-u", "--user", "--state", "-s"}
    flags = {"-X", "--allocations", "--parsable2", "-P", "--parsable", "-p", "--noheader", "-n"}
    # the plugin's account guess runs `sacct -nu USER -o Account%256 | tail -1` without a
    # shell, so "|", "tail", "-1" arrive as arguments: accept and ignore them
    if "|" in argv:
        argv = argv[: argv.index("|")]
    opts, rest = parse_opts("sacct", argv, value, flags)
    if rest:
        die("sacct", f"unexpected arguments {rest}")
    fields = str(first(opts, "--format", "-o", default="JobID,JobName,Partition,Account,State,ExitCode")).split(",")
    name = first(opts, "--name")
    wait_for_named(name)
    jobs = all_jobs()
    if name:
        jobs = [j for j in jobs if j["name"] in str(name).split(",")]
    if "-j" in opts or "--jobs" in opts:
        # JOBID or JOBID.STEP; a job has one step (0, the srun that runs the rule)
        wanted = {s.split(".")[0] for s in str(first(opts, "-j", "--jobs")).split(",")
                  if s.split(".")[1:] in ([], ["0"])}
        jobs = [j for j in jobs if j["jobid"] in wanted]
    sep = "|"
    terminate = not ("--parsable2" in opts or "-P" in opts)
    parsable = any(k in opts for k in ("--parsable2", "-P", "--parsable", "-p"))
    if not ("--noheader" in opts or "-n" in opts):
        print(sep.join(fields) if parsable else " ".join(fields))
    for j in jobs:
        vals = [field_value(j, f) for f in fields]
        if parsable:
            print(sep.join(vals) + (sep if terminate else ""))
        else:
            print(" ".join(vals))


def squeue(argv: list[str]) -> None:
    value = {"--format", "-o", "--states", "-t", "--name", "-n", "-j", "--jobs", "-u", "--user", "-M", "--clusters"}
    flags = {"--noheader", "-h", "--all", "-a"}
    opts, rest = parse_opts("squeue", argv, value, flags)
    if rest:
        die("squeue", f"unexpected arguments {rest}")
    fmt = str(first(opts, "--format", "-o", default="%i|%T"))
    name = first(opts, "--name", "-n")
    wait_for_named(name)
    jobs = all_jobs()
    if name:
        jobs = [j for j in jobs if j["name"] in str(name).split(",")]
    if str(first(opts, "--states", "-t", default="")).lower() != "all":
        jobs = [j for j in jobs if j["state"] not in FINAL]
    codes = {"i": "jobid", "T": "state", "j": "name", "P": "partition", "a": "account"}
    if not ("--noheader" in opts or "-h" in opts):
        print(re.sub(r"%([A-Za-z])", lambda m: codes.get(m.group(1), "?").upper(), fmt))
    for j in jobs:
        print(re.sub(r"%([A-Za-z])", lambda m: str(j.get(codes.get(m.group(1), ""), "")), fmt))


# --------------------------------------------------------------------------- cluster info
def partitions() -> list[str]:
    return [p for p in os.environ.get("FAKE_SLURM_PARTITIONS", "cpu").split(",") if p]


def sinfo(argv: list[str]) -> None:
    opts, rest = parse_opts("sinfo", argv, {"-o", "--format", "-p", "--partition", "-M", "--clusters"},
                            {"-h", "--noheader", "-s", "--summarize"})
    fmt = str(first(opts, "-o", "--format", default="%P"))
    if fmt.strip() != "%P":
        die("sinfo", f"fake sinfo only implements -o %P, not {fmt!r}")
    if not ("-h" in opts or "--noheader" in opts):
        print("PARTITION")
    for k, p in enumerate(partitions()):
        print(p + ("*" if k == 0 else ""))


def scontrol(argv: list[str]) -> None:
    words = [a for a in argv if not a.startswith("-")]
    if words[:2] == ["show", "config"]:
        print("Configuration data as of 2026-01-01T00:00:00")
        print("ClusterName             = fakecluster")
        print("MaxArraySize            = 1001")
        print("MinJobAge               = 300 sec")
        print("SLURM_VERSION           = 24.05.0")
    elif words[:2] == ["show", "partition"]:
        for k, p in enumerate(partitions()):
            print(f"PartitionName={p}\n   Default={'YES' if k == 0 else 'NO'} MaxTime=2-00:00:00 "
                  "MaxNodes=UNLIMITED\n   TotalCPUs=2 TotalNodes=1\n")
    else:
        die("scontrol", f"fake scontrol does not implement {' '.join(argv)!r}")


def sacctmgr(argv: list[str]) -> None:
    # sacctmgr -n -s list user "<user>" format=account%256
    words = [a for a in argv if not a.startswith("-")]
    if len(words) >= 3 and words[0] in ("list", "show") and words[1] == "user" \
            and any(w.lower().startswith("format=account") for w in words):
        noheader = "-n" in argv or "--noheader" in argv
        if not noheader:
            print("   Account ")
        for a in os.environ.get("FAKE_SLURM_ACCOUNTS", "none").split(","):
            if a:
                print(f"{a:>10} ")
    else:
        die("sacctmgr", f"fake sacctmgr does not implement {' '.join(argv)!r}")


def scancel(argv: list[str]) -> None:
    for jobid in (a for a in argv if not a.startswith("-")):
        for one in jobid.split(","):
            one = one.split("_")[0]
            if not (job_dir(one) / "spec.json").exists():
                continue
            if read_job(one)["state"] in FINAL:
                continue
            write_state(one, "CANCELLED")
            pgid_file = job_dir(one) / "pgid"
            if pgid_file.exists():
                try:
                    os.killpg(int(pgid_file.read_text()), signal.SIGTERM)
                except ProcessLookupError:
                    pass


# --------------------------------------------------------------------------- srun
SRUN_VALUE = {"-n", "--ntasks", "-c", "--cpus-per-task", "-N", "--nodes", "--cpu-bind", "-G",
              "--gpus", "--gres", "--mem", "--mem-per-cpu", "-J", "--job-name", "--jobid",
              "-t", "--time", "-p", "--partition", "-A", "--account", "--cpus-per-gpu",
              "--ntasks-per-gpu", "-o", "--output", "-e", "--error"}
SRUN_FLAGS = {"--exclusive", "--overlap", "--exact"}


def srun(argv: list[str]) -> None:
    """Run the step command in this process (exec), after recording the call."""
    opts, rest = parse_opts("srun", argv, SRUN_VALUE, SRUN_FLAGS)
    append_jsonl(sbatch_log(), {"tool": "srun", "argv": argv, "cwd": os.getcwd(),
                                "jobid": os.environ.get("SLURM_JOB_ID")})
    if not rest:
        die("srun", "no command given")
    if not os.environ.get("SLURM_JOB_ID"):
        die("srun", "fake srun only runs job steps inside a (fake) sbatch job")
    os.execvp(rest[0], rest)


TOOLS = {"sbatch": sbatch, "sacct": sacct, "squeue": squeue, "sinfo": sinfo,
         "scontrol": scontrol, "sacctmgr": sacctmgr, "scancel": scancel, "srun": srun}


def main() -> None:
    tool, argv = sys.argv[1], sys.argv[2:]
    if tool == "_run":
        run_job(argv[0])
        return
    calls = os.environ.get("FAKE_SLURM_CALLS") or str(state_dir() / "calls.jsonl")
    append_jsonl(Path(calls), {"tool": tool, "argv": argv})
    TOOLS[tool](argv)


if __name__ == "__main__":
    main()
