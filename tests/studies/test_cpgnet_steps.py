"""CPGNet study steps at tiny settings: train, latency, figures, and paper.yaml against the metric names."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from paperzoo.data.synthscan import CLASSES, synthscan_from_config, write_synthscan
from paperzoo.engine.claims import evaluate as evaluate_claims
from paperzoo.engine.claims import load_paper
from paperzoo.engine.io import read_json, write_json
from paperzoo.engine.metrics import aggregate
from paperzoo.studies.cpgnet import steps
from paperzoo.studies.cpgnet.figures import FIGURES

STUDY_DIR = Path(steps.__file__).parent


def _tiny_config() -> dict:
    """The repository config at ``tiny``, with even smaller BN/step settings."""
    from paperzoo.engine.config import resolve

    repo = STUDY_DIR.parents[3]
    cfg = resolve({**yaml.safe_load((repo / "config/config.yaml").read_text()), "scale": "tiny"}, repo)
    cfg["cpgnet"]["train"]["bn_recalibrate_batches"] = 2
    cfg["cpgnet"]["train"]["steps"] = 2
    return cfg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cpgnet")
    cfg = _tiny_config()
    data = root / "data"
    write_synthscan(data, **synthscan_from_config(cfg["data"]["synthscan"]))
    block = cfg["cpgnet"]
    runs = {}
    for arm in block["arms"]:
        d = root / "runs" / arm / "seed0"
        steps.run_train(block, scale="tiny", arm=arm, seed=0, data_dir=data, out=d / "train.json",
                        checkpoint=d / "model.pt", progress=False)
        steps.run_latency(block, scale="tiny", arm=arm, seed=0, checkpoint=d / "model.pt", data_dir=data,
                          out=d / "metrics.json", train_metrics=d / "train.json")
        runs[arm] = d
    return {"root": root, "data": data, "block": block, "runs": runs}


def test_train_metric_names_and_outputs(tiny):
    run = read_json(tiny["runs"]["fuse2_tcl"] / "train.json")
    m = run["metrics"]
    assert {"miou", "miou_tta", "tta_gap", "flip_consistency"} <= set(m)
    assert m["tta_gap"] == pytest.approx(m["miou_tta"] - m["miou"])
    assert {k for k in m if k.startswith("iou_") and not k.startswith("iou_tta_")} <= {f"iou_{c}" for c in CLASSES}
    assert all("." not in k for k in m)                                       # claims split on the first dot
    assert 0.0 <= m["miou"] <= 1.0 and 0.0 <= m["flip_consistency"] <= 1.0
    assert run["meta"]["tcl"] is True and any("BatchNorm" in d for d in run["meta"]["deviations"])
    assert read_json(tiny["runs"]["fuse2"] / "train.json")["meta"]["tcl"] is False
    assert not (tiny["runs"]["fuse2_tcl"] / "model.pt.partial").exists()


def test_latency_metrics_merged(tiny):
    run = read_json(tiny["runs"]["fuse2"] / "metrics.json")
    m = run["metrics"]
    assert {"latency_ms", "latency_tta_ms", "tta_cost_ratio", "miou"} <= set(m)
    assert m["latency_ms"] > 0 and m["tta_cost_ratio"] == pytest.approx(m["latency_tta_ms"] / m["latency_ms"])
    assert run["meta"]["latency"]["threads"] == tiny["block"]["eval"]["latency_threads"]


def test_train_is_deterministic_via_cli(tiny, tmp_path):
    """Same seed → same metrics, through the CLI (params as a JSON file)."""
    params = tmp_path / "params.json"
    params.write_text(json.dumps(tiny["block"]))
    out, ckpt = tmp_path / "fuse1" / "metrics.json", tmp_path / "fuse1" / "model.pt"
    steps.main(["train", "--params", str(params), "--scale", "tiny", "--arm", "fuse1", "--seed", "0",
                "--data-dir", str(tiny["data"]), "--out", str(out), "--checkpoint", str(ckpt)])
    assert read_json(out)["metrics"] == read_json(tiny["runs"]["fuse1"] / "train.json")["metrics"]
    a = torch.load(ckpt, weights_only=True)["model"]
    b = torch.load(tiny["runs"]["fuse1"] / "model.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_arm_is_rejected(tiny, tmp_path):
    with pytest.raises(KeyError, match="unknown arm"):
        steps.run_train(tiny["block"], scale="tiny", arm="nope", seed=0, data_dir=tiny["data"],
                        out=tmp_path / "m.json", checkpoint=tmp_path / "m.pt", progress=False)


def test_paper_claims_resolve_and_figures(tiny, tmp_path):
    agg = aggregate([d / "metrics.json" for d in tiny["runs"].values()])
    assert set(agg["arms"]) == set(tiny["block"]["arms"])
    paper = load_paper(STUDY_DIR / "paper.yaml")
    for c in paper["claims"]:
        for side in (c.get("lhs"), c.get("rhs")):   # a compound (all_of) claim has no sides
            if isinstance(side, str):
                arm, metric = side.split(".", 1)
                assert metric in agg["arms"][arm], f"{c['id']}: {side} not produced"
    verdicts = evaluate_claims(paper, agg, "tiny")["claims"]
    assert {v["unadjusted"] for v in verdicts} == {"inconclusive", "not run"}   # 1 seed < min_seeds 3; paper-scale rows
    assert {r["id"]: r["verified"] for r in paper["references"]} == {
        "rpvnet_speed": True, "val_one_stage": True, "test_miou": False, "ablations": False, "cpgnet_abstract": True}
    write_json(tmp_path / "metrics.json", agg)
    outdir = tmp_path / "figs"
    steps.main(["figures", "--params", json.dumps(tiny["block"]), "--scale", "tiny",
                "--metrics", str(tmp_path / "metrics.json"), "--outdir", str(outdir)])
    for name in FIGURES:
        assert (outdir / f"{name}.png").stat().st_size > 1000


def test_paper_recipe_runs_on_the_semantickitti_fixture(tmp_path):
    """The paper-scale code path end to end on the real file formats: SemanticKITTI reader,
    20 classes with the official names, SGD + Nesterov with the multi-step schedule, the
    paper overlay's widths (shrunk grids so that it runs in a second)."""
    from paperzoo.data.semantickitti import CLASSES as KITTI, write_fixture
    from paperzoo.engine.config import resolve

    repo = STUDY_DIR.parents[3]
    cfg = resolve({**yaml.safe_load((repo / "config/config.yaml").read_text()), "scale": "paper"}, repo)
    block = cfg["cpgnet"]
    assert block["dataset"] == "semantickitti" and block["train"]["optimizer"] == "sgd"
    assert block["train"]["nesterov"] is True and len(block["train"]["drop_at"]) == 4
    block["model"].update(bev_shape=[32, 32], rv_shape=[8, 64], grid_widths=[4, 8, 8], grid_out=8, blocks=1)
    block["arms"] = {"fuse2": {**block["arms"]["fuse2"], "stage_widths": [8, 8]}}
    block["train"].update(steps=3, batch_size=2, n_points=300, warmup=1)
    block["eval"].update(n_val_scans=1, latency_repeats=2)
    root = write_fixture(tmp_path / "kitti", sequences=("00", "08"), frames=2, points=400)
    out = tmp_path / "run"
    m = steps.run_train(block, scale="paper", arm="fuse2", seed=0, data_dir=root, out=out / "train.json",
                        checkpoint=out / "model.pt", progress=False)
    run = read_json(out / "train.json")
    assert run["meta"]["optimizer"] == "sgd" and run["meta"]["device"] == "cpu"
    assert not any("BatchNorm" in d for d in run["meta"]["deviations"])         # bn_recalibrate_batches = 0
    assert {k.removeprefix("iou_") for k in m if k.startswith("iou_") and not k.startswith("iou_tta_")} \
        <= {c.replace("-", "_") for c in KITTI}
    lrs = [h["lr"] for h in torch.load(out / "model.pt", weights_only=True)["history"]]
    assert lrs[0] == pytest.approx(0.02 / 1) and len(lrs) == 3
    lat = steps.run_latency(block, scale="paper", arm="fuse2", seed=0, checkpoint=out / "model.pt", data_dir=root,
                            out=out / "metrics.json", train_metrics=out / "train.json")
    assert lat["latency_ms"] > 0


def test_semantickitti_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SemanticKITTI val frames"):
        steps.load_scans(tmp_path, "val", "semantickitti")
    with pytest.raises(ValueError, match="expected 'synthscan' or 'semantickitti'"):
        steps.load_scans(tmp_path, "val", "nuscenes")


def test_scene_figure_is_drawn_from_a_trained_arm(tiny, tmp_path):
    out = tmp_path / "fig_bev_scene.png"
    scores = steps.run_scene(tiny["block"], scale="tiny", arm="fuse2", seed=0,
                             checkpoint=tiny["runs"]["fuse2"] / "model.pt", data_dir=tiny["data"], out=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 0.0 <= scores["miou"] <= 1.0 and 0.0 <= scores["miou_tta"] <= 1.0
    bad = {**tiny["block"], "eval": {**tiny["block"]["eval"], "scene_index": 10_000}}
    with pytest.raises(IndexError, match="scene_index"):
        steps.run_scene(bad, scale="tiny", arm="fuse2", seed=0, checkpoint=tiny["runs"]["fuse2"] / "model.pt",
                        data_dir=tiny["data"], out=out)
