"""UFO study: elastic slicing (a sub-network is the first heads / hidden units of the full
weights), hard straight-through routing, CosFace, retrieval metrics, per-path parameter counts,
the step-seeded sampling, the synthid generator's identity structure, config errors, and a tiny run
of every step (paired images across arms, read-only trimming under the cap, figures)."""
import json
import random

import numpy as np
import pytest
import torch

from paperzoo.studies.ufo import models, steps
from paperzoo.studies.ufo.models import ElasticAttention, ElasticMlp, RoutedBlock, Space, UFOSupernet


def test_elastic_attention_with_all_heads_is_plain_attention_and_slices_the_first_heads():
    torch.manual_seed(0)
    att = ElasticAttention(dim=12, max_heads=3, head_dim=4)
    x = torch.randn(2, 5, 12)
    ref = torch.nn.MultiheadAttention(12, 3, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(att.qkv.weight)
        ref.in_proj_bias.copy_(att.qkv.bias)
        ref.out_proj.weight.copy_(att.proj.weight)
        ref.out_proj.bias.copy_(att.proj.bias)
    assert torch.allclose(att(x, 3), ref(x, x, x, need_weights=False)[0], atol=1e-5)
    # 2 heads = an attention built from the first 2 heads' rows of q, k, v and columns of proj
    small = ElasticAttention(dim=12, max_heads=2, head_dim=4)
    with torch.no_grad():
        small.qkv.weight.copy_(att.qkv.weight.view(3, 12, 12)[:, :8].reshape(24, 12))
        small.qkv.bias.copy_(att.qkv.bias.view(3, 12)[:, :8].reshape(24))
        small.proj.weight.copy_(att.proj.weight[:, :8])
        small.proj.bias.copy_(att.proj.bias)
    assert torch.allclose(att(x, 2), small(x, 2), atol=1e-6)
    assert att.n_params(2) == sum(p.numel() for p in small.parameters())


def test_elastic_mlp_slices_hidden_units_and_counts_them():
    mlp = ElasticMlp(6, 8)
    x = torch.randn(3, 6)
    h = 5
    want = torch.nn.functional.gelu(x @ mlp.fc1.weight[:h].t() + mlp.fc1.bias[:h]) @ mlp.fc2.weight[:, :h].t() + mlp.fc2.bias
    assert torch.allclose(mlp(x, h), want, atol=1e-6)
    assert mlp.n_params(8) == sum(p.numel() for p in mlp.parameters())


def test_routing_is_hard_per_sample_with_a_straight_through_gradient_and_argmax_at_eval():
    torch.manual_seed(0)
    blk = RoutedBlock(8, 2, 4, 2.0, ("a", "b"), moe=True)
    x = torch.randn(16, 3, 8)
    out = blk(x, "a", 2, 16, 16)
    out.sum().backward()
    assert blk.route.grad is not None and blk.route.grad[0].abs().sum() > 0 and blk.route.grad[1].abs().sum() == 0
    assert blk.experts["b"].fc1.weight.grad is None               # task b's expert is not used by task a
    blk.eval()
    with torch.no_grad():
        blk.route.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        assert blk.routed_expert("a") == 1 and blk.routed_expert("b") == 0
        y = blk(x, "a", 2, 16, 16)
        h = x + blk.attn(blk.norm1(x), 2)
        assert torch.allclose(y, h + blk.experts["a"](blk.norm2(h), 16), atol=1e-6)


def test_path_params_count_exactly_the_deployed_modules():
    net = UFOSupernet(("a", "b"), img_size=16, patch_size=8, dim=8, max_depth=2, max_heads=2, head_dim=4,
                      max_mlp_ratio=2.0, moe=True)
    cfg = {"depth": 2, "heads": [2, 2], "mlp_shared": [2.0, 2.0], "mlp_task": [2.0, 2.0]}
    per_task = (sum(p.numel() for p in net.patch_embed["a"].parameters()) + net.pos_embed["a"].numel()
                + net.cls_token["a"].numel())
    blocks = sum(p.numel() for b in net.blocks for n, p in b.named_parameters()
                 if not n.startswith(("experts", "route")))      # routed to the shared FFN at init (argmax of 0, 0)
    assert net.path_params("a", cfg) == per_task + blocks + sum(p.numel() for p in net.norm.parameters())
    small = {"depth": 1, "heads": [1], "mlp_shared": [1.0], "mlp_task": [1.0]}
    assert net.path_params("a", small) < net.path_params("a", cfg)


def test_cosface_matches_its_formula():
    cf = models.CosFace(4, 3, s=10.0, m=0.2)
    emb = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    y = torch.tensor([0, 1, 2, 1, 0])
    cos = emb @ torch.nn.functional.normalize(cf.weight, dim=-1).t()
    logits = 10.0 * cos
    logits[torch.arange(5), y] -= 10.0 * 0.2
    assert cf(emb, y).item() == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-6)


