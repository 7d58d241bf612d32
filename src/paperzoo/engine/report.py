"""The report: every study's claims table and figures, as Markdown, CSV and HTML.

``python -m paperzoo.engine.report build`` writes ``results/report/<scale>/claims.md``,
``claims.csv`` and ``index.html`` from the studies' ``claims.json`` and figures.
``python -m paperzoo.engine.report readme`` copies the generated ``claims.md`` of a scale
into README.md between the ``<!-- claims:start -->`` / ``<!-- claims:end -->`` markers,
so no number in the README is typed by hand.
"""
from __future__ import annotations

import argparse
import csv
import html
import io
import os
from pathlib import Path

from .io import read_json, write_text

START, END = "<!-- claims:start -->", "<!-- claims:end -->"
SYMBOL = {"reproduced": "✅ reproduced", "inconclusive": "➖ inconclusive", "contradicted": "❌ contradicted"}


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}"


def _side(side: dict) -> str:
    if side["ref"] is None:
        return _fmt(side["mean"])
    return f"{_fmt(side['mean'])} ± {_fmt(side['std'])} (n={side['n']})"


def _paper(p: dict | None) -> str:
    if p is None:
        return "—"
    tag = "" if p.get("verified") else " (not verified)"
    value = "qualitative" if p.get("value") is None else p["value"]
    return f"{value} [{p.get('source')}]{tag}"


def rows(claims_files: list[Path]) -> list[dict]:
    out = []
    for f in claims_files:
        doc = read_json(f)
        for c in doc["claims"]:
            out.append({"study": doc["study"], "scale": doc["scale"], "id": c["id"],
                        "statement": c["statement"], "comparison": c["comparison"],
                        "lhs": _side(c["ours"]["lhs"]), "rhs": _side(c["ours"]["rhs"]),
                        "paper": _paper(c["paper"]), "verdict": c["verdict"]})
    return out


def markdown(claims_files: list[Path]) -> str:
    lines = []
    for f in claims_files:
        doc = read_json(f)
        counts = {v: sum(c["verdict"] == v for c in doc["claims"]) for v in SYMBOL}
        lines += [f"### `{doc['study']}` — {doc.get('title') or ''} (arXiv {doc.get('arxiv')}), scale `{doc['scale']}`",
                  "", " · ".join(f"{n} {v}" for v, n in counts.items()), "",
                  "| claim | comparison | ours: lhs | ours: rhs | paper | verdict |",
                  "|---|---|---|---|---|---|"]
        for c in doc["claims"]:
            lines.append("| " + " | ".join([
                c["statement"].replace("|", "\\|"), f"`{c['comparison']}`", _side(c["ours"]["lhs"]),
                _side(c["ours"]["rhs"]), _paper(c["paper"]), SYMBOL[c["verdict"]]]) + " |")
        lines.append("")
    return "\n".join(lines)


def to_csv(claims_files: list[Path]) -> str:
    buf = io.StringIO()
    fields = ["study", "scale", "id", "statement", "comparison", "lhs", "rhs", "paper", "verdict"]
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows(claims_files))
    return buf.getvalue()


def to_html(claims_files: list[Path], figures: list[Path], out_dir: Path) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>paperzoo report</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px;font-size:90%}img{max-width:48%;margin:4px}"
             ".reproduced{background:#e6ffe6}.contradicted{background:#ffe6e6}.inconclusive{background:#f4f4f4}</style>",
             "</head><body><h1>paperzoo: claims and figures</h1>"]
    for f in claims_files:
        doc = read_json(f)
        slug = doc["study"]
        parts.append(f"<h2 id='{slug}'>{html.escape(slug)} — {html.escape(doc.get('title') or '')} "
                     f"(arXiv {html.escape(str(doc.get('arxiv')))}), scale {html.escape(doc['scale'])}</h2>")
        parts.append("<table><tr><th>claim</th><th>comparison</th><th>ours: lhs</th><th>ours: rhs</th>"
                     "<th>paper</th><th>verdict</th></tr>")
        for r in rows([f]):
            parts.append(f"<tr class='{r['verdict']}'>" + "".join(
                f"<td>{html.escape(str(r[k]))}</td>"
                for k in ("statement", "comparison", "lhs", "rhs", "paper", "verdict")) + "</tr>")
        parts.append("</table>")
        for fig in [p for p in figures if f"/{slug}/" in p.as_posix()]:
            rel = os.path.relpath(fig, out_dir)
            parts.append(f"<figure style='display:inline-block;width:48%'><img style='max-width:100%' "
                         f"src='{html.escape(rel)}'><figcaption>{html.escape(fig.stem)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def update_readme(readme: Path, claims_md: Path) -> bool:
    """Replace the README's generated claims section; return True if it changed."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n<!-- generated from {claims_md.as_posix()}; do not edit -->\n\n{claims_md.read_text().strip()}\n\n{END}{tail}"
    if new != text:
        write_text(readme, new)
    return new != text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write claims.md, claims.csv and index.html")
    b.add_argument("--claims", nargs="+", type=Path, required=True)
    b.add_argument("--figures", nargs="*", type=Path, default=[])
    b.add_argument("--out-dir", type=Path, required=True)
    r = sub.add_parser("readme", help="copy a scale's claims.md into README.md")
    r.add_argument("--readme", type=Path, default=Path("README.md"))
    r.add_argument("--scale", default="mini")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        claims = sorted(args.claims)
        write_text(args.out_dir / "claims.md", markdown(claims))
        write_text(args.out_dir / "claims.csv", to_csv(claims))
        write_text(args.out_dir / "index.html", to_html(claims, sorted(args.figures), args.out_dir))
    else:
        changed = update_readme(args.readme, Path("results/report") / args.scale / "claims.md")
        print(f"{args.readme}: {'updated' if changed else 'already up to date'}")


if __name__ == "__main__":
    main()
