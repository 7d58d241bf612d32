"""CFNet paper-scale pieces: deep-supervised ImageNet classifier (and the ConvNeXt baseline's),
backbone transfer into a detector, layer-wise lr decay groups, step-indexed ImageNet batches
and the pretraining step on a tiny image-folder fixture (unit-test-sized models only)."""
import math

import pytest
import torch
import torch.nn.functional as F

from paperzoo.engine.train import train
from paperzoo.layers import create_model
from paperzoo.studies.cfnet import models  # noqa: F401  (registers the CFNet models)
from paperzoo.studies.cfnet.layer_decay import layer_decay_groups, layer_id
from paperzoo.studies.cfnet.pretrain import (
    PRETRAIN_DROP_PATH,
    ConvNeXtClassifier,
    DeepSupervisedCFNet,
    StepImageBatches,
    backbone_state_dict,
    build_classifier,
    build_pretrain_model,
    crop_box,
    deep_supervision_loss,
    load_pretrain_checkpoint,
    load_pretrained_backbone,
    pretrain_from_config,
    pretrain_loss_fn,
    run_pretrain,
)
from tests.data.test_imagenet import write_image_folders


def _classifier(seed=0, **kw) -> DeepSupervisedCFNet:
    torch.manual_seed(seed)
    return build_pretrain_model("test_cfnet", num_classes=5, hidden=16, **kw)


# --- deep supervision ------------------------------------------------------------------------

def test_loss_is_the_mean_of_the_stage_cross_entropies():
    z1 = torch.tensor([[0.0, 0.0]])                 # p = (1/2, 1/2)
    z2 = torch.tensor([[math.log(3.0), 0.0]])       # p = (3/4, 1/4)
    y = torch.tensor([0])
    assert deep_supervision_loss([z1, z2], y, label_smoothing=0.0).item() == pytest.approx(
        (math.log(2) + math.log(4 / 3)) / 2)
    # label smoothing 0.1 over 2 classes: 0.9 * NLL + 0.1 * mean_c(-log p_c)
    s1 = math.log(2)
    s2 = 0.9 * math.log(4 / 3) + 0.1 * (math.log(4 / 3) + math.log(4)) / 2
    assert deep_supervision_loss([z1, z2], y).item() == pytest.approx((s1 + s2) / 2)
    assert deep_supervision_loss([z1, z2], y, 0.0, weights=[1.0, 0.0]).item() == pytest.approx(math.log(2))
    soft = torch.tensor([[0.5, 0.5]])               # soft targets (e.g. mixed labels) also work
    assert deep_supervision_loss(z1, soft, 0.0).item() == pytest.approx(math.log(2))


def test_training_returns_every_stage_and_eval_only_the_last_head():
    model = _classifier()
    x = torch.randn(2, 3, 64, 64)
    model.train()
    outs = model(x)
    assert isinstance(outs, list) and len(outs) == model.num_stages == 2
    assert all(o.shape == (2, 5) for o in outs)
    assert not torch.allclose(outs[0], outs[1])
    model.eval()
    with torch.no_grad():
        last = model(x)
    assert isinstance(last, torch.Tensor) and last.shape == (2, 5)
    torch.testing.assert_close(last, outs[-1].detach())       # drop path 0: same computation
    # the head is conv1x1 -> LN -> GELU -> GAP -> LN -> Linear on the last stage's c5
    c5 = model.stage_c5(x)[-1]
    h = model.heads[-1]
    ref = h.fc(h.norm(F.gelu(h.proj[1](h.proj[0](c5))).mean((-2, -1))))
    torch.testing.assert_close(last, ref.detach())


def test_classifier_has_no_attach_and_heads_follow_the_official_shape():
    model = _classifier()
    keys = model.state_dict().keys()
    assert not any(k.startswith("attach.") for k in keys)
    assert {k.split(".")[0] for k in keys} == {"stem", "p2", "stages", "heads"}
    h = model.heads[0]
    assert h.proj[0].weight.shape == (16, model.dims[-1], 1, 1) and h.fc.weight.shape == (5, 16)
    assert build_pretrain_model("test_cfnet", num_classes=3).heads[0].fc.in_features == 2048


