"""The README's two commands and its generated claims section stay true."""
import re
from pathlib import Path

import pytest

from paperzoo.engine.report import END, START

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second():
    setup = [b.strip() for b in bash_blocks(README) if "python3 -m venv" in b]
    assert len(setup) == 2, setup
    main, tests = setup
    assert main.endswith("snakemake --cores all")
    assert tests.endswith("pytest")
    assert tests in (REPO / ".ci" / "run").read_text()


def test_readme_claims_section_and_study_pages_are_generated():
    from paperzoo.engine.io import read_json
    from paperzoo.engine.tables import front_page, study_page

    files = sorted((REPO / "results").glob("*/mini/claims.json"))
    if not files:
        pytest.skip("no mini results committed yet")
    docs = [read_json(f) for f in files]
    section = README.split(START, 1)[1].split(END, 1)[0]
    assert front_page(docs).strip() in section
    for doc, f in zip(docs, files):
        page = REPO / "docs" / "claims" / f"{doc['study']}.md"
        assert page.read_text() == study_page(doc, f.relative_to(REPO).as_posix()), \
            f"{page} is stale: run `python -m paperzoo.engine.report readme`"
        assert f"(docs/claims/{doc['study']}.md)" in section


def test_readme_stays_a_front_door():
    assert len(README.splitlines()) <= 250, "README over 250 lines: move detail to docs/"
