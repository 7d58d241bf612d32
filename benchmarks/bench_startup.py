"""Start-up of a training job: what every job pays before its first step.

    python benchmarks/bench_startup.py [--src DIR] [--label NAME] [--repeats 5] [--out FILE]

For every learning study, a fresh ``python`` process does what its training job does before
training: import the study's modules (every module of its package but ``figures``, as its
steps import them), ``paperzoo.engine.train`` and the libraries it imports lazily at run time
(``RUNTIME_IMPORTS``), seed torch with ``engine.seeding.seed_everything`` and build its main
model through the registry. The wall time of the process (best and median
of ``--repeats``) is the fixed cost of one job; the DAG has about 220 such jobs. ``--src`` runs
another checkout's ``src`` (e.g. a ``git worktree`` of an older commit) for a before/after
comparison; results are merged into the output file under ``--label`` (a study measured again
replaces its entry).

Run it on an idle machine: the numbers are dominated by reading and unmarshalling library
code, which a busy second core slows down.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# study -> the model its main training job builds (None: the study builds its own, no registry)
MODELS = {"kd_detr": "detr_lite_s3_nb", "cfnet": "convnext_fpn_mini", "drkd": "drkd_student_mini",
          "group_detr": "gdetr_vit_mini", "apis": "apis_unet_s", "lae": "vit_mini_p8", "cpgnet": "cpgnet_fuse2",
          "ufo": None}
# libraries a study's job imports lazily at run time, counted too (APIS: torchvision's roi_align)
RUNTIME_IMPORTS = {"apis": ["torchvision.ops"]}

SNIPPET = """
import importlib, pkgutil
import torch
from paperzoo.engine.seeding import seed_everything
import paperzoo.engine.train
pkg = importlib.import_module("paperzoo.studies.{study}")
for m in pkgutil.iter_modules(pkg.__path__):
    if m.name != "figures":
        importlib.import_module(f"paperzoo.studies.{study}.{{m.name}}")
seed_everything(0, 1)
for mod in {runtime!r}:
    importlib.import_module(mod)
name = {model!r}
if name is not None:
    from paperzoo.layers import create_model
    create_model(name)
import sys
print(*(int(m in sys.modules) for m in ("torchvision", "timm", "torch._dynamo")))
"""


def _wall(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of one fresh process."""
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, cwd=REPO, capture_output=True, text=True).stdout
    return time.perf_counter() - t, out


def time_startup(study: str, src: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    code = SNIPPET.format(study=study, model=MODELS[study], runtime=RUNTIME_IMPORTS.get(study, []))
    runs = [_wall([sys.executable, "-c", code], env) for _ in range(repeats)]
    walls = [w for w, _ in runs]
    tv, timm, dyn = (bool(int(x)) for x in runs[-1][1].split())   # what the job's process had imported
    return {"best_s": round(min(walls), 3), "median_s": round(statistics.median(walls), 3),
            "all_s": [round(w, 3) for w in walls], "imports_torchvision": tv, "imports_timm": timm,
            "imports_dynamo": dyn}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=REPO / "src", help="the checkout's src directory to time")
    ap.add_argument("--label", default="current")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--studies", nargs="*", default=list(MODELS))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "startup.json")
    args = ap.parse_args(argv)
    from paperzoo.engine.metrics import cpu_info

    torch_walls = [_wall([sys.executable, "-c", "import torch"])[0] for _ in range(args.repeats)]   # the floor
    res = {s: time_startup(s, args.src.resolve(), args.repeats) for s in args.studies}
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    studies = {**out.get(args.label, {}).get("studies", {}), **res}     # a study measured again replaces its entry
    out[args.label] = {"src": str(args.src), "studies": studies, "import_torch_best_s": round(min(torch_walls), 3),
                       "host": platform.node(), "cpu": cpu_info()["cpu_model"], "repeats": args.repeats,
                       "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(args.out)
    for s, r in res.items():
        print(f"{args.label:>10} {s:>11}: best {r['best_s']:.2f} s, median {r['median_s']:.2f} s, "
              f"torchvision {r['imports_torchvision']}, dynamo {r['imports_dynamo']}")


if __name__ == "__main__":
    main()
