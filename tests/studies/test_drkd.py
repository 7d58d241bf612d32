"""DRKD study: teacher / student pair, the distillation kit in a training step (frozen teacher,
trainable teacher-side relation modules), the diagnostics on hand tensors, the train-only
calibration, and a tiny end-to-end run through every step, the claims and the figures."""
import json
import math

import pytest
import torch

from paperzoo.studies.drkd import models, steps
from paperzoo.studies.drkd.figures import FIGURES

ARMS = {"baseline": {}, "fitnet": {"fitnet": True}, "prd": {"prd": True},
        "ird": {"ird": True, "ins": True, "filter": "code"},
        "ird_nofilter": {"ird": True, "ins": True, "filter": "none"},
        "drkd": {"prd": True, "ird": True, "ins": True, "filter": "code"}}


def _block() -> dict:
    """A tiny ``drkd`` block (the proposed keys, test-size numbers)."""
    return {"dataset": "shapes_dense", "seeds": 1, "baseline_arm": "baseline",
            "teacher": {"model": "test_drkd_teacher", "steps": 2, "lr": 1e-3, "seed": 0},
            "student": {"model": "test_drkd_student", "steps": 2, "lr": 1e-3, "init_steps": 1, "init_seed": None},
            "detector": {"anchor_base": [8, 16, 32], "anchor_scales": [1.0, 1.26], "aspect_ratios": [0.5, 1.0, 2.0],
                         "num_convs": 1, "gn_groups": 4, "score_thresh": 0.05, "nms_thresh": 0.5,
                         "detections_per_img": 100},
            "train": {"batch_size": 4, "weight_decay": 0.05, "warmup": 1, "schedule": "cosine", "clip_grad": 0.0,
                      "hflip": True},
            "kd": {"loss_form": "code", "roi_levels": 2, "roi_size": 3, "pool_from": "own",
                   "weights": {"prd": 0.05, "ird": 0.05, "ins": 0.05, "fitnet": 0.05},
                   "weights_provenance": "test values",
                   "calibration": {"holdout_frac": 0.2, "batches": 2, "factor": 0.5}},
            "eval": {"n_val": 8, "area_rule": "scaled", "abs_areas": [144, 576], "n_diag": 8},
            "arms": {k: dict(v) for k, v in ARMS.items()}}


def _n(m) -> int:
    return sum(p.numel() for p in m.parameters())


