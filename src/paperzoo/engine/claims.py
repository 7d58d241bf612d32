"""The claims engine: one computed verdict per claim of a paper.

Each study keeps ``studies/<slug>/paper.yaml`` with the paper's reference numbers and its
claims. A claim compares two sides, each an aggregated metric ``"<arm>.<metric>"`` or a
plain number::

    paired: true           # study default: arms of seed k share seed k's init/data/class order
    claims:
      - id: ensemble_beats_seq
        kind: paper        # paper | prediction | check (required, see KINDS)
        statement: "LAE ensemble beats naive sequential PET in last accuracy"
        lhs: ensemble.acc_last
        op: ">"            # one of  >  <  ~=  ==
        rhs: seq_pet.acc_last
        rhs_scale: 1.0     # optional: the rhs side multiplied by this number (e.g. 0.85 x a reference)
        min_seeds: 3       # runs needed on every metric side (1 for deterministic computations)
        atol: 0.0          # tolerance added to the margin (absolute) ...
        rtol: 0.0          # ... and relative to |mean(rhs)|
        paired: true       # optional: overrides the study default for this claim
        paper: ref_id      # a reference id from ``references:``, or null
        scales: [mini, paper]   # optional: the scales at which the claim is judged
        note: "..."        # optional caveat, shown to the reader next to the verdict

Claim kinds (headlines count ``paper`` claims only)
----------------------------------------------------
* ``paper``: the paper states it (its reference cites the section/table/figure);
* ``prediction``: our model's own prediction, a control arm or a diagnostic we defined;
* ``check``: a numerical self-check or bookkeeping (e.g. "all 80 groups were scanned").

The verdict rule (the only place it is stated)
----------------------------------------------
Let d be the difference lhs − rhs (rhs × ``rhs_scale`` where a claim gives one) and h the 95 %
half-width of its confidence interval,
computed by one of three tests (recorded per claim as ``test``):

* ``paired`` — both sides are metrics of runs with the same seeds and the claim is paired
  (the study's ``paired:`` default or the claim's own). With per-seed differences
  d_i = lhs_i − rhs_i over the n common seeds: d = mean(d_i), se = sd(d_i)/√n,
  h = t(0.975, n − 1)·se (h = 0 when n = 1 or every d_i is equal). The two sides must have
  exactly the same seeds; otherwise the claim is an error, not a verdict.
* ``welch`` — unpaired: d = mean(lhs) − mean(rhs), se = sqrt(s_l²/n_l + s_r²/n_r),
  h = t·se with t the 0.975 Student quantile at the Welch–Satterthwaite degrees of freedom
  (h = 0 when both sides are deterministic, se = 0). ``one-sample`` is the same with a number
  on one side (it adds no variance).
* ``exact`` — the ``==`` operator (counts): both sides must be deterministic.

Then, with tol = atol + rtol·|mean(rhs)|:

* Too few runs on any metric side (n < min_seeds) → ``inconclusive``.
* ``>``: d > h + tol → ``reproduced``; d < −(h + tol) → ``contradicted``; else ``inconclusive``.
* ``<``: the same with d negated.
* ``~=`` (agreement): h > tol → ``inconclusive`` (the error bars are too wide to tell);
  |d| ≤ tol + h → ``reproduced``; otherwise ``contradicted``.
* ``==`` (exact): se > 0 on a side → ``inconclusive``; d == 0 → ``reproduced``, otherwise
  ``contradicted``.

So "reproduced" for an ordering means the 95 % confidence interval of the difference lies
on the claimed side, beyond the tolerance; an agreement means the difference is within the
stated tolerance given error bars that are themselves narrower than it. A claim limited to
other ``scales`` is listed with the status ``not run`` and counts in no verdict.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from scipy import stats

from .io import read_json, read_yaml, write_json

VERDICTS = ("reproduced", "inconclusive", "contradicted")
NOT_RUN = "not run"  # a claim limited to other scales: listed, never counted as a verdict
KINDS = ("paper", "prediction", "check")
OPS = (">", "<", "~=", "==")
CLAIM_KEYS = {"id", "kind", "statement", "lhs", "op", "rhs", "rhs_scale", "min_seeds", "atol", "rtol",
              "paired", "paper", "scales", "note"}
PAPER_KEYS = {"study", "title", "arxiv", "code", "note", "paired", "references", "claims"}
REFERENCE_KEYS = {"id", "value", "source", "short", "verified", "note"}


@dataclass(frozen=True)
class Side:
    """One side of a comparison: an aggregated metric (or a constant when ref is None).

    ``by_seed`` maps the seed (as a string, as in metrics.json) to that run's value; it is
    what a paired verdict needs and is empty for constants.
    """

    ref: str | None
    mean: float
    std: float
    n: float  # math.inf for a constant
    by_seed: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {"ref": self.ref, "mean": self.mean, "std": self.std,
               "n": None if math.isinf(self.n) else int(self.n)}
        if self.by_seed:
            out["by_seed"] = dict(self.by_seed)
        return out


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
    by_seed = {str(k): float(v) for k, v in (m.get("by_seed") or {}).items()}
    return Side(term, float(m["mean"]), float(m["std"]), float(m["n"]), by_seed)


def scaled(side: Side, factor: float) -> Side:
    """``factor`` x ``side`` (mean, std, every seed's value): a claim's ``rhs_scale``, e.g.
    "random reaches 85 % of the full-mask head" is ``lhs > 0.85 x rhs``, paired per seed as
    d_i = lhs_i − 0.85·rhs_i."""
    if factor == 1.0:
        return side
    ref = None if side.ref is None else f"{factor:g} × {side.ref}"
    return Side(ref, side.mean * factor, side.std * abs(factor), side.n,
                {k: v * factor for k, v in side.by_seed.items()})


def half_width(lhs: Side, rhs: Side, level: float = 0.95) -> tuple[float, float]:
    """(se, t·se) of mean(lhs) − mean(rhs) with Welch–Satterthwaite degrees of freedom."""
    noisy = [s for s in (lhs, rhs) if not math.isinf(s.n) and s.std > 0]  # n ≥ 2 here
    terms = [s.std**2 / s.n for s in noisy]  # variance of each side's mean
    if not terms:
        return 0.0, 0.0
    se = math.sqrt(sum(terms))
    dof = se**4 / sum(v**2 / (s.n - 1) for v, s in zip(terms, noisy))
    return se, float(stats.t.ppf(0.5 + level / 2, dof)) * se


def paired_differences(lhs: Side, rhs: Side) -> list[float]:
    """Per-seed differences lhs_i − rhs_i, in seed order; the seeds must match exactly."""
    if not lhs.by_seed or not rhs.by_seed:
        missing = [s.ref for s in (lhs, rhs) if not s.by_seed]
        raise ValueError(f"paired comparison needs per-seed values, missing for {missing} "
                         "(re-aggregate the runs: metrics.json keeps 'by_seed' per metric)")
    if set(lhs.by_seed) != set(rhs.by_seed):
        raise ValueError(f"paired comparison needs the same seeds on both sides: {lhs.ref} has seeds "
                         f"{sorted(lhs.by_seed, key=int)}, {rhs.ref} has {sorted(rhs.by_seed, key=int)} "
                         "(declare the claim 'paired: false' if these runs do not share seeds)")
    return [lhs.by_seed[k] - rhs.by_seed[k] for k in sorted(lhs.by_seed, key=int)]


def paired_half_width(diffs: list[float], level: float = 0.95) -> tuple[float, float]:
    """(se, t·se) of the mean of per-seed differences: one-sample Student interval, df = n − 1."""
    n = len(diffs)
    if n < 2:
        return 0.0, 0.0
    m = sum(diffs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in diffs) / (n - 1))
    if sd == 0.0:
        return 0.0, 0.0
    se = sd / math.sqrt(n)
    return se, float(stats.t.ppf(0.5 + level / 2, n - 1)) * se


def choose_test(lhs: Side, op: str, rhs: Side, paired: bool) -> str:
    if op == "==":
        return "exact"
    constant = math.isinf(lhs.n) or math.isinf(rhs.n)
    if constant:
        return "one-sample"
    return "paired" if paired else "welch"


def verdict(lhs: Side, op: str, rhs: Side, *, min_seeds: int = 3,
            atol: float = 0.0, rtol: float = 0.0, paired: bool = False) -> tuple[str, dict]:
    """Apply the module's verdict rule; return (verdict, numbers used incl. the ``test``)."""
    if op not in OPS:
        raise ValueError(f"op {op!r} not one of {OPS}")
    test = choose_test(lhs, op, rhs, paired)
    if test == "paired":
        diffs = paired_differences(lhs, rhs)
        d = sum(diffs) / len(diffs)
        se, h = paired_half_width(diffs)
    else:
        d = lhs.mean - rhs.mean
        se, h = half_width(lhs, rhs)
    tol = atol + rtol * abs(rhs.mean)
    numbers = {"test": test, "diff": d, "se": se, "half_width_95": h, "tol": tol}
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
    unknown = set(paper) - PAPER_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(PAPER_KEYS)}")
    if not isinstance(paper.get("paired", False), bool):
        raise ValueError(f"{path}: 'paired' must be true or false, got {paper['paired']!r}")
    refs = {}
    for i, r in enumerate(paper.get("references") or []):
        bad = set(r) - REFERENCE_KEYS
        if bad or "id" not in r:
            raise ValueError(f"{path}: references[{i}]: needs 'id'; unknown key(s) {sorted(bad)}; "
                             f"allowed: {sorted(REFERENCE_KEYS)}")
        refs[r["id"]] = r
    seen = set()
    for i, c in enumerate(paper["claims"]):
        where = f"{path}: claims[{i}]"
        unknown = set(c) - CLAIM_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(CLAIM_KEYS)}")
        for key in ("id", "kind", "statement", "lhs", "op", "rhs"):
            if key not in c:
                raise ValueError(f"{where}: missing key {key!r}")
        if c["kind"] not in KINDS:
            raise ValueError(f"{where} ({c['id']}): kind {c['kind']!r} not one of {KINDS}")
        if c["op"] not in OPS:
            raise ValueError(f"{where} ({c['id']}): op {c['op']!r} not one of {OPS}")
        if "rhs_scale" in c and (isinstance(c["rhs_scale"], bool) or not isinstance(c["rhs_scale"], (int, float))):
            raise ValueError(f"{where} ({c['id']}): 'rhs_scale' must be a number, got {c['rhs_scale']!r}")
        if "paired" in c and not isinstance(c["paired"], bool):
            raise ValueError(f"{where} ({c['id']}): 'paired' must be true or false, got {c['paired']!r}")
        if c["id"] in seen:
            raise ValueError(f"{where}: duplicate claim id {c['id']!r}")
        seen.add(c["id"])
        if c.get("paper") is not None and c["paper"] not in refs:
            raise ValueError(f"{where} ({c['id']}): paper reference {c['paper']!r} not in references")
    paper["_refs"] = refs
    return paper


