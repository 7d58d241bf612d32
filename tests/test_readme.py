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


def test_readme_claims_section_is_the_generated_table():
    generated = REPO / "results" / "report" / "mini" / "claims.md"
    if not generated.exists():
        pytest.skip("no mini results committed yet")
    section = README.split(START, 1)[1].split(END, 1)[0]
    assert generated.read_text().strip() in section