def test_retrieval_metrics_by_hand():
    perfect = models.retrieval_metrics(torch.eye(2).repeat_interleave(2, 0), torch.tensor([0, 0, 1, 1]))
    assert perfect == {"R1": 1.0, "mAP": 1.0}
    emb3 = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=-1)
    r3 = models.retrieval_metrics(emb3, torch.tensor([0, 1, 0]))
    # query 0: ranked [1 (x), 2 (v)] -> AP 1/2; query 1: no relevant (skipped); query 2: ranked [1 (x), 0 (v)] -> 1/2
    assert r3["mAP"] == pytest.approx(0.5) and r3["R1"] == pytest.approx(0.0)


def test_step_configs_are_seeded_by_step_and_largest_every_k():
    space = Space()
    a = [models.step_config(space, 0, i, 4) for i in range(12)]
    assert a == [models.step_config(space, 0, i, 4) for i in range(12)]
    assert all(a[i] == space.largest() for i in (0, 4, 8))
    assert len({json.dumps(c) for c in a}) > 3
    assert models.step_config(space, 1, 1, 4) != models.step_config(space, 0, 1, 4)
    rng = random.Random(0)
    for _ in range(20):
        c = models.mutate(models.path_config(space, rng), space, rng)
        assert len(c["heads"]) == len(c["mlp_shared"]) == len(c["mlp_task"]) == c["depth"]


def test_synthid_colour_is_identity_for_vehicles_and_nuisance_for_products(tmp_path):
    from paperzoo.data.synthid import load_synthid, write_synthid

    write_synthid(tmp_path, seed=0, size=32, noise_max=0.0, tasks={"vehicle": {"train_ids": 6, "per_id": 6},
                                                                    "product": {"train_ids": 6, "per_id": 6}},
                  val_ids=2, test_ids=2, eval_per_id=2)

    def within_id_hue_spread(task):
        x, y = load_synthid(tmp_path, task, "train")
        x = x.float()
        centre = x[:, :, 12:20, 12:20].mean((2, 3))                      # mostly the object's body colour
        chroma = centre / centre.sum(1, keepdim=True).clamp_min(1)
        return float(np.mean([chroma[y == i].std(0).mean() for i in range(6)]))

    assert within_id_hue_spread("vehicle") < 0.5 * within_id_hue_spread("product")
    with pytest.raises(FileNotFoundError, match="no 'face' 'train' split"):
        load_synthid(tmp_path, "face", "train")


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="ufo.tasks: unknown task"):
        steps.tasks_from_config({"tasks": ["face", "cat"], "cosface": {}})
    with pytest.raises(KeyError, match=r"ufo.cosface: no s/m for task\(s\) \['person'\]"):
        steps.tasks_from_config({"tasks": ["face", "person"], "cosface": {"face": {}}})
    with pytest.raises(ValueError, match="ufo.search.param_cap"):
        steps.search_from_config({"search": {"param_cap": 1.5, "n_random": 1, "n_evolve": 0, "top_k": 1, "seed": 0}})


# --- a tiny run of every step ------------------------------------------------------------------

def _block() -> dict:
    return {"seeds": 2, "dataset": "synthid", "tasks": ["face", "person", "vehicle", "product"],
            "model": {"img_size": 32, "patch_size": 8, "dim": 16, "head_dim": 8, "tau": 5.0, "stem": "conv"},
            "space": {"depths": [1, 2], "heads": [1, 2], "mlp_ratios": [1.0, 2.0]},
            "train": {"steps": 3, "batch_per_task": 4, "lr": 1e-3, "weight_decay": 0.05, "warmup_frac": 0.0,
                      "largest_every": 2, "augment": {"flip": True, "crop_pad": 2}},
            "cosface": {t: {"s": 30.0, "m": 0.2} for t in ("face", "person", "vehicle", "product")},
            "search": {"param_cap": 0.9, "n_random": 3, "n_evolve": 2, "top_k": 2, "seed": 0},
            "eval": {"latency_batch": 4, "latency_repeats": 1}}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from paperzoo.data.synthid import write_synthid

    d = tmp_path_factory.mktemp("ufo")
    write_synthid(d, seed=0, size=32, noise_max=4.0, tasks={t: {"train_ids": 4, "per_id": 3}
                                                            for t in ("face", "person", "vehicle", "product")},
                  val_ids=3, test_ids=3, eval_per_id=2)
    return d


