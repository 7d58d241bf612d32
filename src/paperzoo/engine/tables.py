"""Claims tables as Markdown and CSV: one study's section, the overview of every study, the CSV.

The rendering of ``claims.json`` files (written by ``engine.claims``) for people: what
``engine.report`` writes to ``results/report/<scale>/claims.md`` and ``claims.csv``, the README's
overview and the per-study pages ``docs/claims/<slug>.md``. The HTML report reuses the cells.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .claims import ALPHA, DECIDED, KINDS, NOT_RUN, OUT_OF_REGIME, counts
from .io import read_json

SYMBOL = {"reproduced": "✅ reproduced", "negligible": "🟰 negligible", "inconclusive": "➖ inconclusive",
          "contradicted": "❌ contradicted", OUT_OF_REGIME: "🚫 out of regime", NOT_RUN: "⏸ not run"}
# The HTML report uses marks every text font has (headless Chromium on Debian has no emoji font:
# the emoji above rendered as empty boxes there); the verdict cell's colour comes from its class.
HTML_SYMBOL = {"reproduced": "✓ reproduced", "negligible": "≈ negligible", "inconclusive": "– inconclusive",
               "contradicted": "✗ contradicted", OUT_OF_REGIME: "⊘ out of regime", NOT_RUN: "· not run"}
# How to read a verdict; printed above the tables (the rule itself is in engine.claims).
LEGEND = (f"Each verdict is a one-sided test at α = {ALPHA} (its 95 % interval is shown); `>`/`<` with a tolerance "
          "test a margin (\"by more than tol\"), `~=` is an equivalence test (TOST). *Negligible*: the interval lies "
          "inside ±sesoi, the claim's smallest effect of interest, and no ordering is shown (no effect of the claimed "
          "size at this scale); an ordering shown with its interval inside ±sesoi is marked *within ±sesoi*. "
          "Paper claims are Holm-adjusted within each study (the headline counts the adjusted verdicts; a verdict "
          "changed by Holm shows the per-claim one beside it). A study whose regime gate (a check marked gate) is "
          "not reproduced has its paper claims *out of regime*: listed, counted in no decided total. *LOO* is the "
          "share of leave-one-seed-out subsets that keep the verdict; a verdict kept by fewer than all is "
          "⚠ fragile and may not survive a rerun on another CPU.")
KIND_TITLE = {"paper": "Paper claims", "prediction": "Our predictions and controls",
              "check": "Self-checks and bookkeeping"}


def _num(x: float | None, digits: int = 3) -> str:
    """Three significant digits (two for spreads); integers stay integers."""
    if x is None:
        return "—"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.{digits}g}"


def _side(side: dict) -> str:
    if side["ref"] is None:
        return _num(side["mean"])
    if side["n"] == 1 or side["std"] == 0:
        return f"{_num(side['mean'])} (n={side['n']})"
    return f"{_num(side['mean'])} ± {_num(side['std'], 2)} (n={side['n']})"


def _diff(c: dict) -> str:
    """The tested difference with its 95 % half-width, the margin or bound, the sesoi and p."""
    o = c["ours"]
    if o is None:
        return "—"
    text = f"{o['diff']:+.3g}"
    if o["half_width_95"] > 0:
        text += f" ± {_num(o['half_width_95'], 2)}"
    extra = []
    if o["tol"] > 0:
        extra.append(f"{'bound ±' if ' ~= ' in c['comparison'] else 'margin '}{_num(o['tol'], 2)}")
    if o.get("sesoi"):
        extra.append(f"sesoi {_num(o['sesoi'], 2)}")
    if c.get("p") is not None and c["verdict"] != NOT_RUN and o["half_width_95"] > 0:
        extra.append(f"p {c['p']:.2g}")
    return text + (f" ({', '.join(extra)})" if extra else "")


def _verdict_cell(c: dict, symbols: dict = SYMBOL) -> str:
    """The final verdict; the per-claim one beside it where Holm or the regime changed it; fragility."""
    text = symbols[c["verdict"]]
    if c["verdict"] == OUT_OF_REGIME:
        text += f" (per claim: {symbols[c.get('holm') or 'inconclusive']})"
    elif c.get("unadjusted") and c["unadjusted"] != c["verdict"]:
        text += f" (before Holm: {symbols[c['unadjusted']]})"
    if (c.get("ours") or {}).get("below_sesoi"):
        text += " · within ±sesoi"
    if c.get("gate"):
        text += " · gate"
    if c.get("fragile"):
        text += " · ⚠ fragile"
    return text


def _loo(c: dict) -> str:
    return "—" if c.get("loo_kept") is None else f"{c['loo_kept']:.0%}"


def _paper(p: dict | None) -> str:
    """Short reference cell: the paper's value (if any) and where it comes from."""
    if p is None:
        return "—"
    mark = "✓" if p.get("verified") else "unverified"
    value = p.get("value")
    value = "" if value is None or isinstance(value, (dict, list)) else f"{value}, "
    return f"{value}{p.get('short') or p.get('source')} ({mark})"


