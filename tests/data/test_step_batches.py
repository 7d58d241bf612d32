"""``data.sets.StepBatches``: step-indexed detection batches (every detection study's iterator)."""
import torch

from paperzoo.data.sets import StepBatches, hflip_target, to_float
from paperzoo.data.shapes import load_shapes

BATCH = 16          # 40 tiny train images → 2 batches per epoch: steps 0..6 cross three epoch boundaries
STEPS = range(7)


def _setup(shapes_dir):
    train = load_shapes(shapes_dir, "train")
    x = train.images.float().div(255)
    return train, x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()


def _assert_same(a, b):
    (xa, ta, ia), (xb, tb, ib) = a, b
    assert ia == ib and xa.dtype == xb.dtype == torch.float32
    assert torch.equal(xa, xb)
    assert len(ta) == len(tb)
    for u, v in zip(ta, tb):
        assert set(u) == set(v) == {"labels", "boxes"}
        assert torch.equal(u["labels"], v["labels"]) and torch.equal(u["boxes"], v["boxes"])


def test_batch_is_the_seeded_epoch_order_with_seeded_flips(shapes_dir):
    """The spec, written out: step i's indices come from IndexBatches(seed), image k is
    mirrored (with its boxes) iff U_k < 0.5, U from step_generator(seed, i). (kd_detr's former
    ShapesBatches was checked bit-identical to StepBatches before it was replaced by it.)"""
    from paperzoo.engine.train import IndexBatches, step_generator

    train, mean, std = _setup(shapes_dir)
    ours, order = StepBatches(train, BATCH, 3, mean, std), IndexBatches(len(train), BATCH, 3)
    for i in STEPS:
        idx = order(i)
        flip = torch.rand(len(idx), generator=step_generator(3, i)) < 0.5
        imgs = train.images[idx]
        want = to_float(torch.where(flip.view(-1, 1, 1, 1), imgs.flip(-1), imgs), mean, std)
        boxes = [hflip_target(train.targets[j])["boxes"] if f else train.targets[j]["boxes"]
                 for f, j in zip(flip.tolist(), idx.tolist())]
        x, t, k = ours(i)
        assert k == i and torch.equal(x, want)
        assert all(torch.equal(u["boxes"], b) for u, b in zip(t, boxes))
    x, t, i = ours(0)
    assert x.shape == (BATCH, 3, 64, 64) and i == 0 and len(t) == BATCH


def test_step_depends_on_seed_and_step_only(shapes_dir):
    train, mean, std = _setup(shapes_dir)
    in_order = [StepBatches(train, BATCH, 5, mean, std)(i) for i in STEPS]
    shuffled = StepBatches(train, BATCH, 5, mean, std)
    for i in (6, 0, 3, 2, 5, 1, 4, 0):
        torch.manual_seed(1000 + i)                      # the global RNG plays no part
        _assert_same(shuffled(i), in_order[i])
    other = StepBatches(train, BATCH, 6, mean, std)(0)
    assert not torch.equal(other[0], in_order[0][0])     # another seed, another batch


def test_hflip_false_disables_flipping(shapes_dir):
    train, mean, std = _setup(shapes_dir)
    plain, flipped = StepBatches(train, BATCH, 3, mean, std, hflip=False), StepBatches(train, BATCH, 3, mean, std)
    n_flipped = 0
    for i in STEPS:
        idx = plain.sampler(i).tolist()
        x, t, _ = plain(i)
        assert torch.equal(x, to_float(train.images[idx], mean, std))
        for u, j in zip(t, idx):
            assert torch.equal(u["boxes"], train.targets[j]["boxes"])
        # the flipping iterator uses the same order, each image either as is or mirrored (boxes too)
        xf, tf, _ = flipped(i)
        for k, j in enumerate(idx):
            mirrored = torch.equal(xf[k], x[k].flip(-1)) and not torch.equal(xf[k], x[k])
            n_flipped += mirrored
            want = hflip_target(train.targets[j]) if mirrored else train.targets[j]
            assert torch.equal(tf[k]["boxes"], want["boxes"])
    assert 0.3 < n_flipped / (BATCH * len(STEPS)) < 0.7
