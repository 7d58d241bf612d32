"""The `paperzoo` command: subcommands, one-line user errors with exit code 2, --debug."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paperzoo import cli

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_every_subcommand_with_examples(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"\n  {name} " in out
    assert "paperzoo why drkd drkd_beats_baseline" in out
    assert cli.main([]) == 2


def test_unknown_command_and_user_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    args = ["claims", "--paper", str(REPO / "src/paperzoo/studies/apis/paper.yaml"), "--metrics", str(bad),
            "--scale", "mini", "--out", str(tmp_path / "claims.json")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("paperzoo claims: error: ") and str(bad) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError):
        cli.main(["--debug", *args])
    # a module's own SystemExit message is one line with exit code 2 as well
    assert cli.main(["why", "apis", "no_such_claim", "--root", str(REPO)]) == 2
    assert "no claim 'no_such_claim'" in capsys.readouterr().err


def test_a_subcommand_runs_its_module(tmp_path, capsys):
    assert cli.main(["power", "--results", str(REPO / "results"), "--study", "apis", "--out", "-"]) == 0
    assert "## apis:" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = shutil.which("paperzoo") or str(Path(sys.executable).parent / "paperzoo")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "commands:" in proc.stdout
