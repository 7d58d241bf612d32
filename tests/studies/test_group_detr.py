"""Group DETR v2 study: the ViT detection backbone, MAE (masking, normalised-pixel loss on masked
patches only), the stage transfers (encoder into the detector, detector minus class head), the
group-wise evaluation, the config errors, and a tiny end-to-end run of every step."""
import json

import pytest
import torch

from paperzoo.layers import create_model
from paperzoo.studies.group_detr import models, steps
from paperzoo.studies.group_detr.evaluation import detections
from paperzoo.studies.group_detr.figures import FIGURES


def _block() -> dict:
    stage = {"steps": 2, "batch_size": 4, "lr": 1e-3, "lr_backbone_factor": 0.1, "weight_decay": 1e-4, "warmup": 1,
             "drop_at": 0.8, "clip_grad": 0.1, "eval_every": 1, "n_train": None}
    return {"seeds": 1, "model": "test_gdetr_vit", "pretrain_dataset": "shapes_o365", "target_dataset": "shapes_easy",
            "mim": {"steps": 2, "batch_size": 4, "lr": 1e-3, "weight_decay": 0.05, "warmup": 1, "mask_ratio": 0.75,
                    "decoder_dim": 8, "decoder_depth": 1, "seed": 0},
            "detpre": dict(stage), "finetune": {**stage, "n_train": 8},
            "loss_weights": {"ce": 2.0, "bbox": 5.0, "giou": 2.0}, "matcher_costs": {"cls": 2.0, "bbox": 5.0, "giou": 2.0},
            "eval": {"n_val": 6, "top_k": 20, "nms_iou": 0.7, "area_rule": "scaled"},
            "arms": {"detpre": {"g1": {"num_groups": 1, "encoder": "mim"}, "g3": {"num_groups": 3, "encoder": "mim"},
                                "g1_noE": {"num_groups": 1, "encoder": "none"},
                                "naive2": {"num_groups": 1, "encoder": "mim", "repeat_targets": 2},
                                "g3_shared": {"num_groups": 3, "encoder": "mim", "shared_self_attn": True}},
                     "finetune": {"ft_full": {"num_groups": 3, "encoder": "mim", "from": "g3"},
                                  "ft_noD": {"num_groups": 3, "encoder": "mim", "from": None}}}}


def test_vit_backbone_gives_a_token_map():
    bb = create_model("test_vit_det")
    out = bb(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, bb.num_channels, 4, 4)
    assert not any(k.startswith("cls") for k in bb.vit.state_dict())      # no CLS token


def test_patchify_layout():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    p = models.patchify(x, 2)
    assert p.shape == (2, 4, 12)
    # patch 1 (row 0, col 1), pixel (0, 0), channel c  = x[:, c, 0, 2]
    torch.testing.assert_close(p[:, 1, 0:3], x[:, :, 0, 2])


