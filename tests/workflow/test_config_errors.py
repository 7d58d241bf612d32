"""Bad config fails before any job starts, naming the key and what was expected."""
import pytest

from paperzoo.engine.config import ConfigError, apply_overlay, resolve

from .helpers import REPO, copy_workflow, snakemake


def test_overlay_typo_names_the_key():
    with pytest.raises(ConfigError, match=r"key 'interface_phonons\.md\.n_stepz' does not exist"):
        apply_overlay({"interface_phonons": {"md": {"n_steps": 1}}}, {"interface_phonons.md.n_stepz": 2}, "x.yaml")


def test_overlay_must_set_leaves_not_blocks():
    with pytest.raises(ConfigError, match="names a block"):
        apply_overlay({"a": {"md": {"n": 1, "m": 2}}}, {"a.md": {"n": 3}}, "x.yaml")


def test_unknown_scale_lists_allowed():
    with pytest.raises(ConfigError, match=r"'scale' = 'tyni': expected one of \['tiny', 'mini', 'paper'\]"):
        resolve({"scale": "tyni", "studies": []}, REPO)


def test_unknown_key_and_wrong_type_are_named():
    from paperzoo.engine.io import read_yaml

    base = read_yaml(REPO / "config" / "config.yaml")
    with pytest.raises(ConfigError, match=r"'sclae'.*not allowed"):
        resolve({**base, "sclae": 1}, REPO)
    with pytest.raises(ConfigError, match=r"'studies\.0' = 'interface_phononz'"):
        resolve({**base, "studies": ["interface_phononz"]}, REPO)


@pytest.mark.slow
def test_snakemake_refuses_bad_config_before_any_job(tmp_path):
    copy_workflow(tmp_path)
    proc = snakemake(tmp_path, "-n", "--config", "scale=tyni", check=False)
    assert proc.returncode != 0
    assert "'scale' = 'tyni': expected one of" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("scale", ["tiny", "mini", "paper"])
@pytest.mark.parametrize("name,size", [("shapes_dense", 64), ("shapes_o365", 64)])
def test_shapes_variant_blocks_validate_and_their_typos_are_named(scale, name, size):
    from paperzoo.engine.io import read_yaml

    base = {**read_yaml(REPO / "config" / "config.yaml"), "scale": scale}
    assert resolve(base, REPO)["data"][name]["image_size"] == size
    bad = {**base, "data": {**base["data"], name: {**base["data"][name], "min_sise": 6}}}
    with pytest.raises(ConfigError, match=rf"'data\.{name}\.min_sise'.*not allowed"):
        resolve(bad, REPO)
    missing = {**base, "data": {k: v for k, v in base["data"].items() if k != name}}
    with pytest.raises(ConfigError, match=name):
        resolve(missing, REPO)
