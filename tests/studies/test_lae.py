"""LAE study: EMA / ensemble / metric math on small tensors, the weight download, and a tiny
end-to-end run of every arm through ``steps`` (CLI included) → aggregate → claims → figures."""
import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from numpy.testing import assert_allclose

from paperzoo.data.classes import ClassesSpec, write_classes
from paperzoo.data.coco_download import ChecksumError
from paperzoo.data.digits import write_digits
from paperzoo.data.store import sha256_file
from paperzoo.engine.claims import evaluate as evaluate_claims
from paperzoo.engine.claims import load_paper
from paperzoo.engine.io import read_json
from paperzoo.engine.metrics import aggregate
from paperzoo.studies.lae import benchmark, learner, pretrain, steps
from paperzoo.studies.lae.figures import FIGURES

STUDY_DIR = Path(steps.__file__).parent
REPO = STUDY_DIR.parents[3]
torch.set_num_threads(1)


# --- equations on small tensors ------------------------------------------------------------------

def test_ema_update_equation_and_decay_rescale():
    on = torch.nn.ModuleList([torch.nn.Linear(3, 2)])
    acc = learner.PETAccumulator(on, decay=0.9)
    off0 = [p.clone() for p in acc.module.parameters()]
    with torch.no_grad():
        for p in on.parameters():
            p.add_(1.0)
    model = type("M", (), {"pet": on})()
    acc.update(model)
    for p_off, p0, p_on in zip(acc.module.parameters(), off0, on.parameters()):
        assert_allclose(p_off.numpy(), (0.9 * p0 + 0.1 * p_on.detach()).numpy(), atol=1e-6)
        assert not p_off.requires_grad
    d = learner.ema_decay(0.1, 40)
    assert d == pytest.approx(0.9975)
    assert 1 - d ** 40 == pytest.approx(0.1, abs=0.005)           # ≈ c pulled per task
    assert 1 - 0.9999 ** 1040 == pytest.approx(0.0988, abs=1e-3)  # the official per-task pull it preserves


def test_max_softmax_ensemble_is_not_a_logit_mean():
    p_on = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    p_off = torch.tensor([[0.1, 0.7, 0.2], [0.55, 0.4, 0.05]])
    ens = learner.ensemble_probs(p_on, p_off)
    assert_allclose(ens.numpy(), [[0.6, 0.7, 0.2], [0.55, 0.4, 0.6]])
    assert ens.argmax(1).tolist() == [1, 2]
    assert (p_on + p_off).argmax(1).tolist() == [1, 0]             # the averaging rule differs here


def test_accuracy_matrix_forgetting_and_summary():
    acc = np.array([[0.9, np.nan, np.nan], [0.6, 0.8, np.nan], [0.5, 0.4, 0.7]])
    stage = np.array([0.9, 0.7, 0.5333])
    assert benchmark.forgetting(acc) == pytest.approx(((0.9 - 0.5) + (0.8 - 0.4)) / 2)
    m = benchmark.summarize(acc, stage, prefix="online_")
    assert m["online_acc_last"] == pytest.approx(0.5333) and m["online_acc_avg"] == pytest.approx(np.mean(stage))
    assert m["online_acc_old"] == pytest.approx(0.45) and m["online_acc_new"] == pytest.approx(0.7)
    assert m["online_acc_t2_task1"] == pytest.approx(0.6) and "online_acc_t1_task2" not in m
    pred, labels = torch.tensor([0, 1, 3, 3, 2]), torch.tensor([0, 1, 2, 3, 2])
    assert benchmark.task_accuracies(pred, labels, [[0, 1], [2, 3]]) == pytest.approx([1.0, 2 / 3])


def test_class_order_is_a_seeded_permutation():
    a, b = benchmark.class_order(10, 0), benchmark.class_order(10, 1)
    assert sorted(a) == list(range(10)) and a != b and a == benchmark.class_order(10, 0)