def test_mae_loss_reads_masked_patches_only_and_is_seedable():
    torch.manual_seed(0)
    mae = models.MAE(create_model("test_vit_det"), mask_ratio=0.75, decoder_dim=8)
    x = torch.randn(2, 3, 64, 64)
    l1, _ = mae(x, torch.Generator().manual_seed(3))
    l2, _ = mae(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(l1, l2)
    # the same noise draw picks the visible patches: changing a VISIBLE patch's pixels changes the
    # encoder input but not the target of the loss; changing only masked-patch pixels changes the target
    g = torch.Generator().manual_seed(3)
    noise = torch.rand(2, mae.num_patches, generator=g)
    keep = noise.argsort(1)[:, :4]                       # 16 patches, 25 % visible
    masked = [i for i in range(16) if i not in keep[0].tolist()][0]
    y = x.clone()
    r, c = divmod(masked, 4)
    y[0, :, 16 * r:16 * r + 16, 16 * c:16 * c + 16] += 5.0 * torch.randn(3, 16, 16)
    l3, _ = mae(y, torch.Generator().manual_seed(3))
    assert not torch.isclose(l1, l3)
    l1.backward()
    assert mae.backbone.vit.blocks[0].attn.qkv.weight.grad is not None


def test_mae_rejects_bad_mask_ratio():
    with pytest.raises(ValueError, match="mask_ratio"):
        models.MAE(create_model("test_vit_det"), mask_ratio=1.0)


def test_encoder_transfer_and_detector_transfer_skip_the_class_head():
    torch.manual_seed(0)
    src = create_model("test_gdetr_vit", num_classes=6, num_groups=3)
    mae = models.MAE(src.backbone, decoder_dim=8)
    dst = create_model("test_gdetr_vit", num_classes=6, num_groups=3)
    models.load_encoder(dst, models.encoder_state(mae))
    for k, v in src.backbone.vit.state_dict().items():
        torch.testing.assert_close(dst.backbone.vit.state_dict()[k], v)
    tgt = create_model("test_gdetr_vit", num_classes=4, num_groups=3)
    head_before = tgt.class_head.weight.detach().clone()
    skipped = models.transfer_detector(tgt, src.state_dict())
    assert skipped == ["class_head.weight", "class_head.bias"]
    torch.testing.assert_close(tgt.class_head.weight, head_before)          # kept its fresh init
    torch.testing.assert_close(tgt.anchors, src.anchors)
    with pytest.raises(ValueError, match="shape mismatch"):
        models.transfer_detector(create_model("test_gdetr_vit", num_classes=4, num_groups=1), src.state_dict())


def test_inference_params_drop_only_the_extra_groups_anchors():
    one = create_model("test_gdetr_vit", num_classes=4, num_groups=1)
    many = create_model("test_gdetr_vit", num_classes=4, num_groups=11)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(many) - n(one) == 10 * many.num_queries * 4
    assert models.inference_params(many) == models.inference_params(one) == n(one)


def test_vit_huge_size_is_counted_on_the_built_model():
    assert 6.2e8 < models.vit_params("vit_huge_det") < 6.4e8


def test_detections_nms_removes_duplicates():
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]]])
    logits = torch.tensor([[[5.0, -9.0], [4.0, -9.0], [3.0, -9.0]]])
    out = {"pred_logits": logits, "pred_boxes": boxes}
    sizes = torch.tensor([[64, 64]])
    no = detections(out, sizes, top_k=3)[0]
    yes = detections(out, sizes, top_k=3, nms_iou=0.7)[0]
    assert len(no["scores"]) == 3 and len(yes["scores"]) == 2
    assert yes["scores"][0] == no["scores"][0]


def test_repeat_targets_lists_every_object_k_times():
    t = [{"labels": torch.tensor([1, 2]), "boxes": torch.rand(2, 4), "image_id": 7}]
    r = steps.repeat_targets(t, 3)[0]
    assert r["labels"].tolist() == [1, 2, 1, 2, 1, 2] and r["boxes"].shape == (6, 4) and r["image_id"] == 7
    torch.testing.assert_close(r["boxes"][2:4], t[0]["boxes"])
    assert steps.repeat_targets(t, 1) is t


def test_arm_config_errors_name_the_key():
    b = _block()
    assert steps.arm_from_config(b, "finetune", "ft_full") == {"num_groups": 3, "encoder": "mim", "from": "g3",
                                                                "shared_self_attn": False, "repeat_targets": 1}
    with pytest.raises(KeyError, match="unknown detpre arm"):
        steps.arm_from_config(b, "detpre", "g7")
    b["arms"]["finetune"]["ft_full"]["from"] = "nope"
    with pytest.raises(KeyError, match="not a detpre arm"):
        steps.arm_from_config(b, "finetune", "ft_full")
    b["arms"]["detpre"]["g1"]["encoder"] = "supervised"
    with pytest.raises(ValueError, match="group_detr.arms.detpre.g1.encoder"):
        steps.arm_from_config(b, "detpre", "g1")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from paperzoo.data.generate import generate
    from paperzoo.engine.io import read_yaml
    from pathlib import Path

    root = tmp_path_factory.mktemp("gdetr")
    cfg = read_yaml(Path(__file__).resolve().parents[2] / "config" / "config.yaml")["data"]
    out = {}
    for name in ("shapes_o365", "shapes_easy"):
        d = root / name / "tiny"
        generate(name, {**cfg[name], "n_train": 16, "n_val": 6}, d)
        out[name] = d
    return root, out


