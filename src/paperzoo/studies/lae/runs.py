"""One continual-learning run per method (Seq-PET, LAE, linear probe, joint, Prefix calibration).

Each function takes the frozen backbone, a :class:`~.benchmark.Benchmark` and explicit
settings and returns ``(metrics, info)``; :mod:`.steps` writes them to ``metrics.json``.

* ``seq``   — Seq-PET: one PET tuned task after task, same loss as LAE (current-task CE),
              no frozen warm-up, no offline PET.
* ``lae``   — LAE (Alg. 1): Learning with the warm-up freeze, Accumulation by EMA from
              task 2, Ensemble by max-softmax. Online, offline and ensemble come from the
              same trajectory (the offline PET never feeds back into training), so one run
              gives all three experts; ablations: "accumulation off" = the online expert
              (``online_*``), "ensemble off" = the offline expert alone (``offline_*``).
* ``linear``— heads only (no PET), current-task CE: the linear-probe CL baseline.
* ``joint`` — PET + one head on all classes at once: the upper bound (not CL).
* ``calib`` — ``steps`` prefix-only steps (after a head-only warm-up, all classes at once) with
              and without the compensation (adaptation speed): mean training loss and accuracy.

Resume: ``state`` (a path) holds the PETs, heads and accuracy rows after every finished
task; a killed run continues from the next task (per-task granularity).
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

from paperzoo.engine.checkpoint import load_resume_state, save_checkpoint
from paperzoo.engine.metrics import params_digest
from paperzoo.layers.pet import PETViT, count_params, make_pet

from .benchmark import Benchmark, summarize, task_accuracies, task_aware_accuracy
from .learner import CILModel, PETAccumulator, TaskBatches, ema_decay, ensemble_probs, learn_task, predict_probs


def _seed(seed: int, *parts: int) -> None:
    torch.manual_seed(seed * 1_000_003 + sum((k + 1) * 7_919 * p for k, p in enumerate(parts)))


def _pet(backbone: PETViT, pet_kind: str | None, pet_cfg: dict, compensatory: bool | None = None):
    if pet_kind is None:
        return None
    kw = {"bottleneck": pet_cfg["adapter_bottleneck"], "rank": pet_cfg["lora_rank"],
          "length": pet_cfg["prefix_length"],
          "compensatory": pet_cfg["prefix_compensatory"] if compensatory is None else compensatory}
    return make_pet(pet_kind, backbone.embed_dim, pet_cfg["n_blocks"], **kw)


def run_continual(backbone: PETViT, bench: Benchmark, *, method: str, pet_kind: str | None, pet_cfg: dict,
                  seed: int, size: int, batch_size: int, lr: float, epochs: int, freeze_epochs: int,
                  ema_c: float, ema_decay_fixed: float | None = None, state: str | Path | None = None,
                  stop_after: int | None = None, fork_state: str | Path | None = None) -> tuple[dict, dict]:
    """Seq-PET / LAE / linear probe over all tasks; metrics per expert (see module docstring).

    ``stop_after``: return ``({}, {})`` once that many tasks are done (the state file is kept),
    as a run killed there would; tests use it to check the per-task resume.
    ``fork_state``: a Seq-PET run writes its state after task 1 there (task 1 is identical for
    Seq-PET and LAE: no freeze, no offline PET yet); a LAE run without a state of its own
    starts from it, so the two methods of one class order share task 1 exactly.
    """
    assert method in ("seq", "lae", "linear"), method
    _seed(seed)
    model = CILModel(backbone, None if method == "linear" else _pet(backbone, pet_kind, pet_cfg))
    experts = ["online"] + (["offline", "ensemble"] if method == "lae" else [])
    T = bench.n_tasks
    acc = {e: np.full((T, T), np.nan) for e in experts}
    stage = {e: np.full(T, np.nan) for e in experts}
    aware = {e: np.full(T, np.nan) for e in experts}     # task-aware accuracy (argmax inside the true head)
    offline: PETAccumulator | None = None
    done, decays, train_s = 0, [], 0.0
    if method == "lae" and fork_state is not None and (state is None or not Path(state).exists()):
        if not Path(fork_state).exists():
            raise FileNotFoundError(f"{fork_state}: the Seq-PET task-1 state to fork LAE from is missing")
        state_in = fork_state
    else:
        state_in = state
    # a state left by another configuration (the block changed between the kill and the rerun)
    # must not be resumed: the block's digest, seed, PET and method name it (a fork is Seq-PET's)
    fingerprint = {"params_sha256": params_digest(), "seed": seed, "pet": pet_kind}
    expected = {**fingerprint, "method": "seq" if state_in == fork_state else method}
    s = None if state_in is None else load_resume_state(state_in, expected, kind="resume state",
                                                        restart=f"{method} from task 1")
    if s is not None:
        done = int(s["done"])
        how = "forked from Seq-PET's state" if state_in == fork_state else "resuming from"
        print(f"lae: {method} {how} {state_in} after task {done}/{T}", file=sys.stderr, flush=True)
        for t in range(done):
            model.add_head(len(bench.tasks[t]))
        missing, unexpected = model.load_state_dict(s["model"], strict=False)
        if unexpected or any(not k.startswith("backbone.") for k in missing):
            raise RuntimeError(f"{state}: resume state does not match the run ({unexpected}, {missing})")
        if s["offline"] is not None:
            offline = PETAccumulator(model.pet, s["decay"])
            offline.load_state_dict(s["offline"])
        # a fork from Seq-PET has the online expert only: before task 2 the others equal it.
        # np.array copies: the experts' matrices must not alias one another.
        acc = {e: np.array(s["acc"].get(e, s["acc"]["online"]), dtype=float) for e in experts}
        stage = {e: np.array(s["stage"].get(e, s["stage"]["online"]), dtype=float) for e in experts}
        aware = {e: np.array(s["aware"].get(e, s["aware"]["online"]), dtype=float) for e in experts}
        decays, train_s = list(s["decays"]), float(s["train_s"])
    for t in range(done, T):
        t0 = time.perf_counter()
        _seed(seed, t + 1)
        head = model.add_head(len(bench.tasks[t]))
        data = bench.task_set("train", t)
        batches = TaskBatches(data, batch_size, seed * 1_000 + t, size)
        steps = epochs * batches.per_epoch
        freeze = freeze_epochs * batches.per_epoch if (method == "lae" and t > 0) else 0
        if method == "lae" and t == 1:             # offline PET = copy of the online one at the start of task 2
            d = ema_decay_fixed if ema_decay_fixed is not None else ema_decay(ema_c, steps)
            offline = PETAccumulator(model.pet, d)
        if offline is not None:
            decays.append(offline.decay)
        learn_task(model, batches, head=head, label_offset=bench.tasks[t][0], steps=steps, freeze_steps=freeze,
                   lr=lr, ema=offline, train_pet=method != "linear")
        train_s += time.perf_counter() - t0
        test = bench.seen_set("test", t)
        probs = {"online": predict_probs(model, test, model.pet, size)}
        if method == "lae":
            probs["offline"] = predict_probs(model, test, offline.module, size) if offline else probs["online"]
            probs["ensemble"] = ensemble_probs(probs["online"], probs["offline"])
        for e in experts:
            pred = probs[e].argmax(1)
            acc[e][t, :t + 1] = task_accuracies(pred, test.labels, bench.tasks[:t + 1])
            stage[e][t] = float((pred == test.labels).float().mean())
            aware[e][t] = task_aware_accuracy(probs[e], test.labels, bench.tasks[:t + 1])
        snapshot = {"done": t + 1, "model": _trainable_state(model), "_fingerprint": {**fingerprint, "method": method},
                    "offline": offline.state_dict() if offline else None,
                    "decay": offline.decay if offline else None,
                    "acc": {e: acc[e] for e in experts}, "stage": {e: stage[e] for e in experts},
                    "aware": {e: aware[e] for e in experts}, "decays": decays, "train_s": train_s}
        if state is not None:
            save_checkpoint(state, snapshot)
        if method == "seq" and fork_state is not None and t == 0:
            save_checkpoint(fork_state, snapshot)
        if stop_after is not None and t + 1 >= stop_after:
            return {}, {}
    if method == "seq" and fork_state is not None and not Path(fork_state).exists():
        raise FileNotFoundError(f"{fork_state}: missing although Seq-PET resumed past task 1; delete "
                                f"{state} to rerun the class order from the start")
    main = "ensemble" if method == "lae" else "online"
    metrics = summarize(acc[main], stage[main])
    metrics["ta_acc_last"] = float(aware[main][-1])
    if method == "lae":
        for e in ("online", "offline"):
            metrics.update(summarize(acc[e], stage[e], prefix=f"{e}_"))
            metrics[f"{e}_ta_acc_last"] = float(aware[e][-1])
        metrics.update(paired_gains(metrics))
    if model.pet is not None:
        metrics["pet_delta_rel"] = pet_update_magnitude(model.pet, backbone, pet_kind, pet_cfg, seed)
    info = {"pet_params": count_params(model.pet), "head_params": count_params(model.heads),
            "ema_decay": decays[0] if decays else None, "train_s": round(train_s, 3),
            "steps_per_task": [epochs * (len(bench.task_set("train", t)) // min(batch_size, len(
                bench.task_set("train", t)))) for t in range(T)]}
    return metrics, info


def paired_gains(m: dict) -> dict:
    """Within-run differences of the LAE experts (paired over seeds; claims compare them with 0)."""
    out = {"gain_ens_vs_online": m["acc_last"] - m["online_acc_last"],
           "gain_ens_vs_offline": m["acc_last"] - m["offline_acc_last"]}
    if "online_acc_old" in m:
        out["gain_offline_old"] = m["offline_acc_old"] - m["online_acc_old"]
        out["gain_online_new"] = m["online_acc_new"] - m["offline_acc_new"]
    return out


def pet_update_magnitude(pet, backbone: PETViT, pet_kind: str, pet_cfg: dict, seed: int) -> float:
    """‖θ − θ₀‖ / ‖θ₀‖ over all parameters of the online PET, θ₀ its init (rebuilt from the seed):
    how far the PET actually moved (an inert PET makes every claim about it vacuous)."""
    _seed(seed)
    init = _pet(backbone, pet_kind, pet_cfg)
    with torch.no_grad():
        num = sum(float((p - p0).pow(2).sum()) for p, p0 in zip(pet.parameters(), init.parameters()))
        den = sum(float(p0.pow(2).sum()) for p0 in init.parameters())
    return (num / den) ** 0.5 if den > 0 else float("nan")


def run_seq_lae(backbone: PETViT, bench: Benchmark, *, state_dir: str | Path | None = None,
                **kwargs) -> tuple[tuple[dict, dict], tuple[dict, dict]]:
    """Seq-PET and LAE of one PET and class order in one process, LAE forked from Seq-PET after
    task 1 (identical up to there). Returns ((seq metrics, info), (lae metrics, info)); the LAE
    metrics carry the paired gains over Seq-PET of the same order (``gain_lae_vs_seq`` and
    ``gain_freeze`` = online expert − Seq-PET, the part due to the freeze window alone).

    ``state_dir`` holds ``seq.pt``, ``fork.pt`` (Seq-PET after task 1) and ``lae.pt`` for resume.
    """
    d = Path(state_dir) if state_dir is not None else None
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
    path = (lambda name: d / name) if d is not None else (lambda name: None)  # noqa: E731
    tmp = None
    if d is None:                              # no resume wanted: the fork still needs a file
        import tempfile
        tmp = tempfile.TemporaryDirectory()
        fork = Path(tmp.name) / "fork.pt"
    else:
        fork = path("fork.pt")
    try:
        seq = run_continual(backbone, bench, method="seq", state=path("seq.pt"), fork_state=fork, **kwargs)
        lae = run_continual(backbone, bench, method="lae", state=path("lae.pt"), fork_state=fork, **kwargs)
    finally:
        if tmp is not None:
            tmp.cleanup()
    lae[0]["gain_lae_vs_seq"] = lae[0]["acc_last"] - seq[0]["acc_last"]
    lae[0]["gain_freeze"] = lae[0]["online_acc_last"] - seq[0]["acc_last"]
    lae[1]["forked_from_seq_after_task"] = 1
    return seq, lae


def _trainable_state(model: CILModel) -> dict:
    """The model's state without the frozen backbone (PET + heads: small checkpoints)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")}