def test_frozen_steps_give_the_pet_no_gradient():
    from paperzoo.layers.pet import PETViT, make_pet
    from paperzoo.layers.vit import test_vit
    from paperzoo.data.sets import ClassificationSet

    torch.manual_seed(0)
    vit = PETViT(test_vit())
    model = learner.CILModel(vit, make_pet("adapter", 32, 1))
    head = model.add_head(2)
    images = torch.randint(0, 255, (8, 3, 16, 16), dtype=torch.uint8)
    ds = ClassificationSet(images, torch.tensor([0, 1] * 4), ["a", "b"])
    before = [p.clone() for p in model.pet.parameters()]
    learner.learn_task(model, learner.TaskBatches(ds, 4, 0, 16), head=head, label_offset=0, steps=2, freeze_steps=2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.pet.parameters()))
    learner.learn_task(model, learner.TaskBatches(ds, 4, 0, 16), head=head, label_offset=0, steps=2, freeze_steps=0)
    assert not all(torch.equal(a, b) for a, b in zip(before, model.pet.parameters()))


# --- paper-scale weights: download path --------------------------------------------------------

@pytest.fixture
def served(tmp_path):
    """A loopback HTTP server over ``tmp_path/www`` (the downloader allows http only on loopback)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_official_weights_download_verifies_and_refuses_unverified(served, tmp_path):
    www, base = served
    (www / "w.npz").write_bytes(b"fake weights" * 100)
    good = sha256_file(www / "w.npz")
    dest = tmp_path / "out" / "ViT-B_16.npz"
    with pytest.raises(ChecksumError, match="allow_unverified"):
        pretrain.fetch_official_weights(f"{base}/w.npz", dest, sha256=None)
    assert not dest.exists()
    with pytest.raises(ChecksumError):
        pretrain.fetch_official_weights(f"{base}/w.npz", dest, sha256="0" * 64)
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()
    assert pretrain.fetch_official_weights(f"{base}/w.npz", dest, sha256=good) == dest
    assert sha256_file(dest) == good
    with pytest.raises(ValueError, match="https"):
        pretrain.fetch_official_weights("http://example.com/w.npz", dest, sha256=good)


# --- tiny end-to-end -------------------------------------------------------------------------------

def _tiny_block() -> dict:
    """The repository config at ``tiny`` once the lae block is integrated, else the proposal files."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    if "lae" in cfg:
        from paperzoo.engine.config import resolve

        return resolve({**cfg, "scale": "tiny"}, REPO)["lae"]
    prop = REPO / "proposals" / "lae"
    block = yaml.safe_load((prop / "config_block.yaml").read_text())["lae"]
    for dotted, v in yaml.safe_load((prop / "overlays.yaml").read_text())["tiny"].items():
        node = block
        *path, last = dotted.split(".")[1:]
        for p in path:
            node = node[p]
        node[last] = v
    return block


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("lae")
    write_classes(root / "classes", ClassesSpec(), n_upstream=20, n_downstream=8, n_train_per_class=8,
                  n_test_per_class=4, seed=0, class_seed=0)
    write_digits(root / "digits", test_fraction=0.2, upsample=2, channels=3, seed=0)
    block = _tiny_block()
    bb = root / "pretrain" / "backbone.pt"
    steps.run_pretrain(block, scale="tiny", data_dir=root / "classes", out=bb, metrics_out=root / "pretrain" / "m.json")
    runs, pairs = [], steps.fork_pairs(block)
    assert pairs == {"lae_adapter": "seq_adapter", "lae_lora": "seq_lora", "lae_prefix": "seq_prefix"}
    for arm in steps.run_arms(block):
        bench, name = arm.split("_", 1)
        if name in pairs.values():
            continue                                          # written by its LAE arm's job
        out = root / "runs" / arm / "seed0" / "metrics.json"
        seq_out = root / "runs" / f"{bench}_{pairs[name]}" / "seed0" / "metrics.json" if name in pairs else None
        if arm == "classes_lae_adapter":                      # the CLI path once
            import json
            steps.main(["train", "--params", json.dumps(block), "--scale", "tiny", "--arm", arm, "--seed", "0",
                        "--backbone", str(bb), "--data-dir", str(root / bench), "--out", str(out),
                        "--state", str(out.with_name("state.pt")), "--seq-out", str(seq_out)])
        else:
            steps.run_train(block, scale="tiny", arm=arm, seed=0, backbone=bb, data_dir=root / bench, out=out,
                            seq_out=seq_out)
        runs += [out] + ([seq_out] if seq_out else [])
    return {"root": root, "block": block, "runs": runs}


