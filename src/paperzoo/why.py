"""Where a verdict comes from: claim → aggregated metric → run files → commit, config, seed.

    python -m paperzoo.why <study> <claim-id> [--scale mini] [--root .]

Prints the claim (statement, kind, test, verdict, the difference and its interval), then for
each side (``arm.metric``) the value of every seed and the run file it came from, with that
run's git commit (and whether the checkout was modified), the SHA-256 of the config block it
ran with, the CPU it ran on and its wall time. Runs written before provenance was recorded
show ``-`` for the missing fields.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from paperzoo.engine.io import read_json


def run_files(root: Path, study: str, scale: str) -> dict[tuple[str, int], Path]:
    """(arm, seed) → the run's metrics.json under ``results/<study>/<scale>/`` (any depth below
    the aggregate: ``runs/<arm>/seed<k>/`` and stage folders such as ``mim/``)."""
    base = root / "results" / study / scale
    out = {}
    for p in sorted(base.rglob("metrics.json")):
        if p.parent == base:
            continue                                   # the aggregate itself
        try:
            run = read_json(p)
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(run, dict) and {"arm", "seed", "metrics"} <= set(run):
            out[(str(run["arm"]), int(run["seed"]))] = p
    return out


def explain(root: Path, study: str, claim_id: str, scale: str = "mini") -> str:
    claims_path = root / "results" / study / scale / "claims.json"
    if not claims_path.exists():
        raise SystemExit(f"{claims_path}: no claims (run `snakemake {study}` at scale {scale} first)")
    claims = read_json(claims_path)["claims"]
    by_id = {c["id"]: c for c in claims}
    if claim_id not in by_id:
        raise SystemExit(f"{study}: no claim {claim_id!r}; claims: {', '.join(sorted(by_id))}")
    c = by_id[claim_id]
    ours = c.get("ours") or {}
    lines = [f"{study} / {claim_id} ({c.get('kind')}, scale {scale}): {c.get('statement')}",
             f"  test {c.get('test')}: {json.dumps({k: ours.get(k) for k in ('diff', 'half_width_95', 'tol') if k in ours})}"
             f" -> {c.get('verdict')}",
             f"  claims file: {claims_path}"]
    runs = run_files(root, study, scale)
    for side in ("lhs", "rhs"):
        s = ours.get(side) or {}
        ref = s.get("ref")
        if ref is None:
            lines.append(f"  {side}: the constant {s.get('mean')}")
            continue
        arm, metric = ref.split(".", 1)
        lines.append(f"  {side}: {ref} = {s.get('mean')} ± {s.get('std')} (n={s.get('n')}), from "
                     f"results/{study}/{scale}/metrics.json")
        for seed, value in sorted((s.get("by_seed") or {}).items(), key=lambda kv: int(kv[0])):
            p = runs.get((arm, int(seed)))
            if p is None:
                lines.append(f"    seed {seed}: {value}  (run file not found on this machine)")
                continue
            meta = read_json(p).get("meta") or {}
            dirty = {True: " (modified tree)", False: "", None: ""}.get(meta.get("git_dirty"), "")
            lines.append(f"    seed {seed}: {value}  {p}\n"
                         f"      commit {meta.get('git_commit', '-')}{dirty}, config sha256 "
                         f"{str(meta.get('params_sha256', '-'))[:16]}, data manifest sha256 "
                         f"{str(meta.get('data_manifest_sha256', '-'))[:16]}, cpu {meta.get('cpu_model', '-')}, "
                         f"wall {meta.get('wall_s', '-')} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study")
    ap.add_argument("claim")
    ap.add_argument("--scale", default="mini")
    ap.add_argument("--root", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    print(explain(args.root, args.study, args.claim, args.scale))


if __name__ == "__main__":
    main()