def run_joint(backbone: PETViT, bench: Benchmark, *, pet_kind: str, pet_cfg: dict, seed: int, size: int,
              batch_size: int, lr: float, epochs: int) -> tuple[dict, dict]:
    """PET + one head on all tasks' classes at once (upper bound); ``acc_last`` on all test classes."""
    _seed(seed)
    model = CILModel(backbone, _pet(backbone, pet_kind, pet_cfg))
    head = model.add_head(sum(len(t) for t in bench.tasks))
    batches = TaskBatches(bench.train, batch_size, seed * 1_000 + 999, size)
    t0 = time.perf_counter()
    learn_task(model, batches, head=head, label_offset=0, steps=epochs * batches.per_epoch, lr=lr)
    pred = predict_probs(model, bench.test, model.pet, size).argmax(1)
    metrics = {"acc_last": float((pred == bench.test.labels).float().mean())}
    return metrics, {"pet_params": count_params(model.pet), "train_s": round(time.perf_counter() - t0, 3)}


def run_calibration(backbone: PETViT, bench: Benchmark, *, pet_cfg: dict, seed: int, size: int, batch_size: int,
                    lr: float, steps: int, warmup_steps: int = 0) -> tuple[dict, dict]:
    """Prefix with vs without compensation, from the same init and batches (paired): adaptation speed.

    Problem: all classes of the benchmark with one head (task 1 alone is nearly solved by
    its head). The head is first trained alone for ``warmup_steps`` (prefix frozen, as in
    LAE's freeze window), then **only the prefix** trains for ``steps`` steps, so the loss
    drop measures the PET's own speed. Metrics: ``loss_auc_{cal,nocal}`` (mean training CE
    over the prefix steps: lower = faster), ``loss_end_*`` (mean CE of their last quarter),
    ``acc_*`` (test accuracy after them) and ``loss_auc_gain`` = nocal − cal.
    """
    metrics, t0 = {}, time.perf_counter()
    _seed(seed)
    base = CILModel(backbone, _pet(backbone, "prefix", pet_cfg, compensatory=True))
    base.add_head(sum(len(t) for t in bench.tasks))
    batches = TaskBatches(bench.train, batch_size, seed * 1_000 + 998, size)
    learn_task(base, batches, head=base.heads[0], label_offset=0, steps=warmup_steps, train_pet=False, lr=lr)
    for name, comp in (("cal", True), ("nocal", False)):
        model = copy.deepcopy(base)                  # same prefix tokens and warmed-up head for both
        for p in model.pet:
            p.compensatory = comp
        shifted = lambda i, b=batches: b(i + warmup_steps)  # noqa: E731  (fresh batches after the warm-up)
        hist = learn_task(model, shifted, head=model.heads[0], label_offset=0, steps=steps, lr=lr,
                          train_head=False)
        losses = np.array([h["loss"] for h in hist])
        pred = predict_probs(model, bench.test, model.pet, size).argmax(1)
        metrics[f"loss_auc_{name}"] = float(losses.mean())
        metrics[f"loss_end_{name}"] = float(losses[-max(1, steps // 4):].mean())
        metrics[f"acc_{name}"] = float((pred == bench.test.labels).float().mean())
    metrics["loss_auc_gain"] = metrics["loss_auc_nocal"] - metrics["loss_auc_cal"]
    metrics["acc_gain"] = metrics["acc_cal"] - metrics["acc_nocal"]
    return metrics, {"train_s": round(time.perf_counter() - t0, 3), "steps": steps, "warmup_steps": warmup_steps}
