"""The tiny end-to-end run shared by the distillation studies' tests (kd_detr, drkd): their
``steps`` modules have the same teacher → init → student entry points."""
from __future__ import annotations

from pathlib import Path


def run_teacher_init_students(steps, block: dict, arms, root: Path, spec, splits: dict[str, int]) -> dict:
    """Write a shapes set of ``spec`` (``ShapesSpec``) and ``splits`` under ``root/data``, train
    the teacher and the seed-0 init, then every arm of ``arms`` (seed 0) with the study's
    ``steps``; returns ``{"root", "block", "runs": {arm: metrics.json}}``."""
    import torch

    from paperzoo.data.shapes import write_shapes

    torch.set_num_threads(1)
    write_shapes(root / "data", spec, splits=splits, seed=0)
    steps.run_teacher(block, scale="tiny", data_dir=root / "data", checkpoint=root / "teacher.pt",
                      out=root / "teacher.json", progress=False)
    steps.run_init(block, scale="tiny", seed=0, data_dir=root / "data", checkpoint=root / "init.pt", progress=False)
    runs = {}
    for arm in arms:
        runs[arm] = root / arm / "metrics.json"
        steps.run_student(block, scale="tiny", arm=arm, seed=0, data_dir=root / "data",
                          teacher_checkpoint=root / "teacher.pt", init=root / "init.pt",
                          checkpoint=root / arm / "model.pt", out=runs[arm], teacher_metrics=root / "teacher.json",
                          progress=False)
    return {"root": root, "block": block, "runs": runs}


def claims_resolve(steps, runs: dict) -> tuple[dict, dict]:
    """Aggregate the ``runs`` and check that every ``arm.metric`` side of the study's
    ``paper.yaml`` names a metric the steps wrote; returns (paper, aggregate)."""
    from paperzoo.engine.claims import load_paper
    from paperzoo.engine.metrics import aggregate

    agg = aggregate(list(runs.values()))
    paper = load_paper(Path(steps.__file__).parent / "paper.yaml")
    for c in paper["claims"]:
        for side in (c.get("lhs"), c.get("rhs")):   # a compound (all_of) claim has no sides
            if isinstance(side, str):
                arm, metric = side.split(".", 1)
                assert metric in agg["arms"][arm], side
    return paper, agg