def test_a_few_sgd_steps_reduce_the_loss():
    model = _classifier(seed=1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 64, 64, generator=g), torch.randint(0, 5, (8,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    losses = []
    for _ in range(8):
        loss = deep_supervision_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


# --- transfer into a detector ----------------------------------------------------------------

def test_backbone_round_trip_into_a_detector_keeps_attach():
    clf = _classifier(seed=2)
    torch.manual_seed(3)
    features = create_model("test_cfnet")
    attach_before = {k: v.clone() for k, v in features.state_dict().items() if k.startswith("attach.")}
    sd = backbone_state_dict(clf)
    assert sd and not any(k.startswith("heads.") for k in sd)
    report = load_pretrained_backbone(features, clf.state_dict())       # heads dropped on the way
    assert report["unexpected"] == [] and report["loaded"] == sorted(sd)
    assert report["missing"] == sorted(attach_before) and report["dropped"]
    after = features.state_dict()
    for k, v in sd.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    for k, v in attach_before.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    # the detector's features now compute the classifier's stage features
    x = torch.randn(1, 3, 64, 64)
    features.eval(), clf.eval()
    with torch.no_grad():
        torch.testing.assert_close(features.stage_features(x)[-1][2], clf.stage_c5(x)[-1])
    # a detector built on it transfers the same way (DDP/EMA "module." prefix stripped)
    det = create_model("test_dense", features=create_model("test_cfnet"))
    load_pretrained_backbone(det.features, {f"module.{k}": v for k, v in sd.items()})
    torch.testing.assert_close(det.features.stem[0].weight, clf.stem[0].weight, rtol=0, atol=0)


def test_transfer_fails_on_unexpected_missing_or_misshapen_keys():
    features = create_model("test_cfnet")
    before = {k: v.clone() for k, v in features.state_dict().items()}
    with pytest.raises(KeyError, match="unexpected"):            # 3-stage classifier into a 2-stage detector
        load_pretrained_backbone(features, backbone_state_dict(_classifier(num_stages=3)))
    with pytest.raises(KeyError, match="missing"):
        load_pretrained_backbone(features, backbone_state_dict(_classifier(num_stages=1)))
    with pytest.raises(ValueError, match="shape"):
        load_pretrained_backbone(features, backbone_state_dict(_classifier(dims=(8, 16, 24))))
    for k, v in features.state_dict().items():                   # nothing was loaded
        assert torch.equal(v, before[k]), k
    report = load_pretrained_backbone(features, backbone_state_dict(_classifier(num_stages=1)), strict=False)
    assert any(k.startswith("stages.1.") for k in report["missing"])


def test_pretrain_loss_fn_trains_with_the_engine():
    model = _classifier(seed=4)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 5, (4,), generator=g))
    hist = train(model, pretrain_loss_fn(0.1), lambda i: batch, steps=2, lr=1e-3, progress=False)
    assert {"ce_s1", "ce_s2"} <= set(hist[0])
    assert hist[0]["loss"] == pytest.approx((hist[0]["ce_s1"] + hist[0]["ce_s2"]) / 2, rel=1e-5)


# --- layer-wise lr decay ---------------------------------------------------------------------

def _check_partition(model, groups, weight_decay):
    trainable = [p for p in model.parameters() if p.requires_grad]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(trainable)
    assert set(ids) == {id(p) for p in trainable}
    for g in groups:
        for name, p in zip(g["names"], g["params"]):
            want = 0.0 if p.ndim <= 1 or name.endswith(".bias") else weight_decay
            assert g["weight_decay"] == want, name


def _lr_by_name(groups) -> dict:
    return {n: g["lr"] for g in groups for n in g["names"]}


