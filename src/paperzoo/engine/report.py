"""The report: every study's claims table and figures, as Markdown, CSV and HTML.

``paperzoo report build`` writes ``results/report/<scale>/claims.md``,
``claims.csv`` and ``index.html`` from the studies' ``claims.json`` and figures.
``paperzoo report readme`` writes the README's claims section (between the
``<!-- claims:start -->`` / ``<!-- claims:end -->`` markers: the overview, each study linking to
its page) and one page per study, ``docs/claims/<slug>.md``, from the studies' ``claims.json`` at
a scale, and the cost section from ``cost_summary.md``; no number in the README is typed by hand.
``paperzoo diff OTHER`` compares this checkout's verdicts with those of
another results tree (a rerun on another machine, another commit): which verdicts changed and
how far each tested difference moved, in units of its 95 % half-width.
"""
from __future__ import annotations

import argparse
import html
import math
import os
from pathlib import Path

from .claims import KINDS, NOT_RUN
from .io import read_json, write_text
from .tables import (HTML_SYMBOL, KIND_TITLE, LEGEND, OVERVIEW_HEAD, SYMBOL, _diff, _headline, _loo, _num,  # noqa: F401
                     _ours, _paper, _verdict_cell, front_page, markdown, not_built, overview_cells, study_page,
                     to_csv)

START, END = "<!-- claims:start -->", "<!-- claims:end -->"
CSS = ("body{font-family:system-ui,sans-serif;max-width:80em;margin:auto;padding:0 1em;line-height:1.4}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 6px;font-size:90%;"
       "vertical-align:top}th{background:#f0f0f0}.reproduced{background:#e6ffe6}.contradicted{background:#ffe6e6}"
       ".inconclusive{background:#f7f7f7}.negligible{background:#eef3ff}.outofregime{background:#fff6dd}.notrun{color:#888}code{font-size:90%}.note{color:#555;font-style:italic}.why{color:#777;font-size:85%}"
       "figure{display:inline-block;width:31%;margin:4px;vertical-align:top}figure img{width:100%}"
       "figcaption{font-size:85%}summary{cursor:pointer;font-weight:600;margin:.5em 0}")


def why_command(study: str, claim_id: str, scale: str) -> str:
    """The command that traces one claim row to its per-seed run files and their provenance."""
    return f"paperzoo why {study} {claim_id}" + ("" if scale == "mini" else f" --scale {scale}")