def _ours(c: dict) -> str:
    if c["ours"] is None:
        return f"not run at this scale (claimed at: {', '.join(c.get('scales') or [])})"
    text = f"{_side(c['ours']['lhs'])} vs {_side(c['ours']['rhs'])}"
    if c["ours"].get("parts"):   # a compound claim: its parts' verdicts, the numbers of the weakest
        parts = ", ".join(f"{k}: {v}" for k, v in c["ours"]["parts"].items())
        text = f"{parts}; weakest `{c['ours']['weakest']}`: {text}"
    return text


def _fragile(claims: list[dict], kind: str = "paper") -> int:
    """Decided verdicts of ``kind`` that a leave-one-seed-out subset does not keep."""
    return sum(bool(c.get("fragile")) and c["verdict"] in DECIDED for c in claims if c["kind"] == kind)


def _regime_text(doc: dict) -> str:
    """Why a study is out of regime: its failed gates with their numbers."""
    gates = [g for g in (doc.get("regime") or {}).get("gates", []) if g["verdict"] != "reproduced"]
    return "; ".join(f"gate `{g['id']}` ({g['comparison']}) {g['verdict']}, d = {g['diff']:+.3g}"
                     + (f" ± {_num(g['half_width_95'], 2)}" if g["half_width_95"] else "") for g in gates)


def _headline(claims: list[dict], doc: dict | None = None) -> str:
    k = counts(claims, "paper")
    n = sum(k.values()) - k[NOT_RUN]
    if k[OUT_OF_REGIME]:
        text = (f"**Paper claims: {k[OUT_OF_REGIME]} of {n} out of regime** — "
                f"{_regime_text(doc or {}) or 'a regime gate failed'}; listed with their per-claim verdicts, "
                "counted in no decided total")
    else:
        text = (f"**Paper claims (Holm-adjusted): {k['reproduced']} of {n} reproduced, {k['negligible']} negligible, "
                f"{k['contradicted']} contradicted, {k['inconclusive']} inconclusive**")
        if _fragile(claims):
            text += f" ({_fragile(claims)} of the decided ⚠ fragile)"
    if k[NOT_RUN]:
        text += f" ({k[NOT_RUN]} more only at other scales)"
    rest = []
    for kind in ("prediction", "check"):
        kc = counts(claims, kind)
        m = sum(kc.values()) - kc[NOT_RUN]
        if m:
            rest.append(f"{kind}s: {kc['reproduced']} of {m} reproduced, {kc['contradicted']} contradicted")
    return text + (". Our " + "; ".join(rest) + "." if rest else ".")


