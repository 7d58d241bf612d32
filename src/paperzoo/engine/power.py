"""How many seeds would decide a study's undecided paper claims, and what they would cost.

    paperzoo power [--study S ...] [--scale mini] [--out results/report/mini]

For every paper claim whose statistical verdict (Holm-adjusted, before the regime gate) is
inconclusive (for a compound ``all_of`` claim: each of its parts not yet reproduced), from the study's ``claims.json`` (its spread and degrees of freedom) and the
per-job cost ledger (``cost_jobs.csv``, written by ``engine.ledger``), three seed counts:

* **design n** (what to choose seeds by): the seeds at which a true effect of size sesoi beyond
  the margin would be shown with 80 % power, and at which a true zero effect would be called
  negligible with 80 % power (TOST, 90 % per side), at the observed spread, from the usual
  t approximation ``(t(1 − α, df) + t(power, df)) · se(n) ≤ effect``. They use the spread and the
  declared sesoi only, never the tested difference, so a seed count chosen from them is not
  chosen on the result.
* **observed n** (as the issue that asked for this module put it; *optimistic*): the seeds at
  which the verdict rule would decide the claim if the observed difference and spread stayed
  as they are. The observed difference is itself noisy, and near a boundary as likely to move
  away as towards a decision; this number is a lower bound, not a plan, and it reads the tested
  difference.
* each at α = 0.025 (the per-claim level) and at α/m (Holm's strictest step over the study's m
  paper claims): Holm's step for a claim lies between the two.

Spread: a paired claim's per-seed differences have sd = se·√n; a Welch claim's sides keep their
own sds (n seeds each); a one-sample claim's metric side its sd. The cost is the mean job-minutes
of one seed of the study (every job named ``..._seed<k>`` in the ledger, summed per seed, averaged
over the seeds run): a rerun adds seeds to every arm of a study, not only to the claim's two.
Counts are searched up to ``--max-seeds`` (default 200); "> 200" means the spread would need
more, "never" that no number of seeds can decide it (no spread, or the difference sits on the
margin with no sesoi).
Output: ``power.md`` and ``power.json`` in ``--out``, and the table on stdout.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable, Mapping

from scipy import stats

from .claims import ALPHA, NOT_RUN, OUT_OF_REGIME
from .verdict import Side, welch_se
from .io import atomic_path, read_json, write_json
from .subsample import seed_cost

POWER = 0.80


def se_at(claim: Mapping) -> Callable[[int], tuple[float, float]] | None:
    """``n -> (se, df)`` of the claim's difference with n seeds at its observed spread; None
    without spread (deterministic sides)."""
    o, test = claim["ours"], claim["test"]
    lhs, rhs = o["lhs"], o["rhs"]
    if test == "paired":
        n0 = lhs["n"]
        sd = o["se"] * math.sqrt(n0) if n0 else 0.0
        return (lambda n: (sd / math.sqrt(n), n - 1.0)) if sd > 0 else None
    if test in ("one-sample", "welch"):
        if not any(s["n"] is not None and s["std"] > 0 for s in (lhs, rhs)):
            return None
        # the verdict's own Welch-Satterthwaite (se, df), each metric side run on n seeds
        return lambda n: welch_se(*(Side(None, 0.0, 0.0, math.inf) if s["n"] is None else
                                    Side(s["ref"], 0.0, s["std"], n) for s in (lhs, rhs)))
    return None


def _t(q: float, df: float) -> float:
    """The Student quantile the verdict rule uses."""
    return float(stats.t.ppf(q, df))


def smallest_n(ok: Callable[[int], bool], n0: int, n_max: int) -> int | None:
    """The smallest n in [max(n0, 2), n_max] with ok(n), or None."""
    for n in range(max(n0, 2), n_max + 1):
        if ok(n):
            return n
    return None


def claim_power(claim: Mapping, m: int, n_max: int = 200) -> dict:
    """The design and observed seed counts of one claim (module docstring), at α and at α/m."""
    o = claim["ours"]
    n0 = min(s["n"] for s in (o["lhs"], o["rhs"]) if s["n"] is not None)
    f = se_at(claim)
    op = claim["comparison"].split(" ")[1]
    d = o["diff"] if op != "<" else -o["diff"]
    tol, sesoi = o["tol"], o.get("sesoi")
    out = {"id": claim["id"], "n": n0, "test": claim["test"], "diff": o["diff"], "se": o["se"],
           "tol": tol, "sesoi": sesoi, "p": claim.get("p"), "no_spread": f is None}
    for label, a in (("alpha", ALPHA), ("holm_strictest", ALPHA / max(m, 1))):
        if f is None:
            out[label] = {"observed": None, "detect_sesoi": None, "negligible_if_null": None}
            continue

        def decides(n: int) -> bool:
            se, df = f(n)
            h = _t(1 - a, df) * se
            if op == "~=":   # TOST inside ±tol, or the whole interval outside it
                return abs(d) + h < tol or abs(d) - h > tol
            return abs(d - tol) > h or (sesoi is not None and abs(d) + h < sesoi)

        def detects(n: int) -> bool:
            se, df = f(n)
            return (_t(1 - a, df) + _t(POWER, df)) * se <= sesoi - tol

        def null_negligible(n: int) -> bool:
            se, df = f(n)
            return (_t(1 - a, df) + _t(1 - (1 - POWER) / 2, df)) * se <= sesoi

        out[label] = {
            "observed": smallest_n(decides, n0, n_max),
            "detect_sesoi": smallest_n(detects, 2, n_max) if sesoi is not None and sesoi > tol else None,
            "negligible_if_null": smallest_n(null_negligible, 2, n_max) if sesoi is not None else None,
        }
    return out


def study_power(doc: Mapping, per_seed_min: float | None, n_max: int = 200) -> dict:
    """Every undecided paper claim of one study's claims.json, with the cost of the extra seeds."""
    paper = [c for c in doc["claims"] if c["kind"] == "paper" and c["verdict"] != NOT_RUN]
    m = len(paper)
    by_id = {c["id"]: c for c in doc["claims"]}
    rows = []
    for c in paper:
        statistical = c.get("holm", c["verdict"])
        if statistical != "inconclusive":
            continue
        # a compound claim (all_of) is decided through its parts: the undecided ones are listed
        todo = [by_id[p] for p in c["all_of"] if by_id[p]["unadjusted"] != "reproduced"] if c.get("all_of") else [c]
        for part in todo:
            r = claim_power(part, m, n_max)
            r["id"] = part["id"] if part is c else f"{c['id']} ← {part['id']} ({part['unadjusted']})"
            r["out_of_regime"] = c["verdict"] == OUT_OF_REGIME
            rows.append(r)
    return {"study": doc["study"], "scale": doc["scale"], "paper_claims": m, "undecided": len(rows),
            "in_regime": (doc.get("regime") or {}).get("in_regime"),
            "job_min_per_seed": per_seed_min, "claims": rows}