def _html_table(claims: list[dict], study: str, scale: str) -> list[str]:
    parts = ["<table><tr><th>claim</th><th>ours: lhs vs rhs</th><th>difference ± 95 %</th><th>test</th>"
             "<th>paper</th><th>verdict</th><th>LOO</th></tr>"]
    for c in claims:
        cls = "notrun" if c["verdict"] == NOT_RUN else c["verdict"].replace(" ", "")
        note = f"<div class='note'>{html.escape(' '.join(c['note'].split()))}</div>" if c.get("note") else ""
        why = f"<div class='why'>trace: <code>{html.escape(why_command(study, c['id'], scale))}</code></div>"
        cells = [f"{html.escape(c['statement'])}<br><code>{html.escape(c['comparison'])}</code>{note}{why}",
                 html.escape(_ours(c)), html.escape(_diff(c)), html.escape(c["test"] or "—"),
                 html.escape(_paper(c["paper"])), html.escape(_verdict_cell(c, HTML_SYMBOL)), _loo(c)]
        parts.append(f"<tr class='{cls}' id='{html.escape(c['id'])}'>"
                     + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    parts.append("</table>")
    return parts


def to_html(claims_files: list[Path], figures: list[Path], out_dir: Path, expected: tuple[str, ...] = ()) -> str:
    docs = [read_json(f) for f in claims_files]
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>paperzoo report</title>",
             f"<style>{CSS}</style></head><body><h1>paperzoo: claims and figures</h1>",
             "<p>Verdicts are computed from the runs by the rule in <code>paperzoo.engine.claims</code>. "
             f"{html.escape(LEGEND.replace('`', '').replace('*', '').replace(chr(92), ''))} Only <em>paper</em> claims "
             "count in the headline; our predictions and self-checks follow them.</p>",
             "<h2>Overview</h2><table><tr>"
             + "".join(f"<th>{html.escape(h.split(' ', 1)[1] if not h[0].isascii() else h)}</th>" for h in OVERVIEW_HEAD)
             + "</tr>"]
    for doc in docs:
        cells = [f"<a href='#{doc['study']}'>{html.escape(doc['study'])}</a>",
                 *(html.escape(x) for x in overview_cells(doc))]
        parts.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    for slug in not_built(docs, expected):
        parts.append(f"<tr class='notrun'><td>{html.escape(slug)}</td><td colspan='{len(OVERVIEW_HEAD) - 1}'>not built "
                     "(or not run at this scale)</td></tr>")
    parts.append("</table>")
    for doc in docs:
        slug = doc["study"]
        parts.append(f"<h2 id='{slug}'>{html.escape(slug)} — {html.escape(doc.get('title') or '')} "
                     f"(arXiv {html.escape(str(doc.get('arxiv')))}), scale {html.escape(doc['scale'])}</h2>")
        if doc.get("note"):
            parts.append(f"<p class='note'>{html.escape(' '.join(doc['note'].split()))}</p>")
        parts.append(f"<p>{html.escape(_headline(doc['claims'], doc).replace('**', '').replace('`', ''))}</p>")
        for kind in KINDS:
            sel = [c for c in doc["claims"] if c["kind"] == kind]
            if not sel:
                continue
            if kind == "paper":
                parts += [f"<h3>{KIND_TITLE[kind]}</h3>", *_html_table(sel, slug, doc["scale"])]
            else:
                parts += [f"<details><summary>{KIND_TITLE[kind]} ({len(sel)})</summary>",
                          *_html_table(sel, slug, doc["scale"]),
                          "</details>"]
        if doc.get("abstract"):
            parts.append("<details><summary>Abstract coverage</summary><table><tr><th>abstract statement</th>"
                         "<th>tested by</th></tr>")
            verdicts = {c["id"]: c["verdict"] for c in doc["claims"]}
            for a in doc["abstract"]:
                cell = ("<br>".join(f"<code>{html.escape(cid)}</code>: {html.escape(HTML_SYMBOL[verdicts[cid]])}"
                                    for cid in a["claims"]) if "claims" in a
                        else f"<em>{html.escape(str(a['untestable']))}</em>")
                parts.append(f"<tr><td>{html.escape(str(a['text']))}</td><td>{cell}</td></tr>")
            parts.append("</table></details>")
        refs = doc.get("references") or []
        if refs:
            parts.append("<details><summary>References</summary><ul>")
            for r in refs:
                mark = "verified" if r.get("verified") else "not verified"
                note = f" — {html.escape(' '.join(r['note'].split()))}" if r.get("note") else ""
                parts.append(f"<li><code>{html.escape(r['id'])}</code>: {html.escape(str(r.get('source')))} "
                             f"({mark}){note}</li>")
            parts.append("</ul></details>")
        figs = [p for p in figures if f"/{slug}/" in p.as_posix()]
        if figs:
            parts.append("<h3>Figures</h3>")
        for fig in figs:
            rel = html.escape(os.path.relpath(fig, out_dir))
            parts.append(f"<figure><a href='{rel}'><img src='{rel}' alt='{html.escape(fig.stem)}'></a>"
                         f"<figcaption>{html.escape(fig.stem)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


COST_START, COST_END = "<!-- cost:start -->", "<!-- cost:end -->"


def _replace_section(text: str, start: str, end: str, md: Path | str, where: Path, source: str | None = None) -> str:
    """``text`` with what stands between the markers replaced by ``md`` (a file, or Markdown with
    its ``source`` named)."""
    if start not in text or end not in text:
        raise ValueError(f"{where}: markers {start} / {end} not found")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body, source = (md.read_text(), md.as_posix()) if isinstance(md, Path) else (md, source)
    return f"{head}{start}\n<!-- generated from {source}; do not edit -->\n\n{body.strip()}\n\n{end}{tail}"


def update_readme(readme: Path, claims_md: Path | str, cost_md: Path | None = None, source: str | None = None) -> bool:
    """Replace the README's generated claims section (a file, or Markdown generated from ``source``)
    and, when ``cost_md`` exists and the README has the cost markers, its generated cost section;
    return True if it changed."""
    text = readme.read_text()
    new = _replace_section(text, START, END, claims_md, readme, source)
    if cost_md is not None and cost_md.exists() and COST_START in new:
        new = _replace_section(new, COST_START, COST_END, cost_md, readme)
    if new != text:
        write_text(readme, new)
    return new != text


def verdict_diff(here: Path, other: Path, scale: str) -> tuple[str, int]:
    """Compare every claim of ``here/<study>/<scale>/claims.json`` with the same claim in
    ``other`` (two results folders). Returns a Markdown report and the number of claims that
    ran in both whose verdict changed.

    Per study: the claims that ran in both, how many kept their verdict, and a row per claim
    whose verdict changed (or whose difference moved by more than its own 95 % half-width here,
    the run-to-run resolution the verdict assumed). A study missing on either side is listed,
    not skipped silently.
    """
    lines = [f"Verdicts at scale `{scale}`: `{here}` (here) against `{other}` (other).", "",
             "| study | claims in both | same verdict | changed | moved > 1 half-width |", "|---|---|---|---|---|"]
    rows_out: list[str] = []
    changed_total = 0
    studies = sorted({p.parts[-3] for root in (here, other) for p in root.glob(f"*/{scale}/claims.json")})
    for study in studies:
        a, b = (root / study / scale / "claims.json" for root in (here, other))
        if not (a.exists() and b.exists()):
            lines.append(f"| `{study}` | only {'here' if a.exists() else 'in other'} | | | |")
            continue
        theirs = {c["id"]: c for c in read_json(b)["claims"]}
        both = same = moved = 0
        for c in read_json(a)["claims"]:
            o = theirs.get(c["id"])
            if o is None or NOT_RUN in (c["verdict"], o["verdict"]) or not c.get("ours") or not o.get("ours"):
                continue
            both += 1
            d1, d2, hw = c["ours"].get("diff"), o["ours"].get("diff"), c["ours"].get("half_width_95") or 0.0
            if d1 is None or d2 is None or not hw:
                # a deterministic claim (no spread): only a change beyond float round-off counts
                shift = None
                far = not (d1 == d2 or (d1 is not None and d2 is not None
                                        and math.isclose(d1, d2, rel_tol=1e-9, abs_tol=1e-12)))
            else:
                shift = (d2 - d1) / hw
                far = abs(shift) > 1
            moved += far
            if c["verdict"] == o["verdict"]:
                same += 1
                if not far:
                    continue
            changed_total += c["verdict"] != o["verdict"]
            rows_out.append(f"| `{study}` | {c['kind']} | `{c['comparison']}` | {SYMBOL[c['verdict']]} | "
                            f"{SYMBOL[o['verdict']]} | {_num(d1)} → {_num(d2)} | {'—' if shift is None else f'{shift:+.1f}'} |")
        lines.append(f"| `{study}` | {both} | {same} | {both - same} | {moved} |")
    lines += ["", f"{changed_total} verdict(s) changed."]
    if rows_out:
        lines += ["", "Claims whose verdict changed or whose difference moved by more than one 95 % half-width "
                      "(shift: the change of the difference over this side's half-width; — where the claim has no spread and the "
                      "difference changed beyond float round-off):", "",
                  "| study | kind | claim | here | other | difference here → other | shift |",
                  "|---|---|---|---|---|---|---|", *rows_out]
    return "\n".join(lines) + "\n", changed_total


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write claims.md, claims.csv and index.html")
    b.add_argument("--claims", nargs="+", type=Path, required=True)
    b.add_argument("--figures", nargs="*", type=Path, default=[])
    b.add_argument("--expect", nargs="*", default=[], metavar="STUDY",
                   help="every study the report should list: those without a claims file get a 'not built' row")
    b.add_argument("--out-dir", type=Path, required=True)
    r = sub.add_parser("readme", help="copy a scale's claims.md (and cost_summary.md or cost.md, written by engine.ledger) "
                                         "into README.md")
    r.add_argument("--readme", type=Path, default=Path("README.md"))
    r.add_argument("--scale", default="mini")
    d = sub.add_parser("diff", help="compare this checkout's verdicts with another results folder's "
                                    "(a rerun elsewhere); exit code 1 if a verdict changed")
    d.add_argument("other", type=Path, help="the other results folder (holding <study>/<scale>/claims.json)")
    d.add_argument("--results", type=Path, default=Path("results"), help="this side's results folder")
    d.add_argument("--scale", default="mini")
    d.add_argument("--out", type=Path, help="also write the report here (Markdown)")
    args = ap.parse_args(argv)
    if args.cmd == "diff":
        if not args.other.is_dir():
            raise SystemExit(f"diff: {args.other} is not a folder (expected a results folder with "
                             f"<study>/{args.scale}/claims.json files)")
        text, changed = verdict_diff(args.results, args.other, args.scale)
        if args.out:
            write_text(args.out, text)
        print(text, end="")
        raise SystemExit(1 if changed else 0)
    if args.cmd == "build":
        claims = sorted(args.claims)
        write_text(args.out_dir / "claims.md", markdown(claims, tuple(args.expect)))
        write_text(args.out_dir / "claims.csv", to_csv(claims))
        write_text(args.out_dir / "index.html", to_html(claims, sorted(args.figures), args.out_dir, tuple(args.expect)))
    else:
        out = Path("results/report") / args.scale
        files = sorted(Path("results").glob(f"*/{args.scale}/claims.json"))
        if not files:
            raise SystemExit(f"readme: no results/<study>/{args.scale}/claims.json (run the studies first)")
        docs = [read_json(f) for f in files]
        pages = args.readme.parent / "docs" / "claims"
        for doc, f in zip(docs, files):
            write_text(pages / f"{doc['study']}.md", study_page(doc, f.as_posix()))
        summary = out / "cost_summary.md"
        changed = update_readme(args.readme, front_page(docs), summary if summary.exists() else out / "cost.md",
                                source=f"results/<study>/{args.scale}/claims.json")
        print(f"{args.readme}: {'updated' if changed else 'already up to date'}; {len(docs)} pages in {pages}")


if __name__ == "__main__":
    main()