def rows(claims_files: list[Path]) -> list[dict]:
    out = []
    for f in claims_files:
        doc = read_json(f)
        for c in doc["claims"]:
            o = c["ours"] or {}
            out.append({"study": doc["study"], "scale": doc["scale"], "id": c["id"], "kind": c["kind"],
                        "statement": c["statement"], "comparison": c["comparison"], "test": c["test"] or "",
                        "lhs": _side(o["lhs"]) if o else "", "rhs": _side(o["rhs"]) if o else "",
                        "diff": o.get("diff", ""), "half_width_95": o.get("half_width_95", ""),
                        "tol": o.get("tol", ""), "sesoi": o.get("sesoi") or "", "p": "" if c.get("p") is None else c["p"],
                        "paper": _paper(c["paper"]), "unadjusted": c.get("unadjusted", ""), "holm": c.get("holm", ""),
                        "verdict": c["verdict"], "gate": bool(c.get("gate")),
                        "loo_kept": "" if c.get("loo_kept") is None else c["loo_kept"],
                        "fragile": bool(c.get("fragile")), "note": c.get("note") or ""})
    return out


def _md_table(claims: list[dict]) -> list[str]:
    lines = ["| claim | ours: lhs vs rhs | difference ± 95 % | test | paper | verdict | LOO |",
             "|---|---|---|---|---|---|---|"]
    for c in claims:
        cell = f"{c['statement']} <br>`{c['comparison']}`"
        if c.get("note"):
            cell += f" <br>*{' '.join(c['note'].split())}*"
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in [
            cell, _ours(c), _diff(c), c["test"] or "—", _paper(c["paper"]), _verdict_cell(c), _loo(c)]) + " |")
    return lines


def provenance_cells(doc: dict) -> tuple[str, str]:
    """(runs and their summed wall minutes, the commit(s) they ran from) of a claims file;
    ``—`` for a claims file aggregated before runs carried provenance."""
    p = doc.get("provenance")
    if not p:
        return "—", "—"
    commits = [c[:7] for c in p.get("git_commits", [])]
    commit = ", ".join(commits) if len(commits) <= 2 else f"{len(commits)} commits"
    return f"{p['runs']} runs, {p['run_wall_s'] / 60:.0f} min", commit + (" (modified tree)" if p.get("git_dirty") else "")


OVERVIEW_HEAD = ["study", "paper claims", "✅ reproduced", "🟰 negligible", "❌ contradicted", "➖ inconclusive",
                 "🚫 out of regime", "⚠ fragile", "predictions ✅/n", "checks ✅/n", "runs (Σ wall)", "commit"]


def overview_counts(doc: dict) -> list[int]:
    """Paper claims judged, then reproduced, negligible, contradicted, inconclusive, out of regime
    (final verdicts) and the decided ones that are fragile."""
    k = counts(doc["claims"], "paper")
    return [sum(k.values()) - k[NOT_RUN], k["reproduced"], k["negligible"], k["contradicted"], k["inconclusive"],
            k[OUT_OF_REGIME], _fragile(doc["claims"])]


def overview_cells(doc: dict) -> list[str]:
    """One study's overview row (after its name): paper-claim counts, predictions and checks, provenance."""
    cells = [str(x) for x in overview_counts(doc)]
    for kind in ("prediction", "check"):
        kc = counts(doc["claims"], kind)
        cells.append(f"{kc['reproduced']}/{sum(kc.values()) - kc[NOT_RUN]}")
    return cells + list(provenance_cells(doc))


def overview(docs: list[dict], link: str | None = None, expected: tuple[str, ...] = ()) -> list[str]:
    """One row per study: its paper claims' final verdicts, then predictions and checks, then its
    runs' summed wall time and commit; a total row over the studies. ``link`` (a format string
    with ``{study}``) makes each study's name a link to its page; each of the ``expected``
    studies without a claims file gets a "not built" row."""
    lines = ["| " + " | ".join(OVERVIEW_HEAD) + " |", "|" + "---|" * len(OVERVIEW_HEAD)]
    for doc in docs:
        name = f"`{doc['study']}`" if link is None else f"[`{doc['study']}`]({link.format(study=doc['study'])})"
        lines.append("| " + " | ".join([name, *overview_cells(doc)]) + " |")
    for slug in not_built(docs, expected):
        lines.append(f"| `{slug}` | not built |" + " — |" * (len(OVERVIEW_HEAD) - 2))
    if len(docs) > 1:
        total = [sum(x) for x in zip(*(overview_counts(d) for d in docs))]
        lines.append("| **all** | " + " | ".join(f"**{x}**" for x in total) + " |" + " |" * 4)
    return lines


