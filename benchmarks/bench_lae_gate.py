"""LAE regime gate: is the mini backbone in the paper's regime (strong frozen features that a
PET refines)? Measured on quantities the claims do not test, before looking at LAE − Seq.

For each pretraining variant (``--steps``): pretrain the mini ViT on the upstream ``classes``,
then on 3 class orders: ``joint_linear`` (one head on frozen features, all 40 downstream
classes), ``joint_adapter`` (adapter + one head, all classes) and the ``linear`` continual
probe (class-incremental and task-aware accuracy after the last task).

    python benchmarks/bench_lae_gate.py --data-dir results/data/classes/mini --steps 2500 \\
        --out benchmarks/results/lae_gate-2500.json [--set pretrain.lr=2e-3]

Run one variant per process (1 thread each) to use both cores.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--steps", type=int, required=True, help="pretraining steps of this variant")
    ap.add_argument("--orders", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lae_gate"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the lae block, e.g. pretrain.lr=2e-3 (value read as YAML)")
    args = ap.parse_args()

    import torch

    from paperzoo.engine.config import load_block
    from paperzoo.engine.io import write_json
    from paperzoo.engine.metrics import cpu_info
    from paperzoo.layers.pet import PETViT
    from paperzoo.studies.lae import steps
    from paperzoo.studies.lae.benchmark import load_benchmark
    from paperzoo.studies.lae.pretrain import load_backbone
    from paperzoo.studies.lae.runs import run_continual, run_joint

    torch.set_num_threads(1)
    block = load_block(REPO, "lae", "mini", args.set)
    block["pretrain"]["steps"] = args.steps
    work = args.workdir / (f"steps{args.steps}" + "".join(f"-{kv}" for kv in args.set))
    t0 = time.perf_counter()
    pre = steps.run_pretrain(block, scale="mini", data_dir=args.data_dir, out=work / "backbone.pt",
                             metrics_out=work / "pretrain.json", threads=1)
    t_pre = time.perf_counter() - t0
    vit = PETViT(load_backbone(work / "backbone.pt"))
    size = vit.vit.patch_embed.img_size[0]
    tr = steps.train_from_config(block)
    b = block["bench"]["classes"]
    rows = []
    for seed in range(args.orders):
        bench = load_benchmark("classes", args.data_dir, n_tasks=int(b["n_tasks"]),
                               classes_per_task=int(b["classes_per_task"]), seed=seed)
        common = {"seed": seed, "size": size, "batch_size": tr["batch_size"], "lr": tr["lr"]}
        jl, _ = run_joint(vit, bench, pet_kind=None, pet_cfg=block["pet"], epochs=tr["epochs"], **common)
        ja, _ = run_joint(vit, bench, pet_kind="adapter", pet_cfg=block["pet"], epochs=tr["epochs"], **common)
        lin, _ = run_continual(vit, bench, method="linear", pet_kind=None, pet_cfg=block["pet"], epochs=tr["epochs"],
                               freeze_epochs=tr["freeze_epochs"], ema_c=tr["ema_c"], **common)
        rows.append({"order": seed, "joint_linear": jl["acc_last"], "joint_adapter": ja["acc_last"],
                     "linear_acc_last": lin["acc_last"], "linear_ta_acc_last": lin["ta_acc_last"]})
        print(rows[-1], flush=True)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k != "order"}
    write_json(args.out, {"pretrain_steps": args.steps, "set": args.set, "pretrain": {k: pre[k] for k in (
        "upstream_train_acc", "upstream_test_acc", "epochs")}, "pretrain_wall_s": round(t_pre, 1),
        "orders": rows, "mean": mean, "host": cpu_info(), "wall_s": round(time.perf_counter() - t0, 1)})
    print(json.dumps(mean, indent=1))


if __name__ == "__main__":
    main()