def test_cfnet_scheme_in_a_detector():
    det = create_model("test_dense", features=create_model("test_cfnet"))
    lr, d, L = 1e-3, 0.5, 3                         # 2 stages -> num_layers = M + 1 (official T: 3 stages, 4)
    groups = layer_decay_groups(det, lr=lr, weight_decay=0.05, decay_rate=d, num_layers=L, scheme="cfnet")
    _check_partition(det, groups, 0.05)
    by = _lr_by_name(groups)
    expect = {"features.stem.0.weight": lr * d ** 4, "features.p2.0.dwconv.weight": lr * d ** 3,
              "features.p2.1.0.weight": lr * d ** 3, "features.stages.0.b3.0.mlp.gamma": lr * d ** 2,
              "features.stages.0.transition.lat5.weight": lr * d ** 2, "features.stages.1.b5.0.dw1.0.weight": lr * d,
              "features.attach.reduce.0.0.weight": lr, "head.classification_head.cls_logits.weight": lr}
    for name, want in expect.items():
        assert by[name] == pytest.approx(want), name
    assert min(by.values()) == by["features.stem.0.weight"] and max(by.values()) == lr
    assert [g["layer_id"] for g in groups] == sorted(g["layer_id"] for g in groups)
    gamma = next(g for g in groups if "features.stages.0.b3.0.mlp.gamma" in g["names"])
    assert gamma["weight_decay"] == 0.0


def test_cfnet_scheme_on_the_bare_backbone_and_the_classifier():
    for model in (create_model("test_cfnet"), _classifier()):
        groups = layer_decay_groups(model, lr=1.0, weight_decay=0.1, decay_rate=0.9, num_layers=3, scheme="cfnet")
        _check_partition(model, groups, 0.1)
        by = _lr_by_name(groups)
        assert by["stem.0.weight"] == pytest.approx(0.9 ** 4) == min(by.values())
        top = [n for n in by if n.split(".")[0] in ("attach", "heads")]
        assert top and all(by[n] == 1.0 for n in top)


def test_cfnet_small_scheme_splits_each_stage_in_two():
    model = create_model("test_cfnet", blocks=(1, 6, 1))
    L = 2 * 2 + 1                                   # official S / B: 4 stages, num_layers 9
    lid = {n: layer_id(n, scheme="cfnet_small", num_layers=L) for n, _ in model.named_parameters()}
    assert lid["stem.0.weight"] == 0 and lid["p2.0.dwconv.weight"] == 1
    for j in (0, 1):
        k = j + 1
        assert lid[f"stages.{j}.b3.0.dwconv.weight"] == lid[f"stages.{j}.d4.0.weight"] == 2 * k
        assert lid[f"stages.{j}.b4.3.dwconv.weight"] == 2 * k
        assert lid[f"stages.{j}.b4.4.dwconv.weight"] == lid[f"stages.{j}.d5.0.weight"] == 2 * k + 1
        assert lid[f"stages.{j}.b5.0.mlp.fc1.weight"] == 2 * k + 1
    assert lid["stages.0.transition.lat4.weight"] == 3 and lid["attach.reduce.0.0.weight"] == L + 1
    groups = layer_decay_groups(model, lr=1.0, weight_decay=0.05, decay_rate=0.9, num_layers=L, scheme="cfnet_small")
    _check_partition(model, groups, 0.05)


def test_convnext_scheme():
    det = create_model("test_dense", features=create_model("test_convnext_fpn", depths=(1, 1, 7, 1)))
    lr, d, L = 2e-4, 0.8, 6                         # official ConvNeXt-T: num_layers 6
    groups = layer_decay_groups(det, lr=lr, weight_decay=0.05, decay_rate=d, num_layers=L, scheme="convnext")
    _check_partition(det, groups, 0.05)
    lid = {n: g["layer_id"] for g in groups for n in g["names"]}
    want = {"features.stem.0.weight": 0, "features.stages.0.0.dwconv.weight": 1,
            "features.stages.1.0.1.weight": 2, "features.stages.1.1.dwconv.weight": 2,
            "features.stages.2.0.1.weight": 3, "features.stages.2.1.dwconv.weight": 3,   # block 0
            "features.stages.2.3.dwconv.weight": 3, "features.stages.2.4.dwconv.weight": 4,  # blocks 2, 3
            "features.stages.2.7.dwconv.weight": 5,                                          # block 6
            "features.stages.3.0.1.weight": L, "features.stages.3.1.mlp.gamma": L,
            "features.fpn.inner_blocks.0.0.weight": L + 1, "head.regression_head.bbox_reg.weight": L + 1}
    for name, w in want.items():
        assert lid[name] == w, name
    by = _lr_by_name(groups)
    assert by["features.stem.0.weight"] == pytest.approx(lr * d ** 7) == min(by.values())
    assert by["features.fpn.inner_blocks.0.0.weight"] == lr == max(by.values())


