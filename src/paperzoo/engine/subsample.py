"""What the seeds buy: every claim's verdict recomputed on subsets of a study's seeds.

    paperzoo seeds --scale mini [--study S ...] [--max-subsets 200]
                                        [--out results/report/mini]

Seeds of a study are exchangeable draws (class orders, inits, data orders), so the runs of any
``k`` of a study's ``n`` seeds are a ``k``-seed experiment that was actually run. For every
``k`` from 3 to ``n`` this module takes every ``k``-subset of the seeds (or ``--max-subsets`` of
them, drawn with a fixed seed, where there are more), restricts the aggregated metrics to it,
recomputes the claims with the claims engine (``engine.claims.evaluate``, the study's own
``paper.yaml``) and counts the verdicts. Per claim it reports the share of subsets that give
each verdict; per ``k``, the expected number of decided claims (reproduced, negligible or contradicted) and
of claims whose verdict equals the one at ``n``. ``k = n - 1`` (leave one seed out) shows how
narrowly a verdict at ``n`` was decided.

Claims. A claim's ``min_seeds`` is capped at ``k``: a claim that asks for the runs of all 5
seeds of a 5-seed study would ask for 3 in a 3-seed design; otherwise every subset would be
"inconclusive" for want of runs, which says nothing about the effect.

Arms. An arm run with the study's full seed count (the largest ``by_seed`` of any of its
metrics) is restricted to the subset; an arm with fewer seeds (e.g. LAE's upper bounds on 3
class orders) and deterministic metrics are kept whole, so only the seed count under question
changes. The seed ids are those of the full arms.

Cost. With the per-job ledger (``cost_jobs.csv``, ``engine.ledger``), the table states what the
seeds with ids ``>= k`` cost: the sum of the job minutes of every job named ``..._seed<id>``.
That is what running ``k`` seeds instead of ``n`` saves, one-off jobs (pretraining, teachers,
figures) staying.

Caveat for anyone choosing a seed count from this table: it is computed from the results
themselves, so a count chosen to keep a particular verdict is chosen on the tested effect.
It states what the seeds bought in these runs; it is not a power analysis done in advance.
Output: ``seeds.md`` and ``seeds.json`` in ``--out``.
"""
from __future__ import annotations

import argparse
import itertools
import math
import random
import re
from collections import Counter
from pathlib import Path
from typing import Mapping

from .claims import DECIDED, NOT_RUN, STATUSES, evaluate, load_paper, with_min_seeds
from .ledger import read_ledger
from .io import atomic_path, read_json, write_json
from .metrics import restrict, seed_ids  # noqa: F401  (seed_ids, restrict: re-exported for users of this module)

SHARED = tuple(v for v in STATUSES if v != NOT_RUN)  # the final verdicts a subset can give
SEED_JOB = re.compile(r"seed(\d+)$")


def subsets(ids: list[str], k: int, max_subsets: int, seed: int = 0) -> list[tuple[str, ...]]:
    """Every ``k``-subset of ``ids`` in lexicographic order, or ``max_subsets`` distinct ones drawn
    with ``random.Random(seed)`` where there are more."""
    total = math.comb(len(ids), k)
    if total <= max_subsets:
        return list(itertools.combinations(ids, k))
    rng, picked = random.Random(seed), set()
    while len(picked) < max_subsets:
        picked.add(tuple(sorted(rng.sample(ids, k), key=int)))
    return sorted(picked, key=lambda t: [int(s) for s in t])


def study_table(paper: Mapping, metrics: Mapping, scale: str, *, k_min: int = 3, max_subsets: int = 200) -> dict:
    """Verdict shares per claim and ``k``; see the module docstring."""
    ids, n_max = seed_ids(metrics)
    full = {c["id"]: c for c in evaluate(paper, metrics, scale, stability=False)["claims"]}
    claims = {cid: {"kind": c["kind"], "verdict": c["verdict"], "shares": {}}
              for cid, c in full.items() if c["verdict"] != NOT_RUN}
    per_k = {}
    for k in range(min(k_min, n_max), n_max + 1):
        subs = subsets(ids, k, max_subsets)
        tally = {cid: Counter() for cid in claims}
        paper_k = with_min_seeds(paper, k)
        for sub in subs:
            res = evaluate(paper_k, restrict(metrics, set(sub), n_max), scale, stability=False)["claims"]
            for c in res:
                if c["id"] in tally:
                    tally[c["id"]][c["verdict"]] += 1
        for cid, t in tally.items():
            claims[cid]["shares"][k] = {v: t[v] / len(subs) for v in SHARED}
        decided = sum(s["shares"][k][v] for s in claims.values() for v in DECIDED)
        same = sum(s["shares"][k][s["verdict"]] for s in claims.values())
        per_k[k] = {"subsets": len(subs), "of": math.comb(len(ids), k), "expected_decided": decided,
                    "expected_same_as_full": same}
    return {"study": metrics.get("study"), "scale": scale, "n_seeds": n_max, "seed_ids": ids,
            "claims": claims, "per_k": per_k}