def _reference(ref: Mapping | None) -> dict | None:
    if ref is None:
        return None
    return {"id": ref["id"], "value": ref.get("value"), "short": ref.get("short") or ref.get("source"),
            "source": ref.get("source"), "verified": bool(ref.get("verified", False))}


def evaluate(paper: Mapping, metrics: Mapping, scale: str) -> dict:
    """Verdicts for every claim of ``paper`` against aggregated ``metrics`` at ``scale``.

    Claims limited to other scales are listed with ``verdict: "not run"`` and no numbers.
    """
    arms = metrics["arms"]
    out = []
    for c in paper["claims"]:
        where = f"claim {c['id']!r}"
        paired = bool(c.get("paired", paper.get("paired", False)))
        factor = float(c.get("rhs_scale", 1.0))
        rhs_text = c["rhs"] if factor == 1.0 else f"{factor:g} × {c['rhs']}"
        row = {"id": c["id"], "kind": c["kind"], "statement": c["statement"],
               "comparison": f"{c['lhs']} {c['op']} {rhs_text}", "note": c.get("note"),
               "paper": _reference(paper["_refs"].get(c.get("paper")))}
        if "scales" in c and scale not in c["scales"]:
            out.append({**row, "test": None, "verdict": NOT_RUN, "ours": None,
                        "scales": list(c["scales"])})
            continue
        lhs, rhs = resolve(c["lhs"], arms, where), scaled(resolve(c["rhs"], arms, where), factor)
        try:
            v, numbers = verdict(lhs, c["op"], rhs, min_seeds=int(c.get("min_seeds", 3)),
                                 atol=float(c.get("atol", 0.0)), rtol=float(c.get("rtol", 0.0)),
                                 paired=paired)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        out.append({**row, "test": numbers.pop("test"), "verdict": v,
                    "ours": {"lhs": lhs.as_dict(), "rhs": rhs.as_dict(), **numbers}})
    references = [_reference(r) | {"note": r.get("note")} for r in paper["_refs"].values()]
    return {"study": paper.get("study", metrics.get("study")), "scale": scale,
            "title": paper.get("title"), "arxiv": paper.get("arxiv"), "code": paper.get("code"),
            "note": paper.get("note"), "provenance": metrics.get("provenance"), "references": references,
            "claims": out}


def counts(claims: list[Mapping], kind: str | None = None) -> dict[str, int]:
    """Verdict counts (``not run`` separately) over the claims of one kind, or all."""
    sel = [c for c in claims if kind is None or c["kind"] == kind]
    return {v: sum(c["verdict"] == v for c in sel) for v in (*VERDICTS, NOT_RUN)}


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