def test_official_head_weight_decay_option():
    det = create_model("test_dense", features=create_model("test_convnext_fpn"))
    groups = layer_decay_groups(det, lr=1.0, weight_decay=0.05, decay_rate=0.9, num_layers=6, scheme="convnext",
                                head_weight_decay=1e-4)
    wd = {n: g["weight_decay"] for g in groups for n in g["names"]}
    assert wd["head.classification_head.cls_logits.bias"] == 1e-4          # 1-D too, as the official
    assert wd["features.fpn.inner_blocks.0.0.weight"] == 1e-4              # FPN = official neck
    assert wd["features.stem.1.weight"] == 0.0 and wd["features.stem.0.weight"] == 0.05


def test_frozen_parameters_are_left_out_and_engine_accepts_the_groups():
    model = _classifier(seed=5)
    for p in model.stem.parameters():
        p.requires_grad_(False)
    groups = layer_decay_groups(model, lr=1e-3, weight_decay=0.05, decay_rate=0.9, num_layers=3, scheme="cfnet")
    _check_partition(model, groups, 0.05)
    assert all(g["layer_id"] != 0 for g in groups)
    g = torch.Generator().manual_seed(2)
    batch = (torch.randn(2, 3, 32, 32, generator=g), torch.tensor([0, 1]))
    hist = train(model, pretrain_loss_fn(), lambda i: batch, steps=1, lr=1e-3, params=groups, progress=False,
                 schedule="constant")
    assert math.isfinite(hist[0]["loss"])


def test_bad_scheme_or_too_few_layers_are_rejected():
    cf = create_model("test_cfnet", num_stages=3)
    with pytest.raises(ValueError, match="raise num_layers"):
        layer_decay_groups(cf, lr=1.0, weight_decay=0.0, decay_rate=0.9, num_layers=3, scheme="cfnet")
    with pytest.raises(ValueError, match="ConvNeXt"):
        layer_decay_groups(cf, lr=1.0, weight_decay=0.0, decay_rate=0.9, num_layers=6, scheme="convnext")
    with pytest.raises(ValueError, match="CFNet"):
        layer_decay_groups(create_model("test_convnext_fpn"), lr=1.0, weight_decay=0.0, decay_rate=0.9,
                           num_layers=4, scheme="cfnet")
    with pytest.raises(ValueError, match="scheme"):
        layer_decay_groups(cf, lr=1.0, weight_decay=0.0, decay_rate=0.9, num_layers=4, scheme="layer_wise")
    with pytest.raises(TypeError):
        layer_decay_groups(torch.nn.Linear(2, 2), lr=1.0, weight_decay=0.0, decay_rate=0.9, num_layers=4,
                           scheme="cfnet")


# --- ConvNeXt baseline classifier and build_classifier ---------------------------------------


def test_convnext_classifier_is_pool_norm_linear_on_the_last_stage():
    torch.manual_seed(0)
    clf = build_classifier("test_convnext_fpn", num_classes=5)
    assert isinstance(clf, ConvNeXtClassifier) and clf.num_stages == 1
    assert {k.split(".")[0] for k in clf.state_dict()} == {"stem", "stages", "heads"}      # no fpn
    assert clf.heads[0].fc.weight.shape == (5, 16) and clf.heads[0].norm.eps == 1e-6
    x = torch.randn(2, 3, 64, 64)
    clf.train()
    outs = clf(x)
    assert isinstance(outs, list) and len(outs) == 1 and outs[0].shape == (2, 5)
    clf.eval()
    with torch.no_grad():
        logits = clf(x)
        c5 = clf.stem(x)
        for stage in clf.stages:
            c5 = stage(c5)
        ref = clf.heads[0].fc(F.layer_norm(c5.mean((-2, -1)), (16,), clf.heads[0].norm.weight,
                                           clf.heads[0].norm.bias, 1e-6))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5)
    torch.testing.assert_close(logits, ref)
    torch.testing.assert_close(logits, outs[0].detach())                                # drop path 0
    assert deep_supervision_loss(outs, torch.tensor([0, 1])).item() == pytest.approx(
        F.cross_entropy(outs[0], torch.tensor([0, 1]), label_smoothing=0.1).item())