def seed_cost(ledger: Path, study: str) -> dict[int, float]:
    """Job minutes per seed id of ``study`` in the ledger (``engine.ledger.read_ledger``; jobs named
    ``..._seed<id>``; none if the file does not exist)."""
    out: dict[int, float] = {}
    for r in read_ledger(ledger):
        m = SEED_JOB.search(r["job"])
        if r["study"] == study and m:
            out[int(m.group(1))] = out.get(int(m.group(1)), 0.0) + r["s"] / 60
    return out


def _share_cell(sh: Mapping[str, float]) -> str:
    parts = [f"{v[0].upper()} {sh[v]:.2f}" for v in SHARED if sh.get(v, 0) > 0]
    return " / ".join(parts)


def markdown(tables: list[dict], costs: Mapping[str, Mapping[int, float]]) -> str:
    lines = ["# What the seeds buy", "",
             "Every claim recomputed on subsets of its study's seeds (`paperzoo seeds`; "
             "the method and its caveat are in that module's docstring). A cell gives the share of the k-seed "
             "subsets whose final verdict is R(eproduced), N(egligible), I(nconclusive), C(ontradicted) or O(ut of regime); "
             "*saves* is the job "
             "minutes of the seeds with ids >= k in the cost ledger. Computed from the results themselves: "
             "a seed count chosen from this table to keep a verdict is chosen on the tested effect.", ""]
    for t in tables:
        ks = sorted(t["per_k"])
        cost = costs.get(t["study"], {})
        lines += [f"## {t['study']} ({t['n_seeds']} seeds)", "",
                  "| claim | kind | at n | " + " | ".join(f"k = {k}" for k in ks) + " |",
                  "|---|---|---|" + "---|" * len(ks)]
        for cid, c in t["claims"].items():
            lines.append(f"| {cid} | {c['kind']} | {c['verdict']} | "
                         + " | ".join(_share_cell(c["shares"][k]) for k in ks) + " |")
        lines.append("| *expected decided* | | "
                     + str(sum(c["verdict"] in DECIDED for c in t["claims"].values()))
                     + " | " + " | ".join(f"{t['per_k'][k]['expected_decided']:.1f}" for k in ks) + " |")
        lines.append("| *expected same verdict as at n* | | " + str(len(t["claims"])) + " | "
                     + " | ".join(f"{t['per_k'][k]['expected_same_as_full']:.1f}" for k in ks) + " |")
        lines.append("| *subsets* | | | " + " | ".join(
            f"{t['per_k'][k]['subsets']} of {t['per_k'][k]['of']}" for k in ks) + " |")
        if cost:
            lines.append("| *saves (job-min)* | | | " + " | ".join(
                f"{sum(v for s, v in cost.items() if s >= k):.1f}" for k in ks) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="mini")
    ap.add_argument("--study", action="append", help="only these studies (repeatable; default: every study "
                                                     "with results/<study>/<scale>/metrics.json)")
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--studies-dir", type=Path, default=Path(__file__).resolve().parents[1] / "studies")
    ap.add_argument("--max-subsets", type=int, default=200)
    ap.add_argument("--k-min", type=int, default=3)
    ap.add_argument("--ledger", type=Path, help="the per-job cost ledger (default results/report/<scale>/cost_jobs.csv)")
    ap.add_argument("--out", type=Path, help="default results/report/<scale>")
    args = ap.parse_args(argv)
    out = args.out or args.results / "report" / args.scale
    ledger = args.ledger or args.results / "report" / args.scale / "cost_jobs.csv"
    studies = args.study or sorted(p.parent.parent.name for p in args.results.glob(f"*/{args.scale}/metrics.json"))
    tables, costs, few = [], {}, []
    for s in studies:
        mpath, ppath = args.results / s / args.scale / "metrics.json", args.studies_dir / s / "paper.yaml"
        for p, what in ((mpath, "aggregated metrics (run the study first)"), (ppath, "the study's claims")):
            if not p.exists():
                raise SystemExit(f"{p}: missing; expected {what}")
        metrics = read_json(mpath)
        n_seeds = seed_ids(metrics)[1]
        if n_seeds <= args.k_min:
            few.append(f"{s} ({n_seeds})")   # no subset smaller than the study with k >= k_min
            continue
        tables.append(study_table(load_paper(ppath), metrics, args.scale, k_min=args.k_min,
                                  max_subsets=args.max_subsets))
        costs[s] = seed_cost(ledger, s)
    write_json(out / "seeds.json", {"tables": tables, "cost_by_seed_job_min": costs, "not_subsampled": few})
    text = markdown(tables, costs)
    if few:
        text += (f"\nNot subsampled (no subset of at least {args.k_min} seeds smaller than the study): "
                 + ", ".join(few) + ".\n")
    with atomic_path(out / "seeds.md") as tmp:
        Path(tmp).write_text(text)
    print(out / "seeds.md")
    print(text)


if __name__ == "__main__":
    main()
