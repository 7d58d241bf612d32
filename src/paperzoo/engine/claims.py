"""The claims engine: one computed verdict per claim of a paper (claims v3).

Each study keeps ``studies/<slug>/paper.yaml`` with the paper's reference numbers, the
abstract's testable statements and its claims. A claim compares two sides, each an aggregated
metric ``"<arm>.<metric>"`` or a plain number::

    paired: true           # study default: arms of seed k share seed k's init/data/class order
    learned: true          # default; false for deterministic studies (no sesoi required)
    sesoi_rule: "..."      # how this study's smallest effects of interest were set, stated once
    abstract:              # the abstract's testable statements, each tested by claims or not testable here
      - {id: a1, text: "...", claims: [ensemble_beats_seq]}
      - {id: a2, text: "...", untestable: "not testable at this scale: needs ImageNet-21k"}
    claims:
      - id: ensemble_beats_seq
        kind: paper        # paper | prediction | check (required, see KINDS)
        statement: "LAE ensemble beats naive sequential PET in last accuracy"
        lhs: ensemble.acc_last
        op: ">"            # one of  >  <  ~=  ==
        rhs: seq_pet.acc_last
        rhs_scale: 1.0     # optional: the rhs side multiplied by this number (e.g. 0.85 x a reference)
        min_seeds: 3       # runs needed on every metric side (1 for deterministic computations)
        atol: 0.0          # tolerance (absolute) ...
        rtol: 0.0          # ... and relative to |mean(rhs)|: a margin on > and <, the bound of ~=
        sesoi: 0.01        # smallest effect of interest, units of lhs - rhs (paper ordering claims)
        sesoi_source: "..."  # where that number comes from (or the study's sesoi_rule)
        gate: false        # true on a check/prediction that states the paper's regime
        paired: true       # optional: overrides the study default for this claim
        paper: ref_id      # a reference id from ``references:``, or null
        scales: [mini, paper]   # optional: the scales at which the claim is judged
        note: "..."        # optional caveat, shown to the reader next to the verdict

Claim kinds (headlines count ``paper`` claims only)
----------------------------------------------------
* ``paper``: the paper states it: it tests one of the abstract's statements (``abstract:``)
  or its reference cites a table, figure or section of the paper;
* ``prediction``: our model's own prediction, a control arm or a diagnostic we defined;
* ``check``: a numerical self-check or bookkeeping (e.g. "all 80 groups were scanned").

The verdict rule (the only place it is stated)
----------------------------------------------
Let d be the difference lhs − rhs (rhs × ``rhs_scale`` where a claim gives one), se its
standard error and df its degrees of freedom, from one of three tests (recorded as ``test``):

* ``paired`` — both sides are metrics of runs with the same seeds and the claim is paired
  (the study's ``paired:`` default or the claim's own): per-seed differences
  d_i = lhs_i − rhs_i over the n common seeds, d = mean(d_i), se = sd(d_i)/√n, df = n − 1
  (se = 0 when n = 1 or every d_i is equal). The two sides must have exactly the same seeds;
  otherwise the claim is an error, not a verdict.
* ``welch`` — unpaired: d = mean(lhs) − mean(rhs), se = sqrt(s_l²/n_l + s_r²/n_r), df by
  Welch–Satterthwaite. A metric side with one run beside a side with several is an error: one
  run of a stochastic arm has an unknown spread, not a zero one. ``one-sample`` is the same
  with a number on one side (it adds no variance).
* ``exact`` — the ``==`` operator (counts): both sides must be deterministic.

Every verdict is a one-sided test at **α = 0.025** (``ALPHA``), so its interval is the 95 %
two-sided one: h = t(1 − α, df)·se (h = 0 where se = 0, and then a test passes on the strict
inequality). With tol = atol + rtol·|mean(rhs)| and, for ``<``, d read as −d:

* ``>``/``<``: tol is a **margin** ("by more than tol"): reproduced when d − tol > h (p of
  H0: δ ≤ tol below α); contradicted when d − tol < −h (the whole interval lies below the
  margin: "not by more than tol"). With tol = 0 this is the plain ordering.
* ``~=`` is an equivalence test (**TOST**, each one-sided test at α): reproduced when the
  interval lies inside (−tol, +tol); contradicted when it lies entirely outside; else
  inconclusive.
* ``==``: se > 0 on a side → inconclusive; d == 0 → reproduced, otherwise contradicted.
* **negligible** (``>``/``<`` claims with a ``sesoi``): neither ordering is shown and the
  interval lies inside (−sesoi, +sesoi) — "no effect of the claimed size at this scale". It is
  a decided verdict. An ordering that is shown takes precedence (below the paper scale only
  directions and orderings are claimed); when its interval also lies within ±sesoi it is marked
  ``below_sesoi``: the effect is real but smaller than the smallest effect of interest.
* Too few runs on any metric side (n < min_seeds) → inconclusive.
* ``all_of: [ids]`` (a compound claim: "at every budget", "on every task") joins k other
  claims of the file, judged per claim as above: reproduced when every one is reproduced (an
  intersection-union test, valid at α without adjustment; p = the largest of theirs);
  contradicted when one is contradicted at α/k (Bonferroni over the k; p = k × the smallest of
  the contradicted ones'); negligible when every one is negligible; else inconclusive.

Each verdict carries ``p``: the p-value of the test that decided it (for an inconclusive one,
the smallest of its candidate tests).

Multiplicity. The paper claims a study judges at one scale are one family. Their p-values go
through Holm's step-down procedure at α (sorted ascending, the i-th of m passes while every
p_(j≤i) < α / (m − j + 1)); a decided verdict whose test does not pass becomes inconclusive
(reason ``Holm``). Holm controls the family-wise error of the decisions at α; predictions and
checks are not adjusted. ``holm`` holds the adjusted verdict, ``unadjusted`` the per-claim one.

Regime. A check or prediction marked ``gate: true`` states the regime the paper relies on. If a
gate judged at this scale is not reproduced, every paper claim of the study is reported
**out of regime** (its statistical verdicts kept in ``unadjusted``/``holm``, counted in no
decided total).

Stability. For a study with n ≥ 3 seeds every claim is re-judged (the whole procedure, Holm
and gates included) on each leave-one-seed-out subset of the runs (``min_seeds`` capped at
n − 1); ``loo_kept`` is the share of subsets giving the same final verdict, and a decided verdict
kept by fewer than all is ``fragile``.

``verdict`` is the final one (out of regime > Holm-adjusted > per-claim); headlines count it. A
claim limited to other ``scales`` is listed as ``not run`` and counts in no verdict.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Mapping

from .io import read_json, read_yaml, write_json
from .metrics import restrict, seed_ids
from .verdict import (ALPHA, DECIDED, LEVEL, OPS, VERDICTS, Side, candidate_tests, choose_test,  # noqa: F401
                      half_width, holm, p_above, paired_differences, paired_half_width, paired_se, resolve, scaled,
                      verdict, welch_se)

OUT_OF_REGIME = "out of regime"  # a paper claim of a study whose regime gate failed
NOT_RUN = "not run"  # a claim limited to other scales: listed, never counted as a verdict
STATUSES = (*VERDICTS, OUT_OF_REGIME, NOT_RUN)
KINDS = ("paper", "prediction", "check")
CLAIM_KEYS = {"id", "kind", "statement", "lhs", "op", "rhs", "rhs_scale", "min_seeds", "atol", "rtol",
              "paired", "paper", "scales", "note", "sesoi", "sesoi_source", "gate", "all_of"}
COMPOUND_KEYS = {"id", "kind", "statement", "all_of", "paper", "scales", "note", "gate"}
PAPER_KEYS = {"study", "title", "arxiv", "code", "note", "paired", "references", "claims", "learned",
              "sesoi_rule", "abstract"}
REFERENCE_KEYS = {"id", "value", "source", "short", "verified", "note"}
ABSTRACT_KEYS = {"id", "text", "claims", "untestable"}
# a reference that cites a place in the paper (a paper claim not in the abstract needs one)
CITES_PLACE = re.compile(r"\b(Table|Tab\.|Fig\.?|Figure|Sec\.?|Section|§|Eq\.?|Appendix)\s*[\dA-Z(]", re.I)


def _check_abstract(path, paper: Mapping, ids: set[str], refs: Mapping) -> None:
    """The abstract's statements: each maps to claims or says why it is not testable; every paper
    claim is listed under one of them or cites a table/figure/section through its reference."""
    covered = set()
    for i, a in enumerate(paper.get("abstract") or []):
        where = f"{path}: abstract[{i}]"
        if not isinstance(a, dict) or "id" not in a or "text" not in a:
            raise ValueError(f"{where}: needs 'id' and 'text'")
        bad = set(a) - ABSTRACT_KEYS
        if bad:
            raise ValueError(f"{where} ({a['id']}): unknown key(s) {sorted(bad)}; allowed: {sorted(ABSTRACT_KEYS)}")
        if ("claims" in a) == ("untestable" in a):
            raise ValueError(f"{where} ({a['id']}): give exactly one of 'claims' (the claims that test it) or "
                             "'untestable' (why not at this scale)")
        for cid in a.get("claims") or []:
            if cid not in ids:
                raise ValueError(f"{where} ({a['id']}): claim {cid!r} is not in claims")
        if "claims" in a and not a["claims"]:
            raise ValueError(f"{where} ({a['id']}): 'claims' is empty")
        covered |= set(a.get("claims") or [])
    for c in paper["claims"]:
        if c["kind"] != "paper" or c["id"] in covered:
            continue
        src = str((refs.get(c.get("paper")) or {}).get("source") or "")
        if not CITES_PLACE.search(src):
            raise ValueError(f"{path}: paper claim {c['id']!r} tests no statement of 'abstract:' and its reference "
                             "cites no table, figure or section of the paper; list it under an abstract statement, "
                             "cite the place, or make it a 'prediction'")


def load_paper(path: str | os.PathLike) -> dict:
    """Read and check a ``paper.yaml``; errors name the file, the claim and the key."""
    paper = read_yaml(path)
    if not isinstance(paper, dict) or "claims" not in paper:
        raise ValueError(f"{path}: expected a mapping with a 'claims' list")
    unknown = set(paper) - PAPER_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(PAPER_KEYS)}")
    for key in ("paired", "learned"):
        if not isinstance(paper.get(key, False), bool):
            raise ValueError(f"{path}: {key!r} must be true or false, got {paper[key]!r}")
    learned = paper.get("learned", True)
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
        if "all_of" in c:
            bad = set(c) - COMPOUND_KEYS
            if bad:
                raise ValueError(f"{where} ({c.get('id')}): a compound claim ('all_of') takes no {sorted(bad)}; "
                                 f"allowed: {sorted(COMPOUND_KEYS)}")
        for key in ("id", "kind", "statement") + (() if "all_of" in c else ("lhs", "op", "rhs")):
            if key not in c:
                raise ValueError(f"{where}: missing key {key!r}")
        where = f"{where} ({c['id']})"
        if "all_of" in c:
            if c["kind"] not in KINDS:
                raise ValueError(f"{where}: kind {c['kind']!r} not one of {KINDS}")
            if not isinstance(c["all_of"], list) or len(c["all_of"]) < 2:
                raise ValueError(f"{where}: 'all_of' lists two or more claim ids")
            if c["id"] in seen:
                raise ValueError(f"{where}: duplicate claim id")
            seen.add(c["id"])
            continue
        if c["kind"] not in KINDS:
            raise ValueError(f"{where}: kind {c['kind']!r} not one of {KINDS}")
        if c["op"] not in OPS:
            raise ValueError(f"{where}: op {c['op']!r} not one of {OPS}")
        for key in ("rhs_scale", "sesoi", "atol", "rtol"):
            if key in c and (isinstance(c[key], bool) or not isinstance(c[key], (int, float))):
                raise ValueError(f"{where}: {key!r} must be a number, got {c[key]!r}")
        for key in ("paired", "gate"):
            if key in c and not isinstance(c[key], bool):
                raise ValueError(f"{where}: {key!r} must be true or false, got {c[key]!r}")
        if c.get("gate") and c["kind"] == "paper":
            raise ValueError(f"{where}: a regime gate is a 'check' or 'prediction', not a paper claim")
        if "sesoi" in c:
            if c["op"] not in (">", "<"):
                raise ValueError(f"{where}: 'sesoi' applies to '>'/'<' claims (a '~=' claim's tolerance is its bound)")
            if c["sesoi"] <= 0:
                raise ValueError(f"{where}: 'sesoi' must be > 0, got {c['sesoi']!r}")
            if not (c.get("sesoi_source") or paper.get("sesoi_rule")):
                raise ValueError(f"{where}: 'sesoi' needs a 'sesoi_source' (or the study's 'sesoi_rule')")
        elif learned and c["kind"] == "paper" and c["op"] in (">", "<"):
            raise ValueError(f"{where}: a paper ordering claim of a learned study declares its smallest effect of "
                             "interest: add 'sesoi' (units of lhs - rhs) and 'sesoi_source' (or set 'learned: false' "
                             "for a deterministic study)")
        if c["id"] in seen:
            raise ValueError(f"{where}: duplicate claim id")
        seen.add(c["id"])
        if c.get("paper") is not None and c["paper"] not in refs:
            raise ValueError(f"{where}: paper reference {c['paper']!r} not in references")
    for c in paper["claims"]:
        for cid in c.get("all_of", []):
            if cid not in seen or cid == c["id"] or "all_of" in next(x for x in paper["claims"] if x["id"] == cid):
                raise ValueError(f"{path}: claim {c['id']!r}: 'all_of' names {cid!r}, which is not another simple "
                                 "claim of this file")
    if any(c["kind"] == "paper" for c in paper["claims"]) and "abstract" not in paper:
        raise ValueError(f"{path}: a study with paper claims lists the abstract's testable statements under "
                         "'abstract:' (each with the 'claims' that test it or why it is 'untestable')")
    _check_abstract(path, paper, seen, refs)
    paper["_refs"] = refs
    return paper


def with_min_seeds(paper: Mapping, k: int) -> dict:
    """``paper`` as a ``k``-seed study would have declared it: every claim's ``min_seeds``
    capped at ``k`` (a claim asking for 5 runs of a 5-seed study asks for 3 of a 3-seed one)."""
    return {**paper, "claims": [{**c, "min_seeds": min(int(c.get("min_seeds", 3)), k)} for c in paper["claims"]]}


def _reference(ref: Mapping | None) -> dict | None:
    if ref is None:
        return None
    return {"id": ref["id"], "value": ref.get("value"), "short": ref.get("short") or ref.get("source"),
            "source": ref.get("source"), "verified": bool(ref.get("verified", False))}


def _not_run(row: dict, scales) -> dict:
    """``row`` as a claim not judged at this scale (listed, no numbers)."""
    return {**row, "test": None, "verdict": NOT_RUN, "unadjusted": NOT_RUN, "holm": NOT_RUN, "p": None,
            "ours": None, "scales": list(scales)}


def judge(paper: Mapping, metrics: Mapping, scale: str, alpha: float = ALPHA) -> tuple[list[dict], dict]:
    """Per-claim verdicts, Holm inside the paper claims, and the regime gates: (claims, regime)."""
    arms = metrics["arms"]
    out = []
    for c in paper["claims"]:
        if "all_of" in c:
            out.append(c)   # judged below, once its parts are
            continue
        where = f"claim {c['id']!r}"
        paired = bool(c.get("paired", paper.get("paired", False)))
        factor = float(c.get("rhs_scale", 1.0))
        rhs_text = c["rhs"] if factor == 1.0 else f"{factor:g} × {c['rhs']}"
        row = {"id": c["id"], "kind": c["kind"], "statement": c["statement"],
               "comparison": f"{c['lhs']} {c['op']} {rhs_text}", "note": c.get("note"),
               "gate": bool(c.get("gate", False)), "sesoi_source": c.get("sesoi_source"),
               "paper": _reference(paper["_refs"].get(c.get("paper")))}
        if "scales" in c and scale not in c["scales"]:
            out.append(_not_run(row, c["scales"]))
            continue
        lhs, rhs = resolve(c["lhs"], arms, where), scaled(resolve(c["rhs"], arms, where), factor)
        try:
            v, numbers = verdict(lhs, c["op"], rhs, min_seeds=int(c.get("min_seeds", 3)),
                                 atol=float(c.get("atol", 0.0)), rtol=float(c.get("rtol", 0.0)),
                                 paired=paired, sesoi=c.get("sesoi"), alpha=alpha)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        out.append({**row, "test": numbers.pop("test"), "unadjusted": v, "holm": v, "verdict": v,
                    "p": numbers.pop("p"), "ours": {"lhs": lhs.as_dict(), "rhs": rhs.as_dict(), **numbers}})
    by_id = {c["id"]: c for c in out if "all_of" not in c}
    out = [compound(c, by_id, scale, _reference(paper["_refs"].get(c.get("paper"))), alpha) if "all_of" in c else c
           for c in out]
    family = {c["id"]: c["p"] for c in out if c["kind"] == "paper" and c["verdict"] != NOT_RUN}
    passes = holm(family, alpha)
    for c in out:
        if c["id"] in passes and c["unadjusted"] in DECIDED and not passes[c["id"]]:
            c["holm"] = c["verdict"] = "inconclusive"
            c["ours"]["reason"] = f"Holm: p = {c['p']:.2g} does not pass within {len(family)} paper claims"
    gates = [{"id": c["id"], "comparison": c["comparison"], "verdict": c["verdict"],
              "diff": c["ours"]["diff"], "half_width_95": c["ours"]["half_width_95"]}
             for c in out if c["gate"] and c["verdict"] != NOT_RUN]
    in_regime = all(g["verdict"] == "reproduced" for g in gates) if gates else None
    if in_regime is False:
        for c in out:
            if c["kind"] == "paper" and c["verdict"] != NOT_RUN:
                c["verdict"] = OUT_OF_REGIME
    return out, {"in_regime": in_regime, "gates": gates}


def compound(c: Mapping, by_id: Mapping[str, dict], scale: str, ref: dict | None, alpha: float = ALPHA) -> dict:
    """The row of an ``all_of`` claim from its parts' per-claim verdicts (rule in the docstring)."""
    row = {"id": c["id"], "kind": c["kind"], "statement": c["statement"], "comparison": "all of: " +
           ", ".join(c["all_of"]), "note": c.get("note"), "gate": bool(c.get("gate", False)), "sesoi_source": None,
           "paper": ref, "all_of": list(c["all_of"])}
    parts = [by_id[cid] for cid in c["all_of"]]
    if ("scales" in c and scale not in c["scales"]) or any(p["unadjusted"] == NOT_RUN for p in parts):
        return _not_run(row, c.get("scales") or [])
    k, vs = len(parts), [p["unadjusted"] for p in parts]

    def p_of(part: dict, test: str) -> float:   # a part's p of one candidate test (1 where it has none)
        return (part["ours"] or {}).get("p_tests", {}).get(test, part["p"] if part["unadjusted"] == test else 1.0)

    p_repro = max(p_of(p, "reproduced") for p in parts)            # intersection-union test
    p_contra = min(1.0, k * min(p_of(p, "contradicted") for p in parts))   # Bonferroni over the parts
    if all(v == "reproduced" for v in vs):
        v, pv = "reproduced", p_repro
    elif p_contra < alpha:
        v, pv = "contradicted", p_contra
    elif all(v == "negligible" for v in vs):
        v, pv = "negligible", max(p_of(p, "negligible") for p in parts)
    else:
        v, pv = "inconclusive", min(p_repro, p_contra)
    # the part that decides the intersection: the least supported one not reproduced, else the least supported
    pending = [p for p in parts if p["unadjusted"] != "reproduced"] or parts
    worst = max(pending, key=lambda p: p_of(p, "reproduced"))
    ours = {**worst["ours"], "parts": {p["id"]: p["unadjusted"] for p in parts}, "weakest": worst["id"]}
    return {**row, "test": f"all of {k}", "unadjusted": v, "holm": v, "verdict": v, "p": pv, "ours": ours}