def test_tiny_runs_write_metrics_with_expert_split(tiny):
    run = read_json(tiny["root"] / "runs" / "classes_lae_adapter" / "seed0" / "metrics.json")
    m = run["metrics"]
    for pre in ("", "online_", "offline_"):
        assert {f"{pre}acc_last", f"{pre}acc_avg", f"{pre}forgetting", f"{pre}acc_old", f"{pre}acc_new"} <= set(m)
    assert all("." not in k and 0 <= v <= 1 for k, v in m.items() if k.startswith(("acc", "online_acc")))
    assert any("EMA decay rescaled" in d for d in run["meta"]["deviations"])
    assert run["meta"]["pet_params"] > 0
    assert not (tiny["root"] / "runs" / "classes_lae_adapter" / "seed0" / "state.pt").exists()
    assert not (tiny["root"] / "runs" / "classes_lae_adapter" / "seed0" / "state.pt.d").exists()
    calib = read_json(tiny["root"] / "runs" / "classes_calib" / "seed0" / "metrics.json")["metrics"]
    assert {"loss_auc_cal", "loss_auc_nocal", "acc_cal", "acc_nocal"} <= set(calib)
    # the forked pair: Seq-PET's file comes from the same job, task 1 is shared exactly
    seq = read_json(tiny["root"] / "runs" / "classes_seq_adapter" / "seed0" / "metrics.json")
    assert (seq["arm"], seq["meta"]["forked_pair"]) == ("classes_seq_adapter", "classes_lae_adapter")
    assert seq["metrics"]["acc_stage1"] == m["online_acc_stage1"] == m["acc_stage1"]
    assert m["gain_lae_vs_seq"] == pytest.approx(m["acc_last"] - seq["metrics"]["acc_last"])
    assert m["gain_freeze"] == pytest.approx(m["online_acc_last"] - seq["metrics"]["acc_last"])
    assert 0 <= m["ta_acc_last"] <= 1 and m["ta_acc_last"] >= m["acc_last"]   # a task id never hurts
    assert m["pet_delta_rel"] > 0 and seq["metrics"]["pet_delta_rel"] > 0


def test_forked_pair_equals_separate_runs_and_resumes(tiny, tmp_path):
    """Seq-PET + LAE forked after task 1 give exactly the separate runs; a pair killed in Seq-PET
    (state after task 1, fork file written) resumes to the same metrics."""
    from paperzoo.layers.pet import PETViT
    from paperzoo.studies.lae.runs import run_continual, run_seq_lae

    block, root = tiny["block"], tiny["root"]
    bench = benchmark.load_benchmark("classes", root / "classes", n_tasks=4, classes_per_task=2, seed=1)
    vit = PETViT(pretrain.load_backbone(root / "pretrain" / "backbone.pt"))
    kw = dict(pet_kind="lora", pet_cfg=block["pet"], seed=1, size=32, batch_size=4, lr=3e-2,
              epochs=2, freeze_epochs=1, ema_c=0.5)
    seq_alone, _ = run_continual(vit, bench, method="seq", **kw)
    lae_alone, _ = run_continual(vit, bench, method="lae", **kw)
    (seq, _), (lae, _) = run_seq_lae(vit, bench, **kw)
    assert seq == seq_alone
    assert {k: v for k, v in lae.items() if not k.startswith("gain_lae") and k != "gain_freeze"} == lae_alone
    # the experts differ (a fork once aliased their accuracy matrices into one)
    assert any(lae[f"online_acc_stage{t}"] != lae[f"offline_acc_stage{t}"] for t in range(2, 5))
    d = tmp_path / "state.d"
    d.mkdir()
    assert run_continual(vit, bench, method="seq", state=d / "seq.pt", fork_state=d / "fork.pt",
                         stop_after=1, **kw) == ({}, {})                                   # "killed"
    (seq_r, _), (lae_r, _) = run_seq_lae(vit, bench, state_dir=d, **kw)
    assert (seq_r, lae_r) == (seq, lae)


