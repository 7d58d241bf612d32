"""CPGNet's point↔grid operations and training step on the CPU.

    python benchmarks/bench_point_grid.py scatter [--threads 1]
    python benchmarks/bench_point_grid.py step    [--threads 1] [--steps 30]
    python benchmarks/bench_point_grid.py sizes

``scatter`` times forward + backward of every way to pool point features into a grid, at
the mini size (16 channels, 6,000 points, 128×128 BEV) and the paper size (64 channels,
60,000 points, 600×600 BEV), plus the bilinear gather back (``grid_sample``):

* ``scatter_reduce`` amax — ``layers.point_grid.scatter_max``, what the model uses (the paper's max pool);
* ``index_reduce`` amax — same result and gradient, beta API;
* sort + ``segment_reduce`` max — same forward; its backward gives the FULL gradient to every
  tied maximum (``scatter_reduce`` splits it), and ties are common after a ReLU (exact zeros),
  so it is not a drop-in replacement: measured here, not used;
* ``index_add_`` mean — ``scatter_mean``, a different pooling (the ``reduce: mean`` option).

``step`` times the mini two-stage net's training step (6,000 points, batch 1, CE-OHEM +
Lovász) through ``engine.train`` against a bare loop on the same batches, with and without
TCL. ``sizes`` counts the parameters of every arm as configured at ``mini`` and at ``paper``
(the official widths). Results go to ``benchmarks/results/point_grid.json`` with the load average: take them
on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from paperzoo.engine.io import read_json, write_json  # noqa: E402
from paperzoo.layers.point_grid import _flatten_valid, gather_bilinear, scatter_max, scatter_mean  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "point_grid.json"
SIZES = {"mini": (16, 6000, 128), "paper": (64, 60000, 600)}   # (channels, points, BEV cells per side)


def scatter_max_index_reduce(feat, idx, shape):
    B, C, _ = feat.shape
    f, i = _flatten_valid(feat, idx)
    out = feat.new_zeros(B * shape[0] * shape[1], C).index_reduce(0, i, f, "amax", include_self=False)
    return out.view(B, shape[0], shape[1], C).permute(0, 3, 1, 2)


def scatter_max_sorted(feat, idx, shape):
    B, C, _ = feat.shape
    f, i = _flatten_valid(feat, idx)
    i_sorted, order = torch.sort(i)
    cells, counts = torch.unique_consecutive(i_sorted, return_counts=True)
    seg = torch.segment_reduce(f[order], "max", lengths=counts, axis=0)
    out = feat.new_zeros(B * shape[0] * shape[1], C).index_copy(0, cells, seg)
    return out.view(B, shape[0], shape[1], C).permute(0, 3, 1, 2)


VARIANTS = {"scatter_reduce_amax": scatter_max, "index_reduce_amax": scatter_max_index_reduce,
            "sort_segment_reduce_max": scatter_max_sorted, "index_add_mean": scatter_mean}


def _time(fn, min_s: float = 1.5) -> float:
    fn()                                                                         # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s:
        fn()
        n += 1
    return 1e3 * (time.perf_counter() - t0) / n


def bench_scatter() -> dict:
    out = {}
    for size, (C, N, H) in SIZES.items():
        g = torch.Generator().manual_seed(0)
        # street-like occupancy: the points fall into ~1/4 of the cells, many share one
        feat = torch.relu(torch.randn(1, C, N, generator=g)).requires_grad_(True)   # ReLU: exact-zero ties
        idx = torch.randint(0, H * H // 4, (1, N), generator=g)
        ref = scatter_max(feat, idx, (H, H))
        res = {}
        for name, fn in VARIANTS.items():
            y = fn(feat, idx, (H, H))
            if "max" in name and not torch.equal(y, ref):
                raise AssertionError(f"{name}: forward differs from scatter_reduce amax")
            w = torch.randn(y.shape, generator=g)

            def run(fn=fn, w=w):
                feat.grad = None
                (fn(feat, idx, (H, H)) * w).sum().backward()

            res[name] = {"fwd_bwd_ms": round(_time(run), 3)}
            if "max" in name:
                feat.grad = None
                (scatter_max(feat, idx, (H, H)) * w).sum().backward()
                g_ref = feat.grad.clone()
                feat.grad = None
                (fn(feat, idx, (H, H)) * w).sum().backward()
                res[name]["grad_equal_to_scatter_reduce"] = bool(torch.allclose(feat.grad, g_ref))
        grid = torch.randn(1, 2 * C if size == "mini" else C, H // 2, H // 2, requires_grad=True)
        coords = torch.rand(1, N, 2, generator=g) * (H // 2 - 1)

        def gather():
            grid.grad = None
            gather_bilinear(grid, coords).sum().backward()

        res["gather_bilinear"] = {"fwd_bwd_ms": round(_time(gather), 3), "grid": list(grid.shape)}
        base = res["scatter_reduce_amax"]["fwd_bwd_ms"]
        for r in res.values():
            r["vs_scatter_reduce"] = round(r["fwd_bwd_ms"] / base, 3)
        out[size] = {"channels": C, "points": N, "bev": [H, H], **res}
        print(size, {k: v["fwd_bwd_ms"] for k, v in res.items()})
    return out


def bench_step(steps: int) -> dict:
    from paperzoo.data.synthscan import synthscan_from_config, write_synthscan, load_synthscan
    from paperzoo.engine.config import resolve
    from paperzoo.engine.io import read_yaml
    from paperzoo.engine.train import train
    from paperzoo.studies.cpgnet.augment import ScanBatches, make_loss_fn
    from paperzoo.studies.cpgnet.model import cpgnet_from_config
    import tempfile

    cfg = resolve({**read_yaml(REPO / "config" / "config.yaml"), "scale": "mini"}, REPO)
    block, tr = cfg["cpgnet"], cfg["cpgnet"]["train"]
    spec = synthscan_from_config(cfg["data"]["synthscan"])
    spec["splits"] = {"train": 8, "val": 1}
    out = {}
    with tempfile.TemporaryDirectory() as d:
        write_synthscan(d, **spec)
        scans = load_synthscan(d, "train")
        for arm in ("fuse2", "fuse2_tcl"):
            tcl = block["arms"][arm]["tcl"]
            batches = ScanBatches(scans, 1, tr["n_points"], seed=0, tcl=tcl)
            loss_fn = make_loss_fn(tr["lovasz_weight"], tr["tcl_weight"])
            torch.manual_seed(0)
            model = cpgnet_from_config(block, arm)
            t0 = time.perf_counter()
            train(model, loss_fn, batches, steps=steps, lr=tr["lr"], clip_grad=tr["clip_grad"], progress=False)
            engine_ms = 1e3 * (time.perf_counter() - t0) / steps
            torch.manual_seed(0)
            model = cpgnet_from_config(block, arm)
            opt = torch.optim.AdamW(model.parameters(), lr=tr["lr"], weight_decay=tr["weight_decay"])
            t0 = time.perf_counter()
            for i in range(steps):
                loss, _ = loss_fn(model, batches(i))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), tr["clip_grad"])
                opt.step()
            bare_ms = 1e3 * (time.perf_counter() - t0) / steps
            out[arm] = {"engine_ms_per_step": round(engine_ms, 2), "bare_ms_per_step": round(bare_ms, 2),
                        "engine_overhead": round(engine_ms / bare_ms - 1, 4), "points_per_step": tr["n_points"],
                        "n_params": sum(p.numel() for p in model.parameters())}
            print(arm, out[arm])
    return out


def bench_sizes() -> dict:
    from paperzoo.engine.config import resolve
    from paperzoo.engine.io import read_yaml
    from paperzoo.studies.cpgnet.model import cpgnet_from_config

    out = {}
    for scale in ("mini", "paper"):
        block = resolve({**read_yaml(REPO / "config" / "config.yaml"), "scale": scale}, REPO)["cpgnet"]
        out[scale] = {arm: sum(p.numel() for p in cpgnet_from_config(block, arm).parameters()) for arm in block["arms"]}
        print(scale, out[scale])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=("scatter", "step", "sizes"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {"scatter": bench_scatter, "step": lambda: bench_step(args.steps), "sizes": bench_sizes}[args.part]()
    doc = read_json(OUT) if OUT.exists() else {}
    doc[args.part] = {"results": res, "threads": args.threads, "torch": torch.__version__,
                      "host": platform.node(), "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
                      "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(OUT, doc)


if __name__ == "__main__":
    main()