def test_arms_see_the_same_images_of_a_task():
    train = {t: (torch.arange(50).float()[:, None], torch.arange(50)) for t in ("a", "b")}
    multi = steps.task_batches(train, ("a", "b"), ("a", "b"), 5, seed=3)
    single = steps.task_batches(train, ("b",), ("a", "b"), 5, seed=3)
    assert torch.equal(multi(7)[0]["b"][1], single(7)[0]["b"][1])
    assert not torch.equal(multi(7)[0]["a"][1], multi(7)[0]["b"][1])


def test_tiny_every_step_trimming_is_read_only_and_under_the_cap(tiny_data, tmp_path):
    from paperzoo.engine.metrics import aggregate
    from paperzoo.studies.ufo.figures import FIGURES, make_all

    from .distill_runs import claims_resolve

    b = _block()
    runs = {}
    for seed in (0, 1):
        steps.run_single(b, scale="tiny", seed=seed, data_dir=tiny_data, checkpoint_dir=tmp_path / f"single{seed}",
                         out=tmp_path / f"single{seed}.json", progress=False)
        for arm in ("allinone", "ufo_largest"):
            steps.run_multitask(b, scale="tiny", arm=arm, seed=seed, data_dir=tiny_data,
                                checkpoint=tmp_path / f"{arm}{seed}.pt", out=tmp_path / f"{arm}{seed}.json",
                                progress=False)
        before = (tmp_path / f"ufo_largest{seed}.pt").read_bytes()
        m = steps.run_trim(b, scale="tiny", seed=seed, data_dir=tiny_data, supernet=tmp_path / f"ufo_largest{seed}.pt",
                           out=tmp_path / f"ufo_trimmed{seed}.json", progress=False)
        assert (tmp_path / f"ufo_largest{seed}.pt").read_bytes() == before
        assert m["weights_changed"] == 0.0
        assert all(m[f"params_frac_{t}"] <= 0.9 + 1e-9 for t in b["tasks"])
        runs |= {f"{a}{seed}": tmp_path / f"{a}{seed}.json" for a in ("single", "allinone", "ufo_largest", "ufo_trimmed")}
    single = json.loads((tmp_path / "single0.json").read_text())["metrics"]
    assert {"R1_person", "mAP_product", "params_face", "latency_ms_vehicle", "params_path_max"} <= set(single)
    found = json.loads((tmp_path / "ufo_trimmed0.json").read_text())["meta"]["found"]
    assert found["face"]["candidates"] == 5
    claims_resolve(steps, runs)
    paths = make_all(b, aggregate(list(runs.values())), tmp_path / "fig", scale="tiny",
                     trimmed_run=json.loads((tmp_path / "ufo_trimmed0.json").read_text()))
    assert [p.stem for p in paths] == list(FIGURES)
    # deterministic on CPU: the same inputs give the same metrics
    again = steps.run_multitask(b, scale="tiny", arm="ufo_largest", seed=0, data_dir=tiny_data,
                                checkpoint=tmp_path / "again.pt", out=tmp_path / "again.json", progress=False)
    first = json.loads((tmp_path / "ufo_largest0.json").read_text())["metrics"]
    assert {k: v for k, v in again.items() if "ms" not in k} == {k: v for k, v in first.items() if "ms" not in k}


def test_trimming_refuses_a_cap_no_path_meets(tiny_data, tmp_path):
    b = _block()
    steps.run_multitask(b, scale="tiny", arm="ufo_largest", seed=0, data_dir=tiny_data, checkpoint=tmp_path / "u.pt",
                        out=tmp_path / "u.json", progress=False)
    b["search"]["param_cap"] = 0.01
    with pytest.raises(RuntimeError, match="no sub-network under"):
        steps.run_trim(b, scale="tiny", seed=0, data_dir=tiny_data, supernet=tmp_path / "u.pt", out=tmp_path / "t.json",
                       progress=False)
    assert not (tmp_path / "t.json").exists()
