"""HungarianMatcher and SetCriterion on small hand-made cases."""
import pytest
import torch
from numpy.testing import assert_allclose

from paperzoo.layers.criterion import SetCriterion, weighted_loss, with_aux_weights
from paperzoo.layers.matcher import HungarianMatcher

torch.set_num_threads(1)
BIG = 10.0  # logit of a confident prediction


def _target(labels, boxes):
    return {"labels": torch.tensor(labels, dtype=torch.int64), "boxes": torch.tensor(boxes, dtype=torch.float32)}


def _random_outputs(B, N, C, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"pred_logits": torch.randn(B, N, C, generator=g),
            "pred_boxes": torch.rand(B, N, 4, generator=g) * 0.5 + 0.25}


def _random_targets(sizes, C, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [{"labels": torch.randint(0, C, (m,), generator=g), "boxes": torch.rand(m, 4, generator=g) * 0.4 + 0.3}
            for m in sizes]


def test_box_cost_gives_the_obvious_assignment():
    # three queries sitting on three targets in a shuffled order; class cost off
    boxes = torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2], [0.8, 0.3, 0.1, 0.3]])
    perm = torch.tensor([2, 0, 1])  # query q sits on target perm[q]
    outputs = {"pred_logits": torch.zeros(1, 3, 2), "pred_boxes": boxes[perm].unsqueeze(0)}
    matcher = HungarianMatcher(cost_class=0, cost_bbox=5, cost_giou=2)
    (rows, cols), = matcher(outputs, [{"labels": torch.zeros(3, dtype=torch.int64), "boxes": boxes}])
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == perm.tolist()


def test_class_cost_breaks_a_tie_between_identical_boxes():
    box = [0.5, 0.5, 0.2, 0.2]
    logits = torch.tensor([[[BIG, -BIG], [-BIG, BIG]]])  # query 0 says class 0, query 1 says class 1
    outputs = {"pred_logits": logits, "pred_boxes": torch.tensor([[box, box]])}
    for focal in (True, False):
        (rows, cols), = HungarianMatcher(focal=focal)(outputs, [_target([1, 0], [box, box])])
        assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 1: 0}


def test_more_targets_than_queries_matches_every_query_once():
    outputs = _random_outputs(1, 2, 3)
    (rows, cols), = HungarianMatcher()(outputs, _random_targets([5], 3))
    assert sorted(rows.tolist()) == [0, 1] and len(set(cols.tolist())) == 2


def test_empty_targets():
    outputs = _random_outputs(3, 4, 3)
    targets = _random_targets([0, 2, 0], 3)
    idx = HungarianMatcher()(outputs, targets)
    assert [len(r) for r, _ in idx] == [0, 2, 0]
    assert all(len(r) == 0 for r, _ in HungarianMatcher()(outputs, _random_targets([0, 0, 0], 3)))


@pytest.mark.parametrize("focal", [True, False])
@pytest.mark.parametrize("groups", [1, 3])
def test_batched_equals_single_image(focal, groups):
    sizes = [3, 0, 1, 4]
    outputs = _random_outputs(len(sizes), 5 * groups, 4)
    targets = _random_targets(sizes, 4)
    matcher = HungarianMatcher(focal=focal)
    batched = matcher(outputs, targets, num_groups=groups)
    for b in range(len(sizes)):
        single = {k: v[b:b + 1] for k, v in outputs.items()}
        (rows, cols), = matcher(single, targets[b:b + 1], num_groups=groups)
        assert torch.equal(rows, batched[b][0]) and torch.equal(cols, batched[b][1])


def test_groups_are_matched_independently():
    G, Q = 3, 5
    outputs = _random_outputs(2, G * Q, 4)
    targets = _random_targets([3, 2], 4)
    matcher = HungarianMatcher()
    grouped = matcher(outputs, targets, num_groups=G)
    for b, (rows, cols) in enumerate(grouped):
        assert len(rows) == G * len(targets[b]["labels"])  # every box once per group
        for g in range(G):
            in_g = (rows >= g * Q) & (rows < (g + 1) * Q)
            sub = {k: v[:, g * Q:(g + 1) * Q] for k, v in outputs.items()}
            r, c = matcher(sub, targets)[b]
            assert torch.equal(rows[in_g] - g * Q, r) and torch.equal(cols[in_g], c)


def _perfect_outputs(targets, Q, C, focal):
    """Queries 0..M-1 predict the targets exactly; the others predict background."""
    B = len(targets)
    logits = torch.full((B, Q, C if focal else C + 1), -BIG)
    if not focal:
        logits[..., -1] = BIG
    boxes = torch.full((B, Q, 4), 0.5)
    for b, t in enumerate(targets):
        m = len(t["labels"])
        boxes[b, :m] = t["boxes"]
        logits[b, :m] = -BIG
        logits[b, torch.arange(m), t["labels"]] = BIG
    return {"pred_logits": logits, "pred_boxes": boxes}


@pytest.mark.parametrize("focal", [True, False])
def test_perfect_predictions_give_near_zero_losses(focal):
    C, Q, L = 3, 6, 3
    targets = _random_targets([2, 0, 3], C)
    out = _perfect_outputs(targets, Q, C, focal)
    out["aux_outputs"] = [_perfect_outputs(targets, Q, C, focal) for _ in range(L - 1)]
    weights = with_aux_weights({"loss_ce": 2, "loss_bbox": 5, "loss_giou": 2}, L)
    crit = SetCriterion(C, HungarianMatcher(focal=focal), weights, focal=focal)
    losses = crit(out, targets)
    assert set(losses) == set(weights)
    for k, v in losses.items():
        assert v.item() == pytest.approx(0.0, abs=1e-5), k
    # and a shifted box costs exactly its L1 distance per box
    out["pred_boxes"][0, 0, 0] += 0.1
    assert crit(out, targets)["loss_bbox"].item() == pytest.approx(0.1 / 5, rel=1e-4)


def test_loss_keys_match_weight_dict_including_aux_and_backprop():
    C, Q, L = 4, 5, 3
    out = _random_outputs(2, Q, C)
    out["pred_logits"].requires_grad_(True)
    out["aux_outputs"] = [_random_outputs(2, Q, C, seed=s) for s in range(L - 1)]
    weights = with_aux_weights({"loss_ce": 2, "loss_bbox": 5, "loss_giou": 2}, L)
    assert set(weights) == {f"{k}{s}" for k in ("loss_ce", "loss_bbox", "loss_giou") for s in ("", "_0", "_1")}
    crit = SetCriterion(C, HungarianMatcher(), weights)
    losses = crit(out, _random_targets([2, 1], C))
    assert set(losses) == set(weights)
    total = weighted_loss(losses, weights)
    total.backward()
    assert torch.isfinite(total) and out["pred_logits"].grad.abs().sum() > 0


def test_group_normaliser_keeps_the_loss_scale():
    # G identical copies of the queries: same loss per box as one group (num_boxes x G)
    C, Q, G = 3, 4, 3
    targets = _random_targets([2, 3], C)
    one = _random_outputs(2, Q, C)
    many = {k: v.repeat(1, G, 1) for k, v in one.items()}
    many["num_groups"] = G
    crit = SetCriterion(C, HungarianMatcher(), {"loss_ce": 2, "loss_bbox": 5, "loss_giou": 2})
    a, b = crit(one, targets), crit(many, targets)
    for k in a:
        assert_allclose(b[k].item(), a[k].item(), rtol=1e-5)
    empty = crit(one, _random_targets([0, 0], C))
    assert all(torch.isfinite(v) for v in empty.values()) and empty["loss_bbox"].item() == 0