def _n(x: int | None, none: str) -> str:
    return none if x is None else str(x)


def _cost(n: int | None, n0: int, per_seed: float | None) -> str:
    if n is None or per_seed is None:
        return "—"
    return f"{max(n - n0, 0) * per_seed:.0f}"


def markdown(tables: list[dict], n_max: int = 200) -> str:
    lines = ["# Seeds that would decide the undecided paper claims", "",
             "`paperzoo power` (method and caveats in its docstring). Per undecided paper claim: "
             "*design n* — the seeds at which a true effect of the claim's sesoi (beyond its margin) would be shown "
             f"with {POWER:.0%} power, and at which a true zero effect would be called negligible with {POWER:.0%} "
             "power, at the observed spread (choose seeds by these: they do not read the tested difference); "
             "*observed n* — the seeds at which the observed difference and spread, if they stayed, would be "
             "decided (optimistic, reads the tested difference). Each as `at α / at Holm's strictest step α/m`. "
             "*+job-min* prices the extra seeds of the whole study from the cost ledger. "
             f"'> {n_max}': more seeds than searched; '—': no sesoi declared or no spread.", ""]
    for t in tables:
        cost = t["job_min_per_seed"]
        head = (f"## {t['study']}: {t['undecided']} of {t['paper_claims']} paper claims undecided"
                + ("" if t["in_regime"] is not False else " (study out of regime: seeds do not fix a failed gate)")
                + (f"; one seed of the study costs {cost:.1f} job-min" if cost else "; no per-seed cost in the ledger"))
        lines += [head, ""]
        if not t["claims"]:
            lines += ["Every paper claim is decided.", ""]
            continue
        lines += ["| claim | n now | difference (se) | sesoi | design n: detect sesoi | +job-min | design n: "
                  "negligible if null | +job-min | observed n (optimistic) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in t["claims"]:
            a, s = r["alpha"], r["holm_strictest"]
            none = f"> {n_max}"

            def pair(key: str) -> str:
                if r["no_spread"]:
                    return "never" if key == "observed" else "—"
                if r["sesoi"] is None and key != "observed":
                    return "—"
                return f"{_n(a[key], none)} / {_n(s[key], none)}"

            lines.append("| " + " | ".join([
                f"`{r['id']}`" + (" (out of regime)" if r["out_of_regime"] else ""), str(r["n"]),
                f"{r['diff']:+.3g} ({r['se']:.2g})", "—" if r["sesoi"] is None else f"{r['sesoi']:.2g}",
                pair("detect_sesoi"), _cost(s["detect_sesoi"], r["n"], cost),
                pair("negligible_if_null"), _cost(s["negligible_if_null"], r["n"], cost),
                pair("observed")]) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="mini")
    ap.add_argument("--study", action="append", help="only these studies (repeatable; default: every study with "
                                                     "results/<study>/<scale>/claims.json)")
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--ledger", type=Path, help="the per-job cost ledger (default results/report/<scale>/cost_jobs.csv)")
    ap.add_argument("--max-seeds", type=int, default=200)
    ap.add_argument("--out", type=Path, help="default results/report/<scale>; '-' prints only")
    args = ap.parse_args(argv)
    ledger = args.ledger or args.results / "report" / args.scale / "cost_jobs.csv"
    studies = args.study or sorted(p.parent.parent.name for p in args.results.glob(f"*/{args.scale}/claims.json"))
    tables = []
    for s in studies:
        path = args.results / s / args.scale / "claims.json"
        if not path.exists():
            raise SystemExit(f"{path}: missing; expected the study's verdicts (run `snakemake {s}` first)")
        per_seed = seed_cost(ledger, s)
        tables.append(study_power(read_json(path), sum(per_seed.values()) / len(per_seed) if per_seed else None,
                                  args.max_seeds))
    text = markdown(tables, args.max_seeds)
    if str(args.out) != "-":
        out = args.out or args.results / "report" / args.scale
        write_json(out / "power.json", {"alpha": ALPHA, "power": POWER, "tables": tables})
        with atomic_path(out / "power.md") as tmp:
            Path(tmp).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
