"""LAE PET training step: images/s through ``engine.train`` (learn_task) vs a bare torch loop.

    python benchmarks/bench_lae.py [--threads 1] [--steps 200] [--pet adapter]

Same frozen ``vit_mini_p8`` (mini config: d 128, depth 4, 32 px, patch 8), same PET on the
first 2 blocks, same batches (24 images, one 4-class head, Adam 1e-3, current-task CE).
Writes ``benchmarks/results/lae.json``. Numbers depend on machine load.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from paperzoo.data.sets import ClassificationSet  # noqa: E402
from paperzoo.layers.pet import PETViT, make_pet  # noqa: E402
from paperzoo.layers.vit import vit_mini_p8  # noqa: E402
from paperzoo.studies.lae.learner import CILModel, TaskBatches, learn_task  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def setup(pet: str, n: int = 480):
    torch.manual_seed(0)
    vit = PETViT(vit_mini_p8(embed_dim=128, depth=4, num_heads=4))
    model = CILModel(vit, make_pet(pet, 128, 2))
    head = model.add_head(4)
    ds = ClassificationSet(torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8), torch.arange(n) % 4,
                           list("abcd"))
    return model, head, TaskBatches(ds, 24, 0, 32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--pet", default="adapter")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"threads": args.threads, "steps": args.steps, "pet": args.pet, "batch": 24}
    model, head, batches = setup(args.pet)
    learn_task(model, batches, head=head, label_offset=0, steps=10)          # warm-up
    t = time.perf_counter()
    learn_task(model, batches, head=head, label_offset=0, steps=args.steps)
    out["engine_img_s"] = 24 * args.steps / (time.perf_counter() - t)
    model, head, batches = setup(args.pet)
    opt = torch.optim.Adam(list(head.parameters()) + list(model.pet.parameters()), lr=1e-3)
    model.train()
    for phase, steps in (("warm", 10), ("timed", args.steps)):
        t = time.perf_counter()
        for i in range(steps):
            x, y, _ = batches(i)
            loss = F.cross_entropy(head(model.backbone(x, model.pet)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    out["bare_img_s"] = 24 * args.steps / (time.perf_counter() - t)
    out["engine_over_bare"] = out["engine_img_s"] / out["bare_img_s"]
    print(json.dumps(out, indent=1))
    dest = REPO / "benchmarks" / "results" / "lae.json"
    if dest.parent.exists():
        dest.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