def _batch(n=2, size=64):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, size, size, generator=g)
    targets = [{"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.25, 0.2], [0.7, 0.6, 0.3, 0.4]])},
               {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}][:n]
    return images, targets


def _pair(block=None, arm="drkd"):
    block = block or _block()
    torch.manual_seed(0)
    teacher = steps.build_detector(block, "teacher", 4)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = steps.build_detector(block, "student", 4)
    kit = steps.build_kit(block, arm, student.features.out_channels, 3, seed=0)
    return teacher, models.DistillStudent(student, kit)


# --- models ----------------------------------------------------------------------------------

def test_pyramids_teacher_wider_same_fpn_width():
    from paperzoo.layers import create_model

    for t, s in (("drkd_teacher_mini", "drkd_student_mini"), ("test_drkd_teacher", "test_drkd_student")):
        tm, sm = create_model(t), create_model(s)
        assert tm.out_channels == sm.out_channels and tm.strides == sm.strides == (8, 16, 32)
        assert _n(tm) > 1.5 * _n(sm)
    assert _n(create_model("drkd_teacher_mini")) == 537824 and _n(create_model("drkd_student_mini")) == 225328
    b = _block()
    teacher, student = steps.build_detector(b, "teacher", 4), steps.build_detector(b, "student", 4)
    models.check_pair(teacher, student)
    wide = steps.build_detector({**b, "student": {**b["student"], "model": "drkd_student_mini"}}, "student", 4)
    with pytest.raises(ValueError, match="same width"):
        models.check_pair(teacher, wide)


def test_kit_drops_unused_terms_and_shares_inits_across_arms():
    b = _block()
    kits = {a: steps.build_kit(b, a, 16, 3, seed=0) for a in ARMS}
    assert kits["baseline"].active == [] and _n(kits["baseline"]) == 0
    assert kits["fitnet"].active == ["fitnet"] and kits["fitnet"].s_glore is None
    assert kits["drkd"].active == ["prd", "ird", "ins"] and kits["drkd"].fit_adapt is None
    assert kits["ird"].s_rel[0].filter == "code" and kits["ird_nofilter"].s_rel[0].filter == "none"
    assert [u.num_n for u in kits["prd"].t_glore] == [4, 4, 16]        # C/4 on the first two levels, C after
    for name in ("s_glore", "t_glore", "prd_adapt"):                    # prd and drkd start alike (seed 0)
        for (k, v), (k2, v2) in zip(getattr(kits["prd"], name).state_dict().items(),
                                    getattr(kits["drkd"], name).state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
    torch.testing.assert_close(kits["ird"].t_rel[0].W.weight, kits["ird_nofilter"].t_rel[0].W.weight)
    other = steps.build_kit(b, "prd", 16, 3, seed=1)
    assert not torch.equal(other.s_glore[0].conv_state.weight, kits["prd"].s_glore[0].conv_state.weight)


def test_arm_config_errors():
    with pytest.raises(KeyError, match="unknown arm"):
        steps.arm_from_config(_block(), "nope")
    b = _block()
    b["arms"]["bad"] = {"prd": True, "glore": True}
    with pytest.raises(KeyError, match="unknown key"):
        steps.arm_from_config(b, "bad")
    b["arms"]["bad"] = {"ird": True, "filter": "learned"}
    with pytest.raises(ValueError, match="filter"):
        steps.arm_from_config(b, "bad")
    b["kd"]["loss_form"] = "l2"
    with pytest.raises(ValueError, match="loss_form"):
        steps.kd_from_config(b)


# --- the training step -----------------------------------------------------------------------

def test_student_step_freezes_teacher_and_trains_teacher_side_relation_modules():
    from paperzoo.engine.train import train

    block = _block()
    teacher, model = _pair(block, "drkd")
    kd = steps.kd_from_config(block)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    t_side = {n: p.detach().clone() for n, p in model.kit.named_parameters() if n.startswith(("t_glore", "t_rel"))}
    modes = []
    teacher.features.register_forward_pre_hook(
        lambda m, inp: modes.append([mod.training for mod in teacher.modules()] + [torch.is_grad_enabled()]))
    loss_fn = steps.make_loss_fn(64, teacher=teacher, kd=kd, seed=0)
    images, targets = _batch()
    loss, parts = loss_fn(model, (images, targets, 0))
    assert {"loss_kd_prd", "loss_kd_ird", "loss_kd_ins", "classification"} <= set(parts)
    assert "loss_kd_fitnet" not in parts
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    for group in (model.kit.t_glore, model.kit.t_rel, model.kit.s_glore, model.kit.s_rel, model.kit.prd_adapt,
                  model.kit.ird_adapt, model.kit.ins_adapt, model.student.features):
        grads = [p.grad for p in group.parameters()]
        assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    model.zero_grad()
    train(model, loss_fn, lambda i: (images, targets, i), steps=2, final=None, lr=1e-2, progress=False)
    assert modes and not any(any(m) for m in modes)                   # eval mode, no grad, at every call
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k                           # BN running stats included
    moved = [n for n, p in model.kit.named_parameters() if n in t_side and not torch.equal(p.detach(), t_side[n])]
    assert any(n.startswith("t_glore") for n in moved) and any(n.startswith("t_rel") for n in moved)


def test_baseline_never_runs_the_teacher_and_filter_is_step_seeded():
    block = _block()
    teacher, model = _pair(block, "baseline")
    calls = []
    teacher.features.register_forward_pre_hook(lambda m, i: calls.append(1))
    kd = steps.kd_from_config(block)
    images, targets = _batch()
    loss, parts = steps.make_loss_fn(64, teacher=teacher, kd=kd)(model, (images, targets, 0))
    assert not calls and set(parts) == {"classification", "bbox_regression"}
    teacher, model = _pair(block, "ird")
    fn = steps.make_loss_fn(64, teacher=teacher, kd=kd, seed=0)
    a, b, c = (fn(model, (images, targets, i))[1]["loss_kd_ird"] for i in (3, 3, 4))
    torch.testing.assert_close(a, b)              # the random filter of step i: a function of (seed, i)
    assert not torch.allclose(a, c)


# --- diagnostics -----------------------------------------------------------------------------

def test_box_mask_and_energy_contrast_by_hand():
    m = models.box_mask([torch.tensor([[8.0, 0.0, 24.0, 8.0]]), torch.zeros(0, 4)], (2, 4), 8)
    assert m[0].tolist() == [[False, True, True, False], [False, False, False, False]] and not m[1].any()
    x = torch.ones(2, 3, 2, 4)
    x[0, :, 0, 1:3] = 2.0                                   # energy 4 inside, 1 outside
    assert models.energy_contrast(x, m) == pytest.approx(4.0)
    assert math.isnan(models.energy_contrast(x, torch.zeros_like(m)))


def test_relation_diagnostics_share_and_foreground_gain():
    torch.manual_seed(0)
    kit = models.DistillKit(8, 1, prd=True, ird=True, roi_levels=1)
    t = torch.rand(2, 8, 4, 4) + 0.5
    boxes = [torch.tensor([[0.0, 0.0, 16.0, 16.0]]), torch.tensor([[16.0, 16.0, 32.0, 32.0], [0.0, 0.0, 8.0, 8.0]])]
    with torch.no_grad():                                   # the unit's residual: exactly 0 (BN weight 0)
        kit.t_glore[0].bn.weight.zero_()
    d = models.relation_diagnostics(kit, [t], boxes, [8])
    assert d["relation_share"] == pytest.approx(0.0, abs=1e-6) and "fg_energy_gain" not in d   # no residual
    assert set(d) == {"relation_share", "ird_relation_share"} and d["ird_relation_share"] > 0
    mask = models.box_mask(boxes, (4, 4), 8)

    class Boost(torch.nn.Module):                          # residual = the foreground part of t only
        def forward(self, x):
            return x + x * mask[:, None]

    kit.t_glore = torch.nn.ModuleList([Boost()])
    d = models.relation_diagnostics(kit, [t], boxes, [8])
    resid = t * mask[:, None]
    assert d["relation_share"] == pytest.approx(float(resid.norm() / t.norm()), rel=1e-5)
    assert d["fg_energy_gain"] > 1e3                        # residual energy is all inside the boxes
    assert kit.training                                     # mode restored


# --- end to end ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from paperzoo.data.shapes import ShapesSpec

    from .distill_runs import run_teacher_init_students

    spec = ShapesSpec(image_size=64, classes=("disc", "square", "triangle", "ring"), min_size=6, max_size=32,
                      min_objects=2, max_objects=4)
    return run_teacher_init_students(steps, _block(), ARMS, tmp_path_factory.mktemp("drkd"),
                                     spec, {"train": 20, "val": 8})


def test_end_to_end_metrics(tiny):
    teacher = json.loads((tiny["root"] / "teacher.json").read_text())
    assert teacher["arm"] == "teacher" and {"AP", "AP50", "AP_S_abs", "params"} <= set(teacher["metrics"])
    assert teacher["meta"]["n_train"] == 16                           # 20 train images minus the 20 % holdout
    init = torch.load(tiny["root"] / "init.pt", weights_only=True)["model"]
    for arm, f in tiny["runs"].items():
        run = json.loads(f.read_text())
        m, meta = run["metrics"], run["meta"]
        assert {"AP", "AP50", "AP75", "AP_S_abs", "teacher_AP", "teacher_AP_S_abs", "params", "kit_params",
                "train_img_per_s"} <= set(m), arm
        assert all(math.isfinite(v) for v in m.values())
        assert m["teacher_AP"] == teacher["metrics"]["AP"] and meta["n_train"] == 16
        a = steps.arm_from_config(tiny["block"], arm)
        assert ("relation_share" in m) == ("fg_energy_gain" in m) == a["prd"], arm
        assert ("ird_relation_share" in m) == ("ird_relation_share_init" in m) == a["ird"], arm
        assert ("relation_share_init" in m) == a["prd"], arm
        assert (m["kit_params"] == 0) == (arm == "baseline")
        assert set(meta["final_losses"]) >= {f"loss_kd_{t}" for t in ("prd", "ird", "ins", "fitnet") if a[t]}
        assert any("OWN feature map" in d for d in meta["deviations"])
        assert any("held out" in d for d in meta["deviations"])
    state = torch.load(tiny["root"] / "baseline" / "model.pt", weights_only=True)["model"]
    assert set(state) == {f"student.{k}" for k in init}              # student + (empty) kit, no teacher


def test_calibration_reads_only_the_train_holdout(tiny, monkeypatch):
    import paperzoo.data.detection as detection
    import paperzoo.data.shapes as shapes

    real = shapes.load_shapes
    seen = []

    def train_only(root, split, **kw):
        seen.append(split)
        if split != "train":
            raise AssertionError(f"calibration read the {split!r} split")
        return real(root, split, **kw)

    monkeypatch.setattr(shapes, "load_shapes", train_only)
    monkeypatch.setattr(detection, "load_detection", lambda *a, **k: pytest.fail("calibration loaded val"))
    root = tiny["root"]
    steps.main(["calibrate", "--params", json.dumps(tiny["block"]), "--scale", "tiny", "--data-dir",
                str(root / "data"), "--teacher", str(root / "teacher.pt"), "--init", str(root / "init.pt"),
                "--out", str(root / "calibration.json")])
    assert seen == ["train"]
    cal = json.loads((root / "calibration.json").read_text())
    assert set(cal["weights"]) == {"prd", "ird", "ins", "fitnet"}
    assert cal["holdout"] == {"split": "train", "first_index": 16, "n_images": 4, "n_used": 4, "batches": 1,
                              "batch_size": 4}
    for k, w in cal["weights"].items():
        assert w > 0 and math.isfinite(w)
        assert w * cal["terms"][k] == pytest.approx(0.5 * cal["det_loss"], rel=5e-3)   # 3 significant digits
    assert "val split never read" in cal["provenance"]
    b = tiny["block"]
    no_hold = {**b, "kd": {**b["kd"], "calibration": {**b["kd"]["calibration"], "holdout_frac": 0.0}}}
    with pytest.raises(SystemExit, match="holdout_frac is 0"):
        steps.run_calibrate(no_hold, scale="tiny", data_dir=root / "data", teacher_checkpoint=root / "teacher.pt",
                            init=root / "init.pt", out=root / "never.json")


def test_claims_resolve_and_figures(tiny, tmp_path):
    from paperzoo.engine.claims import evaluate as evaluate_claims
    from paperzoo.engine.io import write_json

    from .distill_runs import claims_resolve

    paper, agg = claims_resolve(steps, tiny["runs"])
    assert {r["id"]: r["verified"] for r in paper["references"]} == {"abstract": True, "fig1": True,
                                                                     "tables": False, "release": True}
    kinds = {c["id"]: c["kind"] for c in paper["claims"]}
    assert kinds["drkd_beats_baseline"] == "paper" and kinds["drkd_beats_fitnet"] == "prediction"
    verdicts = {v["id"]: v["unadjusted"] for v in evaluate_claims(paper, agg, "tiny")["claims"]}
    assert all(v == "inconclusive" for k, v in verdicts.items() if k != "teacher_beats_student")   # 1 seed < 3
    write_json(tmp_path / "metrics.json", agg)
    steps.main(["figures", "--params", json.dumps(tiny["block"]), "--scale", "tiny", "--metrics",
                str(tmp_path / "metrics.json"), "--outdir", str(tmp_path / "figs")])
    for name in FIGURES:
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 1000
    table = (tmp_path / "figs" / "table_arms.md").read_text()
    assert "PRD + IRD + INS" in table and "IRD + INS (no filter)" in table and "| teacher |" in table
