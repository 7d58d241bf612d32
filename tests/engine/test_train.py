"""The shared training loop: schedules, batch source, resume after a kill (bit-identical), EMA, callback."""
import pytest
import torch
from timm.utils import ModelEmaV3

from paperzoo.engine.checkpoint import load_checkpoint, partial_path
from paperzoo.engine.train import IndexBatches, load_trained, lr_lambda, make_optimizer, step_generator, train
from paperzoo.layers import create_model
from paperzoo.layers.criterion import SetCriterion, weighted_loss, with_aux_weights
from paperzoo.layers.matcher import HungarianMatcher

torch.set_num_threads(1)
N_IMAGES, STEPS = 12, 8


def _data():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(N_IMAGES, 3, 32, 32, generator=g)
    targets = [{"labels": torch.randint(0, 3, (2,), generator=g), "boxes": torch.rand(2, 4, generator=g) * 0.4 + 0.3}
               for _ in range(N_IMAGES)]
    return images, targets


class _Killed(Exception):
    pass


def _setup(kill_at=None):
    """A tiny DETR task; ``batches`` raises at step ``kill_at`` (a kill mid-run)."""
    torch.manual_seed(0)
    model = create_model("test_detr_lite", num_classes=3, num_groups=2, dropout=0.1)  # dropout: RNG state matters
    images, targets = _data()
    sampler = IndexBatches(N_IMAGES, 4, seed=3)
    weights = with_aux_weights({"loss_ce": 2, "loss_bbox": 5, "loss_giou": 2}, 2)
    crit = SetCriterion(3, HungarianMatcher(), weights)

    def batches(i):
        if i == kill_at:
            raise _Killed
        idx = sampler(i)
        flip = torch.rand(len(idx), generator=step_generator(3, i)) < 0.5  # seeded per step
        x = torch.where(flip[:, None, None, None], images[idx].flip(-1), images[idx])
        return x, [targets[j] for j in idx]

    def loss_fn(model, batch):
        x, t = batch
        losses = crit(model(x), t)
        return weighted_loss(losses, weights), losses

    return model, loss_fn, batches


