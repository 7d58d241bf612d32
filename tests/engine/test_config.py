"""``engine.config.set_dotted``: the benchmarks' ``--set KEY=VALUE`` overrides."""
import pytest

from paperzoo.engine.config import ConfigError, set_dotted


def test_set_dotted_creates_blocks_parses_yaml_and_rejects_bad_input():
    block = {"train": {"lr": 1.0}}
    set_dotted(block, ["train.lr=2e-3", "anchors.std=[1, 1, 0.5, 0.5]", "flag=true", "name=cnn"])
    assert block == {"train": {"lr": 2e-3}, "anchors": {"std": [1, 1, 0.5, 0.5]}, "flag": True, "name": "cnn"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        set_dotted(block, ["train.lr"])


def test_effective_config_command_prints_the_scale_overlay(capsys):
    import yaml

    from paperzoo.engine.config import main

    main(["--scale", "tiny", "--study", "cfnet"])
    tiny = yaml.safe_load(capsys.readouterr().out)
    main(["--scale", "mini", "--study", "cfnet"])
    mini = yaml.safe_load(capsys.readouterr().out)
    assert tiny["cfnet"]["train"]["steps"] == 3 and mini["cfnet"]["train"]["steps"] == 800
    with pytest.raises(SystemExit, match="no block"):
        main(["--scale", "mini", "--study", "nope"])