def test_build_classifier_dispatches_on_the_model_type_and_sets_the_pretrain_drop_path():
    assert isinstance(build_classifier("test_cfnet", 3, hidden=8), DeepSupervisedCFNet)
    assert build_classifier("test_cfnet", 3, hidden=8).heads[0].fc.in_features == 8
    assert PRETRAIN_DROP_PATH["convnext_t_fpn"] == 0.1 and PRETRAIN_DROP_PATH["cfnet_t"] == 0.1
    small = {"dims": (8, 8, 16, 16), "depths": (1, 1, 1, 1), "width": 16}               # convnext_t_fpn, shrunk
    clf = build_classifier("convnext_t_fpn", 3, **small)
    assert clf.stages[3][-1].drop_path.p == pytest.approx(0.1)                           # detection preset: 0.4
    assert build_classifier("convnext_t_fpn", 3, drop_path_rate=0.0, **small).stages[3][-1].drop_path.p == 0.0
    with pytest.raises(TypeError, match="CFNet or a ConvNeXtFPN"):
        build_classifier("test_dense", 3)


def test_convnext_backbone_transfers_into_a_detector_and_keeps_the_fpn():
    torch.manual_seed(1)
    clf = build_classifier("test_convnext_fpn", 4)
    torch.manual_seed(2)
    det = create_model("test_dense", features=create_model("test_convnext_fpn"))
    fpn_before = {k: v.clone() for k, v in det.features.state_dict().items() if k.startswith("fpn.")}
    report = load_pretrained_backbone(det.features, clf.state_dict())
    assert report["missing"] == sorted(fpn_before) and report["dropped"] == sorted(
        k for k in clf.state_dict() if k.startswith("heads."))
    after = det.features.state_dict()
    for k, v in backbone_state_dict(clf).items():
        assert torch.equal(after[k], v), k
    for k, v in fpn_before.items():
        assert torch.equal(after[k], v), k
    with pytest.raises(KeyError, match="missing"):                                       # fewer stages
        load_pretrained_backbone(create_model("test_convnext_fpn"), backbone_state_dict(
            build_classifier("test_convnext_fpn", 4, dims=(8, 8, 16), depths=(1, 1, 1))))


# --- step-indexed ImageNet batches -----------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from paperzoo.data.imagenet import ImageNetFolders

    return ImageNetFolders(write_image_folders(tmp_path_factory.mktemp("in1k")))


def test_crop_box_stays_inside_and_falls_back_to_the_clamped_centre():
    g = torch.Generator().manual_seed(0)
    for h, w in ((32, 32), (40, 90), (375, 500), (7, 300)):
        for _ in range(50):
            top, left, ch, cw = crop_box(h, w, torch.rand(10, 4, generator=g, dtype=torch.float64).tolist())
            assert 0 <= top and 0 <= left and 0 < ch and 0 < cw and top + ch <= h and left + cw <= w
    full = [[0.999999, 0.5, 0.5, 0.5]] * 10                      # area ~ 100 %: never fits a 10 x 100 image
    assert crop_box(10, 100, full) == (0, 43, 10, 13)            # h = 10, w = round(10 * 4/3), centred
    assert crop_box(50, 50, full) == (0, 0, 50, 50)              # a square crop of the whole image
    assert crop_box(40, 40, [[0.0, 0.5, 1.0 - 1e-12, 0.0]]) == (29, 0, 11, 11)   # 8 % of the area, bottom-left


