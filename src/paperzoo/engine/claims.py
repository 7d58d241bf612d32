"""The claims engine: one computed verdict per claim of a paper.

Each study keeps ``studies/<slug>/paper.yaml`` with the paper's reference numbers and its
claims. A claim compares two sides, each an aggregated metric ``"<arm>.<metric>"`` or a
plain number::

    - id: ensemble_beats_seq
      statement: "LAE ensemble beats naive sequential PET in last accuracy"
      lhs: ensemble.acc_last
      op: ">"            # one of  >  <  ~=  ==
      rhs: seq_pet.acc_last
      min_seeds: 3       # runs needed on every metric side (1 for deterministic computations)
      atol: 0.0          # tolerance added to the margin (absolute) ...
      rtol: 0.0          # ... and relative to |mean(rhs)|
      paper: ref_id      # a reference id from ``references:``, or null
      scales: [mini, paper]   # optional: the scales at which the claim is judged

The verdict rule (the only place it is stated)
----------------------------------------------
Let d = mean(lhs) − mean(rhs) and se = sqrt(s_l²/n_l + s_r²/n_r) (a number side adds 0).
The 95 % half-width of d is h = t·se, with t the two-sided 0.975 Student quantile at the
Welch–Satterthwaite degrees of freedom (h = 0 when both sides are deterministic, se = 0).
tol = atol + rtol·|mean(rhs)|.

* Too few runs on any metric side (n < min_seeds) → ``inconclusive``.
* ``>``: d > h + tol → ``reproduced``; d < −(h + tol) → ``contradicted``; else ``inconclusive``.
* ``<``: the same with d negated.
* ``~=`` (agreement): h > tol → ``inconclusive`` (the error bars are too wide to tell);
  |d| ≤ tol + h → ``reproduced``; otherwise ``contradicted``.
* ``==`` (exact, for counts): both sides must have se = 0; d == 0 → ``reproduced``,
  otherwise ``contradicted``.

So "reproduced" for an ordering means the 95 % Welch confidence interval of the difference
lies on the claimed side, beyond the tolerance; an agreement means the difference is
within the stated tolerance given error bars that are themselves narrower than it.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from scipy import stats

from .io import read_json, read_yaml, write_json

VERDICTS = ("reproduced", "inconclusive", "contradicted")
OPS = (">", "<", "~=", "==")
CLAIM_KEYS = {"id", "statement", "lhs", "op", "rhs", "min_seeds", "atol", "rtol", "paper", "scales", "note"}


@dataclass(frozen=True)
class Side:
    """One side of a comparison: an aggregated metric (or a constant when ref is None)."""

    ref: str | None
    mean: float
    std: float
    n: float  # math.inf for a constant

    def as_dict(self) -> dict:
        return {"ref": self.ref, "mean": self.mean, "std": self.std,
                "n": None if math.isinf(self.n) else int(self.n)}


def resolve(term: Any, arms: Mapping, where: str) -> Side:
    """Resolve ``"<arm>.<metric>"`` against aggregated ``arms``, or a number as a constant."""
    if isinstance(term, (int, float)) and not isinstance(term, bool):
        return Side(None, float(term), 0.0, math.inf)
    if not isinstance(term, str) or "." not in term:
        raise ValueError(f"{where}: expected '<arm>.<metric>' or a number, got {term!r}")
    arm, metric = term.split(".", 1)
    if arm not in arms:
        raise KeyError(f"{where}: arm {arm!r} not in metrics (have: {', '.join(sorted(arms))})")
    if metric not in arms[arm]:
        raise KeyError(f"{where}: metric {metric!r} not in arm {arm!r} "
                       f"(have: {', '.join(sorted(arms[arm]))})")
    m = arms[arm][metric]
    return Side(term, float(m["mean"]), float(m["std"]), float(m["n"]))


def half_width(lhs: Side, rhs: Side, level: float = 0.95) -> tuple[float, float]:
    """(se, t·se) of mean(lhs) − mean(rhs) with Welch–Satterthwaite degrees of freedom."""
    noisy = [s for s in (lhs, rhs) if not math.isinf(s.n) and s.std > 0]  # n ≥ 2 here
    terms = [s.std**2 / s.n for s in noisy]  # variance of each side's mean
    if not terms:
        return 0.0, 0.0
    se = math.sqrt(sum(terms))
    dof = se**4 / sum(v**2 / (s.n - 1) for v, s in zip(terms, noisy))
    return se, float(stats.t.ppf(0.5 + level / 2, dof)) * se


def verdict(lhs: Side, op: str, rhs: Side, *, min_seeds: int = 3,
            atol: float = 0.0, rtol: float = 0.0) -> tuple[str, dict]:
    """Apply the module's verdict rule; return (verdict, numbers used)."""
    if op not in OPS:
        raise ValueError(f"op {op!r} not one of {OPS}")
    d = lhs.mean - rhs.mean
    se, h = half_width(lhs, rhs)
    tol = atol + rtol * abs(rhs.mean)
    numbers = {"diff": d, "se": se, "half_width_95": h, "tol": tol}
    if any(s.n < min_seeds for s in (lhs, rhs)):
        return "inconclusive", {**numbers, "reason": f"fewer than {min_seeds} runs"}
    if op == "==":
        if se > 0:
            return "inconclusive", {**numbers, "reason": "'==' needs deterministic sides"}
        return ("reproduced" if d == 0 else "contradicted"), numbers
    if op == "~=":
        if h > tol:
            return "inconclusive", {**numbers, "reason": "error bars wider than the tolerance"}
        return ("reproduced" if abs(d) <= tol + h else "contradicted"), numbers
    signed = d if op == ">" else -d
    if signed > h + tol:
        return "reproduced", numbers
    if signed < -(h + tol):
        return "contradicted", numbers
    return "inconclusive", numbers


