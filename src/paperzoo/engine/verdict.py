"""The statistics of one verdict: sides, intervals, p-values, the verdict and Holm's procedure.

The rule these functions implement is stated once, in the docstring of ``engine.claims``; this
module holds its arithmetic (``engine.claims`` re-exports every name).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from scipy import stats

ALPHA = 0.025          # one-sided, per verdict
LEVEL = 1 - 2 * ALPHA  # the two-sided interval every verdict reads (95 %)
VERDICTS = ("reproduced", "negligible", "inconclusive", "contradicted")
DECIDED = ("reproduced", "negligible", "contradicted")
OPS = (">", "<", "~=", "==")


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


def welch_se(lhs: Side, rhs: Side) -> tuple[float, float]:
    """(se, df) of mean(lhs) − mean(rhs), Welch–Satterthwaite; (0, inf) when neither side varies.

    Raises ValueError for a metric side with one run beside a side with several: one run of a
    stochastic arm has an unknown spread, not a zero one."""
    metric = [s for s in (lhs, rhs) if not math.isinf(s.n)]
    if len(metric) == 2 and min(s.n for s in metric) < 2 <= max(s.n for s in metric):
        one = next(s for s in metric if s.n < 2)
        raise ValueError(f"Welch interval: {one.ref} has {int(one.n)} run beside a side with several; a single run "
                         "of a stochastic arm has an unknown spread (run more seeds, or pair the claim)")
    noisy = [s for s in metric if s.std > 0]  # n ≥ 2 here
    terms = [s.std**2 / s.n for s in noisy]  # variance of each side's mean
    if not terms:
        return 0.0, math.inf
    se = math.sqrt(sum(terms))
    dof = se**4 / sum(v**2 / (s.n - 1) for v, s in zip(terms, noisy))
    return se, dof


def half_width(lhs: Side, rhs: Side, level: float = LEVEL) -> tuple[float, float]:
    """(se, t·se) of mean(lhs) − mean(rhs) with Welch–Satterthwaite degrees of freedom."""
    se, dof = welch_se(lhs, rhs)
    return se, (float(stats.t.ppf(0.5 + level / 2, dof)) * se if se > 0 else 0.0)


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


def paired_se(diffs: list[float]) -> tuple[float, float]:
    """(se, df) of the mean of per-seed differences; se = 0 for one pair or identical ones."""
    n = len(diffs)
    if n < 2:
        return 0.0, math.inf
    m = sum(diffs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in diffs) / (n - 1))
    return sd / math.sqrt(n), float(n - 1)


def paired_half_width(diffs: list[float], level: float = LEVEL) -> tuple[float, float]:
    """(se, t·se) of the mean of per-seed differences: one-sample Student interval, df = n − 1."""
    se, dof = paired_se(diffs)
    return se, (float(stats.t.ppf(0.5 + level / 2, dof)) * se if se > 0 else 0.0)


def choose_test(lhs: Side, op: str, rhs: Side, paired: bool) -> str:
    if op == "==":
        return "exact"
    constant = math.isinf(lhs.n) or math.isinf(rhs.n)
    if constant:
        return "one-sample"
    return "paired" if paired else "welch"


def p_above(x: float, se: float, dof: float) -> float:
    """p-value of H0: δ ≤ x against δ > x for an estimate d with (se, df), given ``x = d − bound``
    already subtracted: survival of the t statistic. With se = 0 the test is exact: 0 when the
    strict inequality x > 0 holds, else 1."""
    if se == 0:
        return 0.0 if x > 0 else 1.0
    return float(stats.t.sf(x / se, dof))


def candidate_tests(d: float, se: float, dof: float, op: str, tol: float, sesoi: float | None) -> dict[str, float]:
    """The p-value of each verdict a claim can reach (the rule in the module docstring)."""
    if op == "~=":
        return {"reproduced": max(p_above(d + tol, se, dof), p_above(tol - d, se, dof)),
                "contradicted": min(p_above(d - tol, se, dof), p_above(-d - tol, se, dof))}
    signed = d if op == ">" else -d
    out = {"reproduced": p_above(signed - tol, se, dof), "contradicted": p_above(tol - signed, se, dof)}
    if sesoi is not None:
        out["negligible"] = max(p_above(d + sesoi, se, dof), p_above(sesoi - d, se, dof))
    return out


def verdict(lhs: Side, op: str, rhs: Side, *, min_seeds: int = 3, atol: float = 0.0, rtol: float = 0.0,
            paired: bool = False, sesoi: float | None = None, alpha: float = ALPHA) -> tuple[str, dict]:
    """Apply the module's verdict rule; return (verdict, numbers used incl. ``test`` and ``p``)."""
    if op not in OPS:
        raise ValueError(f"op {op!r} not one of {OPS}")
    test = choose_test(lhs, op, rhs, paired)
    if test == "paired":
        diffs = paired_differences(lhs, rhs)
        d = sum(diffs) / len(diffs)
        se, dof = paired_se(diffs)
    else:
        d = lhs.mean - rhs.mean
        se, dof = (0.0, math.inf) if test == "exact" else welch_se(lhs, rhs)
    h = float(stats.t.ppf(1 - alpha, dof)) * se if se > 0 else 0.0
    tol = atol + rtol * abs(rhs.mean)
    numbers = {"test": test, "diff": d, "se": se, "df": None if math.isinf(dof) else dof,
               "half_width_95": h, "tol": tol, "sesoi": sesoi}
    if any(s.n < min_seeds for s in (lhs, rhs)):
        return "inconclusive", {**numbers, "p": 1.0, "reason": f"fewer than {min_seeds} runs"}
    if op == "==":
        if lhs.std > 0 or rhs.std > 0:
            return "inconclusive", {**numbers, "p": 1.0, "reason": "'==' needs deterministic sides"}
        return ("reproduced" if d == 0 else "contradicted"), {**numbers, "p": 0.0}
    ps = candidate_tests(d, se, dof, op, tol, sesoi)
    numbers["p_tests"] = ps
    small = "negligible" in ps and ps["negligible"] < alpha
    for v in ("reproduced", "contradicted", "negligible"):   # an ordering first: see the docstring
        if ps.get(v, 1.0) < alpha:
            if small and v != "negligible":
                numbers["below_sesoi"] = True
                numbers["reason"] = "the ordering holds, but the whole interval lies within ±sesoi"
            return v, {**numbers, "p": ps[v]}
    return "inconclusive", {**numbers, "p": min(ps.values())}


def holm(ps: Mapping[str, float], alpha: float = ALPHA) -> dict[str, bool]:
    """Holm's step-down over a family: ``{id: passes}``. Sorted ascending, the i-th (1-based) of
    m passes while every p_(j≤i) < α / (m − j + 1)."""
    m, out, going = len(ps), {}, True
    for i, (cid, p) in enumerate(sorted(ps.items(), key=lambda kv: (kv[1], kv[0]))):
        going = going and p < alpha / (m - i)
        out[cid] = going
    return out