def test_tiny_end_to_end_every_step(tiny_data, tmp_path):
    _, data = tiny_data
    b = _block()
    steps.run_mim(b, scale="tiny", data_dir=data["shapes_o365"], checkpoint=tmp_path / "mim.pt",
                  out=tmp_path / "mim.json", progress=False)
    ms = {}
    for arm in ("g1", "g3", "g1_noE", "naive2", "g3_shared"):
        ms[arm] = steps.run_detpre(b, scale="tiny", arm=arm, seed=0, data_dir=data["shapes_o365"],
                                   encoder=tmp_path / "mim.pt" if arm != "g1_noE" else None,
                                   checkpoint=tmp_path / f"{arm}.pt", out=tmp_path / f"{arm}.json", progress=False)
    assert {"AP", "AP_auc", "AP_s1", "AP_s2", "eval_ms_per_img", "params_inference", "nms_gain_g0"} <= set(ms["g1"])
    assert {"AP_g0", "AP_g2", "per_group_AP_spread", "nms_gain_allgroups"} <= set(ms["g3"])
    assert ms["g1"]["params_inference"] == ms["g3"]["params_inference"] == ms["g3_shared"]["params_inference"]
    w = {a: torch.load(tmp_path / f"{a}.pt", weights_only=True)["model"]["class_head.weight"] for a in ms}
    assert not torch.equal(w["naive2"], w["g1"]) and not torch.equal(w["g3_shared"], w["g3"])   # switches act
    ft = steps.run_finetune(b, scale="tiny", arm="ft_full", seed=0, data_dir=data["shapes_easy"], encoder=None,
                            detector=tmp_path / "g3.pt", checkpoint=tmp_path / "ft.pt", out=tmp_path / "ft.json",
                            progress=False)
    meta = json.loads((tmp_path / "ft.json").read_text())["meta"]
    assert meta["reinitialised"] == ["class_head.weight", "class_head.bias"] and ft["num_groups"] == 3
    with pytest.raises(SystemExit, match="needs --detector"):
        steps.run_finetune(b, scale="tiny", arm="ft_full", seed=0, data_dir=data["shapes_easy"], encoder=None,
                           detector=None, checkpoint=tmp_path / "x.pt", out=tmp_path / "x.json", progress=False)
    # same seed and inputs -> identical metrics (deterministic on CPU)
    again = steps.run_detpre(b, scale="tiny", arm="g1", seed=0, data_dir=data["shapes_o365"],
                             encoder=tmp_path / "mim.pt", checkpoint=tmp_path / "g1b.pt", out=tmp_path / "g1b.json",
                             progress=False)
    assert {k: v for k, v in again.items() if "ms" not in k} == {k: v for k, v in ms["g1"].items() if "ms" not in k}


def test_figures_from_aggregated_runs(tmp_path):
    from paperzoo.engine.metrics import aggregate

    runs = []
    for arm, k in (("g1", 1), ("g3", 3), ("g1_noE", 1), ("ft_full", 3), ("ft_noD", 3)):
        for seed in (0, 1):
            m = {"AP": 0.1 + 0.01 * seed, "AP_auc": 0.05, "AP_s1": 0.02, "AP_s2": 0.1, "num_groups": k,
                 "params": 100.0, "params_inference": 90.0, "train_ms_per_step": 10.0, "eval_ms_per_img": 1.0,
                 "nms_gain_g0": 0.0}
            if k > 1:
                m.update({f"AP_g{g}": 0.1 for g in range(k)}, AP_allgroups_noNMS=0.05, AP_allgroups_NMS=0.09,
                         per_group_AP_spread=0.0, nms_gain_allgroups=0.04)
            p = tmp_path / "runs" / arm / f"seed{seed}" / "metrics.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"study": "group_detr", "scale": "tiny", "arm": arm, "seed": seed, "metrics": m,
                                     "meta": {}}))
            runs.append(p)
    agg = aggregate(runs)
    agg_path = tmp_path / "agg.json"
    agg_path.write_text(json.dumps(agg))
    out = steps.run_figures(_block(), scale="tiny", metrics=agg_path, outdir=tmp_path / "fig")
    assert sorted(p.stem for p in out) == sorted(FIGURES)
    rows = (tmp_path / "fig" / "table_arms.csv").read_text().splitlines()
    assert rows[0].startswith("stage,arm,num_groups,AP_mean") and len(rows) == 6
    g3 = next(r for r in rows if r.startswith("detpre,g3,"))
    assert float(g3.split(",")[3]) == pytest.approx(0.105)                 # AP_mean of seeds 0.10, 0.11
