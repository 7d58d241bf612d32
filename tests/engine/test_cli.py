"""The shared study command line: common options, per-step required options, --params reading."""
import json

import pytest

from paperzoo.engine.cli import parse_step, study_parser


def _parser():
    ap = study_parser("Demo steps.\n\nMore text.", ("train", "figures"))
    ap.add_argument("--out")
    ap.add_argument("--data-dir")
    return ap


def test_parse_step_reads_params_and_defaults(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"a": 1}))
    args, block = parse_step(_parser(), ["train", "--params", str(f), "--scale", "tiny", "--out", "o",
                                         "--data-dir", "d"], {"train": ["out", "data_dir"]})
    assert block == {"a": 1} and args.threads == 1 and args.scale == "tiny"
    _, block = parse_step(_parser(), ["figures", "--params", '{"b": 2}', "--scale", "mini"], {"train": ["out"]})
    assert block == {"b": 2}


def test_missing_step_options_are_named(capsys):
    with pytest.raises(SystemExit):
        parse_step(_parser(), ["train", "--params", "{}", "--scale", "tiny"], {"train": ["out", "data_dir"]})
    assert "step 'train' needs --out --data-dir" in capsys.readouterr().err
