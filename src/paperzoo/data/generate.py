"""Generate an embedded-scale dataset (what the ``data`` Snakemake rules call).

    python -m paperzoo.data.generate <dataset> --params P --out-dir results/data/<dataset>/<scale>

``<dataset>``: one of :data:`DATASETS` (``shapes``, ``shapes_easy``, ``shapes_kd``, ``shapes_dense``,
``shapes_o365``, ``shapes_inst`` are six specs of the same generator, :mod:`.shapes`; ``synthid`` is the UFO
study's four-task identity set, :mod:`.synthid`).

``P`` is the dataset's config block (``data.<dataset>`` after the scale overlay) as JSON
text or a JSON file. Only the ``*_from_config`` functions read it. The command writes the
dataset under ``--out-dir`` and then, **last and atomically**, ``<out-dir>/manifest.json``::

    {"dataset", "generator", "seed", "params", "counts",
     "files": {"<relative path>": "<sha256>", ...}, "versions": {...}}

so a rule can declare ``manifest.json`` as its output: it exists only for a complete
dataset. The manifest holds no timestamps or wall times, so regenerating with the same
seed, parameters and package versions gives a byte-identical manifest (DVC sees no change).
Files listed in an older manifest are removed first (a shrunk split leaves no stale PNGs).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from paperzoo.engine.io import read_json, read_params, write_json
from paperzoo.engine.seeding import seed_everything

from .store import sha256_file

SHAPES_DATASETS = ("shapes", "shapes_easy", "shapes_kd", "shapes_dense", "shapes_o365", "shapes_inst")   # one generator (.shapes), six config specs
DATASETS = (*SHAPES_DATASETS, "classes", "digits", "synthscan", "synthid")
MANIFEST = "manifest.json"


# --- config → explicit keyword arguments -------------------------------------------------------

def shapes_from_config(block: dict) -> dict:
    from .shapes import shapes_spec_from_config

    return {"spec": shapes_spec_from_config(block), "seed": int(block["seed"]),
            "splits": {"train": int(block["n_train"]), "val": int(block["n_val"])}}


def classes_from_config(block: dict) -> dict:
    from .classes import classes_spec_from_config

    return {"spec": classes_spec_from_config(block), "seed": int(block["seed"]),
            "class_seed": int(block["class_seed"]), "n_upstream": int(block["n_upstream"]),
            "n_downstream": int(block["n_downstream"]), "n_train_per_class": int(block["n_train_per_class"]),
            "n_upstream_train_per_class": int(block["n_upstream_train_per_class"]),
            "n_test_per_class": int(block["n_test_per_class"])}


def digits_from_config(block: dict) -> dict:
    return {"seed": int(block["seed"]), "test_fraction": float(block["test_fraction"]),
            "upsample": int(block["upsample"]), "channels": int(block["channels"])}


# --- steps -------------------------------------------------------------------------------------

def _versions() -> dict:
    import PIL
    import pycocotools

    v = {"python": platform.python_version(), "numpy": np.__version__, "pillow": PIL.__version__,
         "pycocotools": getattr(pycocotools, "__version__", "unknown")}
    if "sklearn" in sys.modules:
        v["scikit-learn"] = sys.modules["sklearn"].__version__
    return v


def _remove_previous(out_dir: Path) -> None:
    """Delete the manifest first (the dataset is now incomplete), then the files it listed."""
    manifest = out_dir / MANIFEST
    if not manifest.exists():
        return
    try:
        files = read_json(manifest).get("files", {})
    except ValueError:
        files = {}
    manifest.unlink()
    for rel in files:
        p = (out_dir / rel).resolve()
        if out_dir.resolve() in p.parents:
            p.unlink(missing_ok=True)


def list_files(out_dir: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every non-hidden file under ``out_dir`` but the manifest, sorted."""
    files = {}
    for p in sorted(out_dir.rglob("*")):
        rel = p.relative_to(out_dir)
        if p.is_file() and rel.as_posix() != MANIFEST and not any(part.startswith(".") for part in rel.parts):
            files[rel.as_posix()] = sha256_file(p)
    return files


def generate(dataset: str, block: dict, out_dir: str | Path, *, threads: int = 1) -> dict:
    """Write ``dataset`` from its config block into ``out_dir``; returns the manifest."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous(out_dir)
    if dataset in SHAPES_DATASETS:
        from .shapes import write_shapes

        kw = shapes_from_config(block)
        seed_everything(kw["seed"], threads)
        counts = write_shapes(out_dir, kw["spec"], splits=kw["splits"], seed=kw["seed"])
        generator = "paperzoo.data.shapes"
    elif dataset == "classes":
        from .classes import write_classes

        kw = classes_from_config(block)
        seed_everything(kw["seed"], threads)
        counts = write_classes(out_dir, **kw)
        generator = "paperzoo.data.classes"
    elif dataset == "synthid":
        from .synthid import synthid_from_config, write_synthid

        kw = synthid_from_config(block)
        seed_everything(kw["seed"], threads)
        counts = write_synthid(out_dir, **kw)
        generator = "paperzoo.data.synthid"
    elif dataset == "synthscan":
        from .synthscan import synthscan_from_config, write_synthscan

        kw = synthscan_from_config(block)
        seed_everything(kw["seed"], threads)
        counts = write_synthscan(out_dir, **kw)
        generator = "paperzoo.data.synthscan"
    else:
        from .digits import write_digits

        kw = digits_from_config(block)
        seed_everything(kw["seed"], threads)
        counts = write_digits(out_dir, **kw)
        generator = "paperzoo.data.digits"
    manifest = {"dataset": dataset, "generator": generator, "seed": kw["seed"], "params": block,
                "counts": counts, "files": list_files(out_dir), "versions": _versions()}
    write_json(out_dir / MANIFEST, manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=DATASETS)
    ap.add_argument("--params", required=True, help="the dataset's config block: JSON text or a JSON file")
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    m = generate(args.dataset, read_params(args.params), args.out_dir, threads=args.threads)
    print(f"{args.dataset}: {len(m['files'])} files in {args.out_dir} ({time.perf_counter() - t0:.2f} s); "
          f"counts {json.dumps(m['counts'])}")


if __name__ == "__main__":
    main()
