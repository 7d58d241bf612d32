"""Config loading: defaults (``config/config.yaml``) + one flat scale overlay + validation.

The overlay ``config/scales/<scale>.yaml`` is a flat mapping of dotted keys onto the
nested defaults, e.g. ``interface_phonons.md.n_steps: 20000``. An overlay may only change
keys that exist in the defaults (a typo fails here, naming the key). The merged config is
then validated against ``workflow/schemas/config.schema.yaml`` (unknown keys rejected).
Every error names the offending key and what was expected, before any job starts.

    python -m paperzoo.engine.config --scale mini [--study kd_detr] [--root .]

prints the effective config of a scale (defaults + overlay, validated) as YAML.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import jsonschema

from .io import read_yaml

SCALES = ("tiny", "mini", "paper")


class ConfigError(ValueError):
    """A bad config value; the message names the key and what was expected."""


def apply_overlay(base: Mapping, overlay: Mapping, source: str) -> dict:
    """Return a copy of ``base`` with each dotted key of ``overlay`` set."""
    merged = copy.deepcopy(dict(base))
    for dotted, value in (overlay or {}).items():
        node = merged
        parts = str(dotted).split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                have = sorted(node) if isinstance(node, dict) else []
                raise ConfigError(f"{source}: key {dotted!r} does not exist in the defaults "
                                  f"({'.'.join(parts[:depth]) or 'top level'} has: {', '.join(have)})")
            if depth == len(parts) - 1:
                if isinstance(node[part], dict) or isinstance(value, dict):
                    raise ConfigError(f"{source}: key {dotted!r} names a block; overlays set single "
                                      f"values with flat dotted keys (e.g. '{dotted}.<key>: value')")
                node[part] = value
            else:
                node = node[part]
    return merged


def _describe(err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "top level"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return f"config key(s) {', '.join(repr(f'{path}.{e}' if path != 'top level' else e) for e in extra)} not allowed; {path} allows: {', '.join(allowed)}"
    if err.validator == "enum":
        return f"config key {path!r} = {err.instance!r}: expected one of {err.validator_value}"
    return f"config key {path!r} = {err.instance!r}: {err.message}"


def validate(config: Mapping, schema: Mapping) -> None:
    """Validate ``config``; raise :class:`ConfigError` describing every problem found."""
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))


def resolve(config: Mapping, root: str | Path) -> dict:
    """Apply the scale overlay named by ``config['scale']`` and validate the result."""
    root = Path(root)
    scale = config.get("scale")
    if scale not in SCALES:
        raise ConfigError(f"config key 'scale' = {scale!r}: expected one of {list(SCALES)}")
    overlay_file = root / "config" / "scales" / f"{scale}.yaml"
    merged = apply_overlay(config, read_yaml(overlay_file) or {}, str(overlay_file))
    validate(merged, read_yaml(root / "workflow" / "schemas" / "config.schema.yaml"))
    return merged


def study_block(config: Mapping, study: str) -> dict[str, Any]:
    """A copy of the ``<study>:`` block (what a study's ``from_config`` functions unpack)."""
    return copy.deepcopy(dict(config[study]))


def set_dotted(block: dict, assignments: list[str]) -> dict:
    """Apply ``KEY=VALUE`` strings to ``block`` in place (``KEY`` dotted, ``VALUE`` read as
    YAML, missing intermediate blocks created): the ``--set`` option of the benchmarks."""
    import yaml

    for kv in assignments:
        if "=" not in kv:
            raise ConfigError(f"--set {kv!r}: expected KEY=VALUE (e.g. train.lr=1e-3)")
        key, value = kv.split("=", 1)
        *path, last = key.split(".")
        node = block
        for part in path:
            node = node.setdefault(part, {})
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML 1.1 reads "2e-3" (no dot) as a string
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        node[last] = parsed
    return block


def load_block(root: str | Path, study: str, scale: str = "mini", sets: list[str] = ()) -> dict:
    """The ``study`` block of ``<root>/config/config.yaml`` at ``scale`` (overlay applied and
    validated), then the ``KEY=VALUE`` overrides ``sets`` (:func:`set_dotted`): what the
    gate benchmarks train with."""
    from .io import read_yaml

    root = Path(root)
    block = study_block(resolve({**read_yaml(root / "config" / "config.yaml"), "scale": scale}, root), study)
    return set_dotted(block, list(sets))


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    import yaml

    ap = argparse.ArgumentParser(description="Print the effective config of a scale (defaults + overlay).")
    ap.add_argument("--scale", default="mini", choices=SCALES)
    ap.add_argument("--study", help="only this study's block (or 'data')")
    ap.add_argument("--root", type=Path, default=Path("."), help="repository root (holds config/ and workflow/)")
    args = ap.parse_args(argv)
    try:
        cfg = resolve({**read_yaml(args.root / "config" / "config.yaml"), "scale": args.scale}, args.root)
    except ConfigError as err:
        sys.exit(f"config: {err}")
    if args.study:
        if args.study not in cfg:
            sys.exit(f"config: no block {args.study!r}; blocks: {', '.join(sorted(k for k in cfg if isinstance(cfg[k], dict)))}")
        cfg = {args.study: cfg[args.study]}
    yaml.safe_dump(cfg, sys.stdout, sort_keys=False, default_flow_style=None, width=110)


if __name__ == "__main__":
    main()
