"""The machine's fp32 matrix-multiply peak: the physical limit the training loops are compared to.

    python benchmarks/bench_gemm.py [--sizes 256 512 1024 2048] [--threads 1 2] [--out FILE]

Times ``torch.mm`` of square fp32 matrices (2·n³ FLOPs each, the ``flop_counter`` convention)
at 1 and 2 threads, best of several repeats after a warm-up, and writes
``benchmarks/results/gemm-<host>-<simd>.json`` (``<simd>``: the kernels torch dispatches to on this
CPU, e.g. avx2 or avx512; machines of one kind differ, and all of ours are called ``vm``). The peak is the best GFLOP/s over the sizes: what a
dense, well-blocked GEMM reaches on this CPU; a training step that also runs small convolutions,
attention on 16 tokens, normalisations and Python can only get a fraction of it
(``bench_train_loop.py`` reports that fraction per study).

Run it on an idle machine: a second process on the other core lowers the 2-thread figure.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def gemm_gflops(n: int, threads: int, repeats: int = 5, min_s: float = 0.2) -> float:
    """Best GFLOP/s of ``torch.mm`` on two n × n fp32 matrices with ``threads`` threads."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        c = torch.empty(n, n)
        torch.mm(a, b, out=c)                       # warm-up (allocation, packing buffers)
        inner = 1
        while True:                                 # enough calls per timing to last min_s
            t = time.perf_counter()
            for _ in range(inner):
                torch.mm(a, b, out=c)
            dt = time.perf_counter() - t
            if dt >= min_s:
                break
            inner *= 2
        best = dt / inner
        for _ in range(repeats - 1):
            t = time.perf_counter()
            for _ in range(inner):
                torch.mm(a, b, out=c)
            best = min(best, (time.perf_counter() - t) / inner)
        return 2.0 * n ** 3 / best / 1e9
    finally:
        torch.set_num_threads(old)


def gemm_peak(threads: int, sizes=(256, 512, 1024, 2048)) -> dict:
    """``{"peak_gflops": best over sizes, "by_size": {n: GFLOP/s}}`` at ``threads`` threads."""
    by = {int(n): round(gemm_gflops(int(n), threads), 2) for n in sizes}
    return {"peak_gflops": max(by.values()), "by_size": by}


def cpu_name() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, help="write here instead of benchmarks/results/gemm-<host>-<simd>.json "
                                             "(a second machine with the same name and SIMD level)")
    args = ap.parse_args()
    import torch

    simd = torch.backends.cpu.get_cpu_capability().lower()
    out = {"host": platform.node(), "cpu": cpu_name(), "cpu_capability": simd, "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M"), "threads": {}}
    for t in args.threads:
        out["threads"][str(t)] = gemm_peak(t, args.sizes)
        print(f"{t} thread(s): peak {out['threads'][str(t)]['peak_gflops']:.1f} GFLOP/s "
              f"{out['threads'][str(t)]['by_size']}", flush=True)
    dest = args.out or REPO / "benchmarks" / "results" / f"gemm-{platform.node()}-{simd}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(dest)


if __name__ == "__main__":
    main()
