"""APIS study: the crop / point-sampling conventions (pixel centres, align_corners=False), the
point loss, PointSup's random points, the strategies' scores and the argmax inside the box, the
paste-back IoU, config errors, and a tiny run of every step (nested random points, a shared P0,
round-by-round resume, figures)."""
import json
import math

import pytest
import torch

from paperzoo.studies.apis import models, steps
from paperzoo.studies.apis.models import Instances


def _instances(boxes, masks, image_size=32) -> Instances:
    m = len(boxes)
    return Instances(images=torch.randn(1, 3, image_size, image_size), img_index=torch.zeros(m, dtype=torch.long),
                     boxes=torch.tensor(boxes, dtype=torch.float32), masks=masks,
                     labels=torch.zeros(m, dtype=torch.long), image_ids=[1], category_ids=[1])


def test_crop_of_a_ramp_reproduces_its_pixels_and_points_hit_cell_centres():
    # a linear ramp image; a region exactly 8 px wide cut into 8 cells: cell j = pixel x0 + j
    img = torch.arange(32, dtype=torch.float32).repeat(32, 1)[None, None].repeat(1, 3, 1, 1)
    region = torch.tensor([[4.0, 6.0, 12.0, 14.0]])
    crop = models.extract_crops(img, torch.zeros(1, dtype=torch.long), region, 8)
    assert crop.shape == (1, 5, 8, 8)
    assert torch.allclose(crop[0, 0, 3], torch.arange(4, 12, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(crop[0, 3, 0], (torch.arange(8) + 0.5) / 8 * 2 - 1)       # x coordinate channel
    # the centre of pixel (col 7, row 9) is cell (3, 3)'s centre: sampling the crop there returns it exactly
    grid = models.to_grid(torch.tensor([[[7, 9]]]), region)
    logits = torch.randn(1, 1, 8, 8)
    assert torch.allclose(models.sample_logits(logits, grid), logits[0, 0, 3, 3].reshape(1, 1))


def test_mirrored_points_land_on_the_same_cells_of_the_mirrored_crop():
    logits = torch.randn(3, 1, 8, 8)
    grid = torch.rand(3, 5, 2) * 2 - 1
    assert torch.allclose(models.sample_logits(logits.flip(-1), steps.mirror_points(grid)),
                          models.sample_logits(logits, grid), atol=1e-6)


def test_point_loss_is_bce_at_the_sampled_logits_and_moves_only_labelled_cells():
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    region = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    grid = models.to_grid(torch.tensor([[[1, 2], [3, 0]]]), region)
    loss = models.point_loss(logits, grid, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(math.log(2))          # p = 0.5 on both points
    loss.backward()
    g = logits.grad[0, 0]
    assert g[2, 1] < 0 < g[0, 3]                                 # push up the foreground point, down the background
    assert (g != 0).sum() == 2


def test_pointsup_points_lie_in_the_box_with_mask_labels_and_are_reproducible():
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, 5:15, 3:10] = True
    masks[1, 20:30, 20:25] = True
    inst = _instances([[3, 5, 10, 15], [18, 18, 27, 31]], masks)
    xy, lab = models.draw_points(inst, 10, torch.Generator().manual_seed(0))
    assert xy.shape == (2, 10, 2) and lab.shape == (2, 10)
    assert ((xy[0, :, 0] >= 3) & (xy[0, :, 0] < 10) & (xy[0, :, 1] >= 5) & (xy[0, :, 1] < 15)).all()
    assert ((xy[1, :, 0] >= 18) & (xy[1, :, 0] < 27) & (xy[1, :, 1] >= 18) & (xy[1, :, 1] < 31)).all()
    assert torch.equal(lab, models.mask_at(masks, xy))
    assert lab[0].eq(1).all()                                    # instance 0's mask fills its box
    again, _ = models.draw_points(inst, 10, torch.Generator().manual_seed(0))
    assert torch.equal(xy, again)


def test_box_pixel_grid_covers_exactly_the_box():
    xy, inside = models.box_pixel_grid(torch.tensor([[2.0, 3.0, 7.0, 5.0], [0.0, 0.0, 3.0, 9.0]]), (16, 16))
    assert inside[0].sum() == 5 * 2 and inside[1].sum() == 3 * 9
    cols, rows = xy[0][..., 0][inside[0]], xy[0][..., 1][inside[0]]
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (2, 6, 3, 4)      # the exclusive upper bound


def test_strategy_scores():
    p = torch.tensor([[[[0.5, 0.9]]], [[[0.5, 0.1]]]])           # 2 views, 1 instance, 1 x 2 pixels
    ent = models.score_pixels("entropy", p)
    assert ent[0, 0, 0] == pytest.approx(math.log(2)) and ent[0, 0, 1] == pytest.approx(math.log(2))
    bald = models.score_pixels("bald", p)
    assert bald[0, 0, 0] == pytest.approx(0.0, abs=1e-6) and bald[0, 0, 1] > 0.3   # the views disagree on pixel 1
    gt = torch.tensor([[[True, False]]])
    assert torch.allclose(models.score_pixels("oracle", p, gt), torch.tensor([[[0.5, 0.5]]]))
    with pytest.raises(ValueError, match="needs the ground-truth"):
        models.score_pixels("oracle", p)
    with pytest.raises(ValueError, match="unknown strategy 'margin'"):
        models.score_pixels("margin", p)


def test_selection_is_the_argmax_inside_the_box_with_random_ties():
    xy, inside = models.box_pixel_grid(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), (8, 8))
    g = xy.shape[1]
    scores = torch.zeros(1, g, g)
    scores[0, 0, 1] = 5.0
    assert models.select_points(scores, xy, inside, torch.Generator().manual_seed(0)).tolist() == [[1, 0]]
    tied = torch.ones(1, g, g)
    picks = {tuple(models.select_points(tied, xy, inside, torch.Generator().manual_seed(s))[0].tolist())
             for s in range(40)}
    assert picks == {(0, 0), (1, 0), (0, 1), (1, 1)}          # every tied pixel of the box, nothing outside
    wide_xy, wide_in = models.box_pixel_grid(torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]]), (8, 8))
    s2 = torch.zeros(2, 4, 4)
    s2[0, 3, 3] = 9.0                                          # outside instance 0's 2 x 2 box: never picked
    assert tuple(models.select_points(s2, wide_xy, wide_in, torch.Generator().manual_seed(0))[0].tolist()) != (3, 3)


