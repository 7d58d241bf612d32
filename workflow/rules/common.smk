# Config loading + scale overlay + validation, the target registry, and small helpers.
# All logic lives in src/paperzoo; this file only looks things up.
import json
import os

from snakemake.exceptions import WorkflowError

from paperzoo import STUDIES as ALL_STUDIES  # the ten papers: the report lists those not built too
from paperzoo.data.generate import DATASETS  # the embedded scales' datasets (data.smk); COCO 2017 at paper scale
from paperzoo.engine.config import ConfigError, resolve, study_block
from paperzoo.engine.scheduler import single_reevaluation_timer

# Snakemake's scheduler otherwise spins more with every finished job (engine/scheduler.py)
single_reevaluation_timer()

try:
    _resolved = resolve(config, workflow.basedir)
except ConfigError as err:
    raise WorkflowError(f"paperzoo: {err}") from None
config.clear()
config.update(_resolved)

SCALE = config["scale"]
STUDIES = list(config["studies"])

# Snakemake itself pins OMP/MKL/OPENBLAS threads to each job's `threads:` (two 2-thread
# jobs side by side collapse on a 2-core machine, measured). Model hubs are unreachable:
# timm must fail fast instead of retrying for ~48 s.
shell.prefix("set -euo pipefail; export HF_HUB_OFFLINE=1; ")

# Target registry: each study's rules file registers its per-run metrics and its figures.
RUNS = {}
FIGURES = {}


wildcard_constraints:
    study="|".join(STUDIES) if STUDIES else "NONE",


def register(study, runs, figures):
    RUNS[study] = list(runs)
    FIGURES[study] = list(figures)


def is_enabled(study):
    return study in STUDIES


def res(study, *parts):
    """results/<study>/<scale>/<parts...>"""
    return os.path.join("results", study, SCALE, *parts)


def log_path(study, rule, name="log"):
    """logs/<study>/<scale>/<rule>/<name>.log (logs mirror results/)."""
    return f"logs/{study}/{SCALE}/{rule}/{name}.log"


def bench_path(log):
    """Snakemake's per-job benchmark file beside the job's log (<name>.benchmark.tsv: wall s,
    max RSS, CPU time): the measured cost of every rule."""
    return log[: -len(".log")] + ".benchmark.tsv"


def get_block(study, *keys):
    """JSON of the study's config block (only the given sub-keys).

    Passing only the sub-blocks a rule reads means a change to one step's settings
    reruns that step, not the whole study. A dotted key ("kd.calibration") keeps only
    that branch of its parent ({"kd": {"calibration": ...}}).
    """
    block = study_block(config, study)
    if not keys:
        return json.dumps(block, sort_keys=True)
    out = {}
    for key in keys:
        *parents, leaf = key.split(".")
        src, dst = block, out
        for p in parents:
            src, dst = src[p], dst.setdefault(p, {})
        dst[leaf] = src[leaf]
    return json.dumps(out, sort_keys=True)


def get_data_block(dataset):
    return json.dumps(config["data"][dataset], sort_keys=True)


def data_targets():
    targets = [f"results/data/{d}/{SCALE}/manifest.json" for d in DATASETS]
    if SCALE == "paper":
        targets.append("results/data/coco/paper/verified.json")
    return targets


def get_runs(wildcards):
    return RUNS[wildcards.study]


def exclusive_threads():
    """All the cores of a local run, for steps whose timings claims judge (nothing else runs
    beside them). Capped so that a cluster run (cores unbounded) asks for a sane node."""
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores given (--summary, --lint): nothing runs, one is enough
        return 1
    return max(1, min(int(cores or 1), 16))


def all_targets():
    """Every run of every enabled study, its claims and figures, and the report.

    The runs are targets themselves: the aggregated metrics.json and claims.json are
    committed, so on a fresh clone they exist and would not pull the (missing) runs in.
    After `dvc pull` + `snakemake --touch --forceall` the pulled runs count as done.
    """
    targets = []
    for study in STUDIES:
        targets += [*RUNS[study], res(study, "claims.json"), *FIGURES[study]]
    if STUDIES:
        targets += expand("results/report/{scale}/{name}", scale=SCALE,
                          name=["claims.md", "claims.csv", "index.html"])
    return targets