def test_resume_after_kill_is_bit_identical(tmp_path):
    ref_model, loss_fn, batches = _setup()
    ref_hist = train(ref_model, loss_fn, batches, steps=STEPS, final=tmp_path / "ref.pt", warmup=2, progress=False)

    final = tmp_path / "run.pt"
    model, loss_fn, batches = _setup(kill_at=5)
    with pytest.raises(_Killed):
        train(model, loss_fn, batches, steps=STEPS, final=final, warmup=2, checkpoint_every_s=0, progress=False)
    assert not final.exists() and load_checkpoint(partial_path(final))["_step"] == 5

    model, loss_fn, batches = _setup()  # a fresh process: new model, resumes from the partial file
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # whatever the fresh weights are, the checkpoint replaces them
    hist = train(model, loss_fn, batches, steps=STEPS, final=final, warmup=2, progress=False)
    assert hist == ref_hist and len(hist) == STEPS
    for (k, a), b in zip(ref_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    assert not partial_path(final).exists()
    fresh = create_model("test_detr_lite", num_classes=3, num_groups=2)
    assert load_trained(fresh, final) == ref_hist
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_partial_of_another_config_or_damaged_restarts_from_scratch(tmp_path, capsys):
    """A partial checkpoint left by a killed run with a DIFFERENT configuration (here another
    lr, and another config digest) is not resumed: it is deleted, the run starts at step 0 and
    ends bit-identical to an uninterrupted run of the new configuration. A truncated partial
    file is treated the same way (no crash loop, no silent mix)."""
    from paperzoo.engine import metrics

    ref_model, loss_fn, batches = _setup()
    ref_hist = train(ref_model, loss_fn, batches, steps=STEPS, final=tmp_path / "ref.pt", warmup=2, lr=1e-3,
                     progress=False)
    final = tmp_path / "run.pt"
    metrics.set_params_digest({"lr": 5e-4})
    model, loss_fn, batches = _setup(kill_at=5)
    with pytest.raises(_Killed):
        train(model, loss_fn, batches, steps=STEPS, final=final, warmup=2, lr=5e-4, checkpoint_every_s=0,
              progress=False)
    assert load_checkpoint(partial_path(final))["_fingerprint"]["lr"] == 5e-4
    metrics.set_params_digest({"lr": 1e-3})
    model, loss_fn, batches = _setup()
    hist = train(model, loss_fn, batches, steps=STEPS, final=final, warmup=2, lr=1e-3, progress=False)
    err = capsys.readouterr().err
    assert "partial checkpoint of a different run" in err and "lr" in err and "params_sha256" in err
    assert hist == ref_hist
    # damaged: a truncated partial file
    final2 = tmp_path / "run2.pt"
    model, loss_fn, batches = _setup(kill_at=5)
    with pytest.raises(_Killed):
        train(model, loss_fn, batches, steps=STEPS, final=final2, warmup=2, lr=1e-3, checkpoint_every_s=0,
              progress=False)
    p = partial_path(final2)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    model, loss_fn, batches = _setup()
    assert train(model, loss_fn, batches, steps=STEPS, final=final2, warmup=2, lr=1e-3, progress=False) == ref_hist
    assert "unreadable partial checkpoint" in capsys.readouterr().err and not p.exists()


def test_sigterm_checkpoints_exits_143_and_the_rerun_resumes_bit_identical(tmp_path, capsys):
    """Preemption as clusters do it: SIGTERM during step 3 → the loop finishes that step, saves
    the partial checkpoint at step 4, exits with 143; the rerun resumes and ends identical to an
    uninterrupted run. The SIGTERM handler is restored afterwards."""
    import os
    import signal

    ref_model, loss_fn, batches = _setup()
    ref_hist = train(ref_model, loss_fn, batches, steps=STEPS, final=tmp_path / "ref.pt", warmup=2, progress=False)
    model, loss_fn, plain = _setup()

    def batches_term(i):
        if i == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return plain(i)

    before = signal.getsignal(signal.SIGTERM)
    final = tmp_path / "run.pt"
    with pytest.raises(SystemExit) as exc:
        train(model, loss_fn, batches_term, steps=STEPS, final=final, warmup=2, progress=False)
    assert exc.value.code == 143 and signal.getsignal(signal.SIGTERM) is before
    assert load_checkpoint(partial_path(final))["_step"] == 4 and not final.exists()
    assert "SIGTERM: saved" in capsys.readouterr().err
    model, loss_fn, batches = _setup()
    assert train(model, loss_fn, batches, steps=STEPS, final=final, warmup=2, progress=False) == ref_hist
    assert not partial_path(final).exists()


def test_history_callback_and_ema(tmp_path):
    model, loss_fn, batches = _setup()
    ema = ModelEmaV3(model, decay=0.5)
    calls = []

    def callback(step, m):
        assert not m.training
        calls.append(step)
        return {"val_metric": float(step)}

    hist = train(model, loss_fn, batches, steps=5, final=tmp_path / "m.pt", ema=ema, callback=callback,
                 eval_every=2, progress=False)
    assert calls == [2, 4, 5] and model.training
    assert [h["step"] for h in hist] == [1, 2, 3, 4, 5] and hist[1]["val_metric"] == 2.0
    assert {"lr", "loss", "grad_norm", "loss_ce", "loss_bbox_0"} <= set(hist[0])
    assert not torch.equal(ema.module.class_head.weight, model.class_head.weight)
    averaged = create_model("test_detr_lite", num_classes=3, num_groups=2)
    load_trained(averaged, tmp_path / "m.pt", use_ema=True)
    assert torch.equal(averaged.class_head.weight, ema.module.class_head.weight)


def test_in_memory_training_reduces_the_loss():
    model, loss_fn, batches = _setup()
    hist = train(model, loss_fn, batches, steps=30, lr=1e-3, progress=False)
    first, last = sum(h["loss"] for h in hist[:5]), sum(h["loss"] for h in hist[-5:])
    assert last < first


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_other_optimizers_train(name):
    model, loss_fn, batches = _setup()
    hist = train(model, loss_fn, batches, steps=30, lr=1e-3 if name == "adam" else 1e-2, optimizer=name,
                 nesterov=name == "sgd", progress=False)
    assert sum(h["loss"] for h in hist[-5:]) < sum(h["loss"] for h in hist[:5])


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_multi_tensor_step_gives_the_per_tensor_loops_numbers(name):
    """``make_optimizer`` and the clipping use torch's ``foreach`` kernels on the CPU too, for speed
    only: 12 steps of the engine (warmup, clipping) end on the same weights, bit for bit, as a hand
    loop with the per-tensor implementations (``foreach=False``) and the same schedule."""
    lr, steps, clip = (1e-3 if name != "sgd" else 1e-2), 12, 0.1
    model, loss_fn, batches = _setup()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, loss_fn, batches, steps=steps, lr=lr, optimizer=name, warmup=3, clip_grad=clip,
          weight_decay=1e-2, progress=False)
    engine = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(g.get("foreach") is True for g in make_optimizer(name, [torch.nn.Parameter(torch.zeros(1))],
                                                                 lr=lr).param_groups)

    model.load_state_dict(start)
    torch.manual_seed(0)                                   # dropout draws as in the engine's run
    _, loss_fn, batches = _setup()
    params = [p for p in model.parameters() if p.requires_grad]
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
    extra = {"momentum": 0.9} if name == "sgd" else {}
    opt = cls(params, lr=lr, weight_decay=1e-2, foreach=False, **extra)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps, "step", 3, 0.85, 0.1))
    model.train()
    for i in range(steps):
        loss, _ = loss_fn(model, batches(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip, foreach=False)
        opt.step()
        sched.step()
    loop = model.state_dict()
    changed = [k for k in engine if not torch.equal(engine[k], start[k])]
    assert changed, "the weights did not move: the comparison could not fail"
    assert [k for k in engine if not torch.equal(engine[k], loop[k])] == []


def test_device_moves_model_and_nested_batches():
    from paperzoo.engine.train import to_device

    model, loss_fn, batches = _setup()
    hist = train(model, loss_fn, batches, steps=2, device="cpu", progress=False)
    assert len(hist) == 2
    moved = to_device({"a": [torch.zeros(1), (torch.ones(1), 3)], "b": "x"}, "cpu")
    assert isinstance(moved["a"][1], tuple) and moved["a"][1][1] == 3 and moved["b"] == "x"


def test_make_optimizer_names_the_choices():
    p = [torch.nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer("sgd", p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] is True
    assert type(make_optimizer("adam", p, lr=0.1)) is torch.optim.Adam
    with pytest.raises(ValueError, match="expected one of"):
        make_optimizer("lion", p, lr=0.1)


def test_lr_schedules():
    f = lr_lambda(100, "step", warmup=10, drop_at=0.8)
    assert [f(0), f(9), f(50), f(79), f(80)] == pytest.approx([0.1, 1.0, 1.0, 1.0, 0.1])
    m = lr_lambda(100, "step", warmup=0, drop_at=[0.5, 0.25])
    assert [m(24), m(25), m(49), m(50)] == pytest.approx([1.0, 0.1, 0.1, 0.01])
    c = lr_lambda(100, "cosine", warmup=0)
    assert c(0) == pytest.approx(1.0) and c(50) == pytest.approx(0.5) and c(100) == pytest.approx(0.0)


def test_index_batches_cover_each_epoch_and_depend_on_the_step_only():
    s = IndexBatches(10, 3, seed=1)
    epoch0 = torch.cat([s(i) for i in range(3)])
    assert len(set(epoch0.tolist())) == 9
    later = s(7)
    assert torch.equal(IndexBatches(10, 3, seed=1)(7), later)  # no hidden state: a resumed run gets the same batch
    assert not torch.equal(torch.cat([s(i) for i in range(3, 6)]), epoch0)