def test_train_batches_depend_on_seed_and_step_only(folders):
    a = StepImageBatches(folders.train, 4, seed=3, train=True, image_size=32)
    b = StepImageBatches(folders.train, 4, seed=3, train=True, image_size=32)
    x5, y5, i = a(5)
    assert i == 5 and x5.shape == (4, 3, 32, 32) and x5.dtype == torch.float32 and y5.dtype == torch.int64
    for k in (7, 0, 2):                                          # other call order, another epoch in between
        b(k)
    x5b, y5b, _ = b(5)
    assert torch.equal(x5, x5b) and torch.equal(y5, y5b)
    x0, _, _ = a(0)
    assert torch.equal(x0, b(0)[0])
    assert not torch.equal(a(4)[0], x5)
    assert not torch.equal(StepImageBatches(folders.train, 4, seed=4, train=True, image_size=32)(5)[0], x5)
    from paperzoo.engine.train import IndexBatches

    idx = IndexBatches(len(folders.train), 4, 3)(5)
    assert y5.tolist() == [folders.train.samples[j][1] for j in idx.tolist()]
    # ImageNet normalisation: roughly centred values, not [0, 1]
    assert x5.min() < 0 < x5.max()
    threaded = StepImageBatches(folders.train, 4, seed=3, train=True, image_size=32, workers=2)
    try:
        for k in (5, 6, 0, 5):
            ref = a(k)
            got = threaded(k)
            assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]) and got[2] == k
    finally:
        threaded.close()