def load_paper(path: str | os.PathLike) -> dict:
    """Read and check a ``paper.yaml``; errors name the file, the claim and the key."""
    paper = read_yaml(path)
    if not isinstance(paper, dict) or "claims" not in paper:
        raise ValueError(f"{path}: expected a mapping with a 'claims' list")
    refs = {r["id"]: r for r in paper.get("references") or []}
    seen = set()
    for i, c in enumerate(paper["claims"]):
        where = f"{path}: claims[{i}]"
        unknown = set(c) - CLAIM_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(CLAIM_KEYS)}")
        for key in ("id", "statement", "lhs", "op", "rhs"):
            if key not in c:
                raise ValueError(f"{where}: missing key {key!r}")
        if c["op"] not in OPS:
            raise ValueError(f"{where} ({c['id']}): op {c['op']!r} not one of {OPS}")
        if c["id"] in seen:
            raise ValueError(f"{where}: duplicate claim id {c['id']!r}")
        seen.add(c["id"])
        if c.get("paper") is not None and c["paper"] not in refs:
            raise ValueError(f"{where} ({c['id']}): paper reference {c['paper']!r} not in references")
    paper["_refs"] = refs
    return paper


def evaluate(paper: Mapping, metrics: Mapping, scale: str) -> dict:
    """Verdicts for every claim of ``paper`` against aggregated ``metrics`` at ``scale``."""
    arms = metrics["arms"]
    out = []
    for c in paper["claims"]:
        if "scales" in c and scale not in c["scales"]:
            continue
        where = f"claim {c['id']!r}"
        lhs, rhs = resolve(c["lhs"], arms, where), resolve(c["rhs"], arms, where)
        v, numbers = verdict(lhs, c["op"], rhs, min_seeds=int(c.get("min_seeds", 3)),
                             atol=float(c.get("atol", 0.0)), rtol=float(c.get("rtol", 0.0)))
        ref = paper["_refs"].get(c.get("paper"))
        out.append({
            "id": c["id"], "statement": c["statement"], "comparison": f"{c['lhs']} {c['op']} {c['rhs']}",
            "verdict": v, "ours": {"lhs": lhs.as_dict(), "rhs": rhs.as_dict(), **numbers},
            "paper": None if ref is None else {"value": ref.get("value"), "source": ref.get("source"),
                                               "verified": bool(ref.get("verified", False))},
        })
    return {"study": paper.get("study", metrics.get("study")), "scale": scale,
            "title": paper.get("title"), "arxiv": paper.get("arxiv"), "claims": out}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Compute claim verdicts for one study and scale.")
    ap.add_argument("--paper", required=True, type=Path, help="studies/<slug>/paper.yaml")
    ap.add_argument("--metrics", required=True, type=Path, help="aggregated metrics.json")
    ap.add_argument("--scale", required=True)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    write_json(args.out, evaluate(load_paper(args.paper), read_json(args.metrics), args.scale))


if __name__ == "__main__":
    main()