def coverage(doc: dict) -> list[str]:
    """The abstract's testable statements and the claims (with their final verdicts) that test each."""
    verdicts = {c["id"]: c["verdict"] for c in doc["claims"]}
    kinds = {c["id"]: c["kind"] for c in doc["claims"]}
    lines = ["| abstract statement | tested by |", "|---|---|"]
    for a in doc.get("abstract") or []:
        if "claims" in a:
            cell = "<br>".join(f"`{cid}` ({kinds[cid]}): {SYMBOL[verdicts[cid]]}" for cid in a["claims"])
        else:
            cell = f"*{' '.join(str(a['untestable']).split())}*"
        lines.append(f"| {' '.join(str(a['text']).split())} | {cell} |".replace("\n", " "))
    return lines


def not_built(docs: list[dict], expected: tuple[str, ...] = ()) -> list[str]:
    """The ``expected`` studies (the caller's list, e.g. every study of the project) without a
    claims file in this report (not built yet, or not run at this scale)."""
    have = {d["study"] for d in docs}
    return [s for s in expected if s not in have]


def study_section(doc: dict, heading: str = "###") -> list[str]:
    """One study's claims: headline, paper claims, then predictions and checks (folded), the
    abstract's coverage, the sesoi rule and the references."""
    lines = [f"{heading} `{doc['study']}` — {doc.get('title') or ''} (arXiv {doc.get('arxiv')}), scale `{doc['scale']}`",
             "", _headline(doc["claims"], doc), ""]
    for kind in KINDS:
        sel = [c for c in doc["claims"] if c["kind"] == kind]
        if not sel:
            continue
        if kind == "paper":
            lines += _md_table(sel) + [""]
        else:
            lines += [f"<details><summary>{KIND_TITLE[kind]} ({len(sel)})</summary>", ""]
            lines += _md_table(sel) + ["", "</details>", ""]
    if doc.get("abstract"):
        lines += ["<details><summary>Abstract coverage: what the abstract states and which claims test it</summary>",
                  "", *coverage(doc), "", "</details>", ""]
    if doc.get("sesoi_rule"):
        lines += [f"*Smallest effects of interest:* {' '.join(str(doc['sesoi_rule']).split())}", ""]
    refs = [r for r in doc.get("references") or []]
    if refs:
        lines += ["<details><summary>References</summary>", ""]
        for r in refs:
            mark = "verified" if r.get("verified") else "not verified"
            lines.append(f"- `{r['id']}`: {' '.join(str(r.get('source')).split())} ({mark})"
                         + (f" — {' '.join(r['note'].split())}" if r.get("note") else ""))
        lines += ["", "</details>", ""]
    return lines


def markdown(claims_files: list[Path], expected: tuple[str, ...] = ()) -> str:
    """The whole report: the overview, the legend, every study's section."""
    docs = [read_json(f) for f in claims_files]
    lines = overview(docs, expected=expected) + ["", LEGEND, ""]
    for doc in docs:
        lines += study_section(doc)
    return "\n".join(lines)


def front_page(docs: list[dict], link: str = "docs/claims/{study}.md") -> str:
    """The README's claims section: the overview, each study linking to its page, and the legend."""
    return "\n".join(overview(docs, link) + ["", LEGEND, ""])


def study_page(doc: dict, source: str) -> str:
    """``docs/claims/<slug>.md``: one study's section as a page of its own."""
    return "\n".join([f"<!-- generated from {source} by `paperzoo report readme`; do not edit -->",
                      "", *study_section(doc, heading="#"), LEGEND, ""])


def to_csv(claims_files: list[Path]) -> str:
    buf = io.StringIO()
    fields = ["study", "scale", "id", "kind", "statement", "comparison", "test", "lhs", "rhs", "diff",
              "half_width_95", "tol", "sesoi", "p", "paper", "unadjusted", "holm", "verdict", "gate", "loo_kept",
              "fragile", "note"]
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows(claims_files))
    return buf.getvalue()