class _Constant(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.full((x.shape[0], 1, x.shape[2], x.shape[3]), self.value)


def test_paste_back_zeroes_outside_the_box_so_an_all_foreground_head_scores_mask_over_box():
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, 4:8, 4:12] = True          # 4 x 8 = 32 px in a 8 x 8 box below
    masks[0, 8:12, 4:6] = True          # + 8 px: 40 of 64
    masks[1, 20:30, 20:30] = True       # fills its box
    inst = _instances([[4, 4, 12, 12], [20, 20, 30, 30]], masks)
    probs, xy, inside = models.box_probabilities(_Constant(10.0), inst, size=8, expand=1.2, shifts=[(0.0, 0.0)],
                                                 hflip=True)
    assert probs.shape[0] == 2                      # one shift x (plain, mirrored)
    pred = (probs[0] > 0.5) & inside
    gt = models.gt_on_grid(inst, xy, inside)
    iou = (pred & gt).flatten(1).sum(1).float() / (pred | gt).flatten(1).sum(1).float()
    assert iou.tolist() == pytest.approx([40 / 64, 1.0])


def test_config_errors_name_the_key():
    b = {"points_per_instance": 3, "rounds": {"n": 3, "steps": 1, "batch_size": 2, "lr": 1e-3, "weight_decay": 0.0,
                                             "drop_at": [0.5]}}
    with pytest.raises(ValueError, match=r"apis.rounds.n = 3.*points_per_instance = 3"):
        steps.rounds_from_config(b)
    with pytest.raises(ValueError, match=r"apis.rounds.drop_at"):
        steps.rounds_from_config({**b, "rounds": {**b["rounds"], "n": 1, "drop_at": [1.5]}})
    with pytest.raises(ValueError, match="apis.crop.size = 10"):
        steps.head_from_config({"model": "m", "crop": {"size": 10, "expand": 1.2}})
    with pytest.raises(KeyError, match="unknown strategy 'margin'"):
        steps.check_strategy("margin")


# --- a tiny run of every step -----------------------------------------------------------------

def _block() -> dict:
    train = {"steps": 3, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "drop_at": [0.5]}
    return {"seeds": 2, "dataset": "shapes_inst", "n_train": None, "model": "test_apis_unet",
            "crop": {"size": 8, "expand": 1.2}, "points_per_instance": 4, "p0": dict(train),
            "rounds": {**train, "n": 2}, "selection": {"jitter": 0.05, "hflip": True},
            "fullmask": {**train, "steps": None}, "eval": {"n_val": 6, "threshold": 0.5},
            "strategies": ["random", "entropy", "bald", "oracle"]}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from pathlib import Path

    from paperzoo.data.generate import generate
    from paperzoo.engine.io import read_yaml

    d = tmp_path_factory.mktemp("apis") / "shapes_inst"
    cfg = read_yaml(Path(__file__).resolve().parents[2] / "config" / "config.yaml")["data"]["shapes_inst"]
    generate("shapes_inst", {**cfg, "n_train": 10, "n_val": 6}, d)
    return d