def leave_one_out(paper: Mapping, metrics: Mapping, scale: str, final: Mapping[str, str],
                  alpha: float = ALPHA) -> dict[str, dict] | None:
    """Per claim, the share of leave-one-seed-out subsets whose final verdict equals ``final[id]``
    (``None`` for a study with fewer than 3 seeds)."""
    ids, n = seed_ids(metrics)
    if n < 3:
        return None
    kept = {cid: 0 for cid, v in final.items() if v != NOT_RUN}
    capped = with_min_seeds(paper, n - 1)
    for drop in ids:
        sub, _ = judge(capped, restrict(metrics, set(ids) - {drop}, n), scale, alpha)
        for c in sub:
            if c["id"] in kept:
                kept[c["id"]] += c["verdict"] == final[c["id"]]
    return {cid: {"loo_kept": k / n, "subsets": n} for cid, k in kept.items()}


def evaluate(paper: Mapping, metrics: Mapping, scale: str, *, stability: bool = True,
             alpha: float = ALPHA) -> dict:
    """Verdicts for every claim of ``paper`` against aggregated ``metrics`` at ``scale``: per
    claim, Holm-adjusted, regime-gated, and (``stability``) their leave-one-seed-out share.

    Claims limited to other scales are listed with ``verdict: "not run"`` and no numbers.
    """
    out, regime = judge(paper, metrics, scale, alpha)
    loo = leave_one_out(paper, metrics, scale, {c["id"]: c["verdict"] for c in out}, alpha) if stability else None
    for c in out:
        s = (loo or {}).get(c["id"])
        c["loo_kept"] = None if s is None else s["loo_kept"]
        c["fragile"] = bool(s is not None and s["loo_kept"] < 1.0 and c["verdict"] in DECIDED)
    references = [_reference(r) | {"note": r.get("note")} for r in paper["_refs"].values()]
    return {"study": paper.get("study", metrics.get("study")), "scale": scale,
            "title": paper.get("title"), "arxiv": paper.get("arxiv"), "code": paper.get("code"),
            "note": paper.get("note"), "provenance": metrics.get("provenance"), "references": references,
            "alpha": alpha, "multiplicity": "holm (paper claims)", "regime": regime,
            "sesoi_rule": paper.get("sesoi_rule"), "abstract": list(paper.get("abstract") or []),
            "claims": out}


def counts(claims: list[Mapping], kind: str | None = None) -> dict[str, int]:
    """Final-verdict counts (out of regime and not run separately) over the claims of one kind, or all."""
    sel = [c for c in claims if kind is None or c["kind"] == kind]
    return {v: sum(c["verdict"] == v for c in sel) for v in STATUSES}


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