def test_resume_from_task_state_matches_uninterrupted(tiny, tmp_path):
    """A state file after task 1 (what a killed run leaves) resumes to the same metrics."""
    from paperzoo.layers.pet import PETViT

    block, root = tiny["block"], tiny["root"]
    b = block["bench"]["classes"]
    bench = benchmark.load_benchmark("classes", root / "classes", n_tasks=b["n_tasks"],
                                     classes_per_task=b["classes_per_task"], seed=0)
    vit = PETViT(pretrain.load_backbone(root / "pretrain" / "backbone.pt"))
    kw = dict(method="lae", pet_kind="lora", pet_cfg=block["pet"], seed=0, size=32, batch_size=8, lr=1e-3,
              epochs=2, freeze_epochs=1, ema_c=0.1)
    from paperzoo.studies.lae.runs import run_continual

    full, _ = run_continual(vit, bench, **kw)
    assert run_continual(vit, bench, state=tmp_path / "s.pt", stop_after=1, **kw) == ({}, {})   # "killed"
    resumed, _ = run_continual(vit, bench, state=tmp_path / "s.pt", **kw)
    assert resumed == pytest.approx(full, abs=1e-6)


def test_damaged_or_foreign_task_state_restarts_from_task_1(tiny, tmp_path, capsys):
    """A truncated state file, or one another run left (other seed), is deleted with a message
    naming it and the run starts from task 1: never a crash loop, never a wrong resume."""
    from paperzoo.layers.pet import PETViT
    from paperzoo.studies.lae.runs import run_continual

    block, root = tiny["block"], tiny["root"]
    b = block["bench"]["classes"]
    bench = benchmark.load_benchmark("classes", root / "classes", n_tasks=b["n_tasks"],
                                     classes_per_task=b["classes_per_task"], seed=0)
    vit = PETViT(pretrain.load_backbone(root / "pretrain" / "backbone.pt"))
    kw = dict(method="lae", pet_kind="lora", pet_cfg=block["pet"], size=32, batch_size=8, lr=1e-3,
              epochs=2, freeze_epochs=1, ema_c=0.1)
    full, _ = run_continual(vit, bench, seed=0, **kw)
    state = tmp_path / "s.pt"
    assert run_continual(vit, bench, seed=0, state=state, stop_after=1, **kw) == ({}, {})
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])          # truncated
    capsys.readouterr()
    again, _ = run_continual(vit, bench, seed=0, state=state, **kw)
    err = capsys.readouterr().err
    assert f"{state}: unreadable resume state" in err and "resuming" not in err
    assert again == pytest.approx(full, abs=1e-6)

    assert run_continual(vit, bench, seed=1, state=state, stop_after=1, **kw) == ({}, {})   # seed 1 left it
    again, _ = run_continual(vit, bench, seed=0, state=state, **kw)
    err = capsys.readouterr().err
    assert f"{state}: resume state of a different run" in err and "resuming" not in err
    assert again == pytest.approx(full, abs=1e-6)


def test_aggregate_claims_and_figures(tiny, tmp_path):
    agg = aggregate(tiny["runs"])
    paper = load_paper(STUDY_DIR / "paper.yaml")
    res = evaluate_claims(paper, agg, "tiny")                 # every claim's metrics exist in the runs
    assert len(res["claims"]) == len(paper["claims"])
    assert {c["unadjusted"] for c in res["claims"]} == {"inconclusive", "not run"}   # 1 seed < min_seeds; paper-scale rows
    import json
    (tmp_path / "agg.json").write_text(json.dumps(agg))
    paths = steps.run_figures(tiny["block"], scale="tiny", metrics=tmp_path / "agg.json", outdir=tmp_path / "f")
    assert [p.stem for p in paths] == list(FIGURES) and all(p.stat().st_size > 1000 for p in paths)