def _run(b, tmp_path, data, strategy, seed=0, tag=""):
    return steps.run_active(b, scale="tiny", strategy=strategy, seed=seed, data_dir=data, p0=tmp_path / f"p0_{seed}.pt",
                            checkpoint=tmp_path / f"{strategy}{tag}_{seed}.pt", out=tmp_path / f"{strategy}{tag}_{seed}.json",
                            progress=False)


def test_tiny_every_step_nested_random_points_shared_p0_and_claims_resolve(tiny_data, tmp_path):
    from paperzoo.engine.checkpoint import load_checkpoint

    from .distill_runs import claims_resolve

    b = _block()
    runs = {}
    for seed in (0, 1):
        p0 = steps.run_p0(b, scale="tiny", seed=seed, data_dir=tiny_data, checkpoint=tmp_path / f"p0_{seed}.pt",
                          out=tmp_path / f"p0_{seed}.json", progress=False)
        runs[("p0", seed)] = tmp_path / f"p0_{seed}.json"
        for s in b["strategies"]:
            m = _run(b, tmp_path, tiny_data, s, seed)
            runs[(s, seed)] = tmp_path / f"{s}_{seed}.json"
            assert m["miou_p1"] == p0["miou_p1"]                   # every strategy starts from the seed's P0
            assert {"miou_p3", "segmAP_p3", "repeat_rate_p2", "sel_s_p3", "miou_last", "miou_rise_p2_last"} <= set(m)
        steps.run_fullmask(b, scale="tiny", seed=seed, data_dir=tiny_data, checkpoint=tmp_path / f"fm_{seed}.pt",
                           out=tmp_path / f"fm_{seed}.json", progress=False)
        runs[("fullmask", seed)] = tmp_path / f"fm_{seed}.json"
    train, _ = steps.load_instances(b, tiny_data)
    drawn, labels = steps.random_points(b, train, 0)
    ck = {s: load_checkpoint(tmp_path / f"{s}_0.pt") for s in b["strategies"]}
    assert torch.equal(ck["random"]["points_xy"], drawn[:, :3])    # nested: P_n = the first n PointSup points
    assert torch.equal(ck["random"]["points_label"], labels[:, :3])
    for s in ("entropy", "bald", "oracle"):
        assert torch.equal(ck[s]["points_xy"][:, 0], drawn[:, 0])  # the same P0 point ...
        assert torch.equal(ck[s]["points_label"], models.mask_at(train.masks, ck[s]["points_xy"]))   # ... oracle labels
    assert not torch.equal(ck["entropy"]["points_xy"], ck["random"]["points_xy"])
    meta = json.loads((tmp_path / "entropy_0.json").read_text())["meta"]
    assert meta["n_views"] == 8 and any("GT box" in d or "ground-truth box" in d for d in meta["deviations"])
    claims_resolve(steps, {f"{a}{s}": p for (a, s), p in runs.items()})

    from paperzoo.engine.metrics import aggregate
    from paperzoo.studies.apis.figures import FIGURES, make_all

    paths = make_all(b, aggregate(list(runs.values())), tmp_path / "fig", scale="tiny")
    assert [p.stem for p in paths] == list(FIGURES[:2])
    assert (tmp_path / "fig" / "table_strategies.md").read_text().count("\n| ") >= 5


def test_rounds_resume_after_a_kill_and_same_inputs_give_the_same_metrics(tiny_data, tmp_path, monkeypatch):
    b = _block()
    steps.run_p0(b, scale="tiny", seed=0, data_dir=tiny_data, checkpoint=tmp_path / "p0_0.pt",
                 out=tmp_path / "p0_0.json", progress=False)
    whole = _run(b, tmp_path, tiny_data, "entropy", tag="_whole")
    again = _run(b, tmp_path, tiny_data, "entropy", tag="_again")
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith(("sel_s", "train_ms"))}  # noqa: E731
    assert strip(again) == strip(whole)                              # deterministic on CPU

    real_fit, calls = steps.fit, {"n": 0}

    def dying_fit(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:                                          # killed during round 2
            raise KeyboardInterrupt
        return real_fit(*a, **kw)

    monkeypatch.setattr(steps, "fit", dying_fit)
    with pytest.raises(KeyboardInterrupt):
        _run(b, tmp_path, tiny_data, "entropy", tag="_killed")
    partial = tmp_path / "entropy_killed_0.pt.partial"
    assert partial.exists() and not (tmp_path / "entropy_killed_0.json").exists()
    monkeypatch.setattr(steps, "fit", real_fit)
    resumed = _run(b, tmp_path, tiny_data, "entropy", tag="_killed")
    assert not partial.exists()
    assert strip(resumed) == strip(whole)