def test_eval_batches_are_sequential_resize_and_centre_crop(folders):
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    ev = StepImageBatches(folders.val, 4, train=False, image_size=32)
    assert len(ev) == 2
    x0, y0, _ = ev(0)
    x1, y1, _ = ev(1)
    assert x0.shape == (4, 3, 32, 32) and x1.shape == (2, 3, 32, 32)
    assert torch.cat([y0, y1]).tolist() == [lab for _, lab in folders.val.samples]
    img = folders.val[5][0]
    ref = TF.center_crop(TF.resize(img, [36], interpolation=InterpolationMode.BICUBIC, antialias=True), [32, 32])
    ref = TF.normalize(ref.float() / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    torch.testing.assert_close(x1[1], ref)
    torch.testing.assert_close(ev(1)[0], x1, rtol=0, atol=0)
    with pytest.raises(IndexError):
        ev(2)


# --- the pretraining step --------------------------------------------------------------------

def _pretrain_block(**over) -> dict:
    p = {"steps": 3, "batch_size": 4, "lr": 1e-3, "weight_decay": 0.05, "warmup": 1, "label_smoothing": 0.1,
         "hidden": 16, "image_size": 32, "num_classes": 3, "n_val": 5, **over}
    return {"arms": {"cfnet": {"model": "test_cfnet"}, "fpn": {"model": "test_convnext_fpn"}}, "pretrain": p}


@pytest.fixture(scope="module")
def pretrained(folders, tmp_path_factory):
    import json

    from paperzoo.studies.cfnet import pretrain

    out = tmp_path_factory.mktemp("pretrain")
    block = _pretrain_block()
    runs = {"cfnet": run_pretrain(block, scale="tiny", arm="cfnet", data_dir=folders.root, checkpoint=out / "cf.pt",
                                  out=out / "cf.json", progress=False, device="cpu")}
    pretrain.main(["--params", json.dumps(block), "--scale", "tiny", "--arm", "fpn", "--data-dir", str(folders.root),
                   "--checkpoint", str(out / "fpn.pt"), "--out", str(out / "fpn.json"), "--device", "cpu",
                   "--workers", "2"])
    return {"dir": out, "block": block, "cfnet": runs["cfnet"]}


def test_pretrain_writes_finite_metrics_for_both_arms(pretrained):
    from paperzoo.engine.io import read_json

    d = pretrained["dir"]
    cf, fpn = read_json(d / "cf.json"), read_json(d / "fpn.json")
    assert (cf["study"], cf["arm"], cf["scale"], cf["seed"]) == ("cfnet", "pretrain_cfnet", "tiny", 0)
    assert fpn["arm"] == "pretrain_fpn"
    assert cf["metrics"] == pytest.approx(pretrained["cfnet"])
    for run, stages in ((cf, 2), (fpn, 1)):
        m = run["metrics"]
        assert all(math.isfinite(v) for v in m.values())
        assert 0.0 <= m["top1"] <= m["top5"] <= 1.0 and m["top5"] == 1.0         # 3 classes: top-5 is trivial
        assert ("top1_stage2" in m) == (stages == 2) and m.get("top1_stage2", m["top1"]) == m["top1"]
        assert 0 < m["params"] < m["params_total"]
        meta = run["meta"]
        assert meta["steps"] == 3 and meta["n_val"] == 5 and meta["n_train"] == 12 and meta["checkpoint_key"] == "model"
        assert any("mixup" in x for x in meta["deviations"])
    assert cf["meta"]["classifier"] == "DeepSupervisedCFNet" and fpn["meta"]["classifier"] == "ConvNeXtClassifier"
    assert any("public ConvNeXt" in x for x in fpn["meta"]["deviations"])
    assert not any("ConvNeXt baseline" in x for x in cf["meta"]["deviations"])
    assert not list(d.glob("*.partial"))


def test_pretrain_checkpoint_loads_into_a_fresh_detector(pretrained):
    from paperzoo.engine.checkpoint import load_checkpoint

    for arm, name in (("cf", "test_cfnet"), ("fpn", "test_convnext_fpn")):
        state = load_checkpoint(pretrained["dir"] / f"{arm}.pt")
        assert set(state) >= {"model", "history", "steps"} and state["steps"] == 3 and len(state["history"]) == 3
        assert {"ce_s1", "loss", "lr"} <= set(state["history"][0])
        torch.manual_seed(9)
        det = create_model("test_dense", features=create_model(name))
        neck = "attach." if arm == "cf" else "fpn."
        neck_before = {k: v.clone() for k, v in det.features.state_dict().items() if k.startswith(neck)}
        report = load_pretrain_checkpoint(det.features, pretrained["dir"] / f"{arm}.pt")
        assert report["missing"] == sorted(neck_before)
        after = det.features.state_dict()
        backbone = {k: v for k, v in state["model"].items() if not k.startswith("heads.")}
        assert backbone and set(backbone) == set(after) - set(neck_before)
        for k, v in backbone.items():
            assert torch.equal(after[k], v), k
        for k, v in neck_before.items():
            assert torch.equal(after[k], v), k
        # the pretrained weights moved away from a fresh init
        torch.manual_seed(0)
        fresh = build_classifier(name, 3, hidden=16).state_dict()
        assert not torch.equal(fresh["stem.0.weight"], state["model"]["stem.0.weight"])


def test_missing_pretrain_keys_are_named(folders, tmp_path):
    block = _pretrain_block()
    del block["pretrain"]["lr"], block["pretrain"]["n_val"]
    with pytest.raises(KeyError) as err:
        pretrain_from_config(block)
    assert "cfnet.pretrain.lr" in str(err.value) and "cfnet.pretrain.n_val" in str(err.value)
    assert "cfnet.pretrain.steps" not in str(err.value)
    with pytest.raises(KeyError, match="cfnet.pretrain.lr"):
        run_pretrain(block, scale="tiny", arm="cfnet", data_dir=folders.root, checkpoint=tmp_path / "c.pt",
                     out=tmp_path / "m.json", progress=False, device="cpu")
    with pytest.raises(KeyError, match=r"cfnet\.pretrain: missing"):
        pretrain_from_config({"arms": {}})
    with pytest.raises(ValueError, match="num_classes"):
        run_pretrain(_pretrain_block(num_classes=1000), scale="tiny", arm="cfnet", data_dir=folders.root,
                     checkpoint=tmp_path / "c.pt", out=tmp_path / "m.json", progress=False, device="cpu")
    with pytest.raises(ValueError, match="image_size"):
        pretrain_from_config(_pretrain_block(image_size=40))
    assert not list(tmp_path.iterdir())


def test_pil_images_give_the_same_batches(folders):
    from torchvision.datasets import ImageFolder

    pil = ImageFolder(str(folders.root / "train"))                  # torchvision's default PIL loader
    a = StepImageBatches(folders.train, 4, seed=1, train=True, image_size=32)
    b = StepImageBatches(pil, 4, seed=1, train=True, image_size=32)
    for i in (0, 3):
        torch.testing.assert_close(a(i)[0], b(i)[0], rtol=0, atol=0)