def test_benchmark_training_overrides_and_paper_settings():
    """ImageNet-R's official lr / epochs / freeze window override lae.train; CIFAR keeps it."""
    import yaml

    from paperzoo.engine.config import resolve
    from paperzoo.studies.lae.steps import train_from_config

    cfg = resolve({**yaml.safe_load((REPO / "config/config.yaml").read_text()), "scale": "paper"}, REPO)["lae"]
    inr = train_from_config(cfg, cfg["bench"]["imagenetr"])
    cif = train_from_config(cfg, cfg["bench"]["cifar100"])
    assert (inr["lr"], inr["epochs"], inr["freeze_epochs"]) == (0.00046875, 50, 30)
    assert (cif["lr"], cif["epochs"], cif["freeze_epochs"]) == (0.0028125, 5, 3)
    assert cif["batch_size"] == 24 and cif["ema_decay_fixed"] == 0.9999


def _to_jax_npz(vit, path, heads: int) -> None:
    """Write ``vit`` in the layout of Google's ViT ``.npz`` checkpoints (the inverse of timm's
    ``_load_weights`` for a plain ViT; IN-21k extras such as ``pre_logits`` / ``head`` added
    as in the official file, with 21,843 classes)."""
    import numpy as np

    sd = {k: v.detach().numpy() for k, v in vit.state_dict().items()}
    d = sd["cls_token"].shape[-1]
    w = {"embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),   # OIHW → HWIO
         "embedding/bias": sd["patch_embed.proj.bias"], "cls": sd["cls_token"],
         "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
         "Transformer/encoder_norm/scale": sd["norm.weight"], "Transformer/encoder_norm/bias": sd["norm.bias"],
         "pre_logits/kernel": np.zeros((d, d), np.float32), "pre_logits/bias": np.zeros(d, np.float32),
         "head/kernel": np.zeros((d, 21843), np.float32), "head/bias": np.zeros(21843, np.float32)}
    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        b, p = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        qkv_w, qkv_b = sd[b + "attn.qkv.weight"].reshape(3, d, d), sd[b + "attn.qkv.bias"].reshape(3, d)
        for j, n in enumerate(("query", "key", "value")):
            w[p + f"MultiHeadDotProductAttention_1/{n}/kernel"] = qkv_w[j].T.reshape(d, heads, d // heads)
            w[p + f"MultiHeadDotProductAttention_1/{n}/bias"] = qkv_b[j].reshape(heads, d // heads)
        w[p + "MultiHeadDotProductAttention_1/out/kernel"] = sd[b + "attn.proj.weight"].T.reshape(heads, d // heads, d)
        w[p + "MultiHeadDotProductAttention_1/out/bias"] = sd[b + "attn.proj.bias"]
        for ln, t in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            w[p + f"{ln}/scale"], w[p + f"{ln}/bias"] = sd[b + f"{t}.weight"], sd[b + f"{t}.bias"]
        for r in range(2):
            w[p + f"MlpBlock_3/Dense_{r}/kernel"] = sd[b + f"mlp.fc{r + 1}.weight"].T
            w[p + f"MlpBlock_3/Dense_{r}/bias"] = sd[b + f"mlp.fc{r + 1}.bias"]
        i += 1
    np.savez(path, **w)


def test_official_npz_layout_loads_into_the_registered_vit(tmp_path):
    """The paper-scale path (official IN-21k ``ViT-B_16.npz``) on a small ViT written in the
    same JAX layout: every weight arrives where timm's loader puts it, and the backbone
    written by ``load_official`` reloads to identical features."""
    from paperzoo.studies.lae.pretrain import build_vit, load_backbone, load_official

    torch.manual_seed(0)
    src = build_vit("test_vit")
    _to_jax_npz(src, tmp_path / "ViT.npz", heads=2)
    res = load_official(model="test_vit", model_kwargs={}, npz=tmp_path / "ViT.npz", out=tmp_path / "bb.pt")
    assert res["n_params"] == sum(p.numel() for p in src.parameters())
    got = load_backbone(tmp_path / "bb.pt")
    for k, v in src.state_dict().items():
        torch.testing.assert_close(got.state_dict()[k], v, msg=k)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(got.eval()(x), src.eval()(x))
