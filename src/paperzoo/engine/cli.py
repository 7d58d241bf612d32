"""The shared frame of every study's ``steps`` command line.

    ap = study_parser(__doc__, ("train", "figures"))      # step, --params, --scale, --threads
    ap.add_argument("--out", type=Path) ...                # the study's own options
    args, block = parse_step(ap, argv, {"train": ["out"], "figures": ["outdir"]})

``parse_step`` reads ``--params`` (the study's config block after the scale overlay, JSON
text or a JSON file) and stops with a usage error naming every option the chosen step
needs but did not get.
"""
from __future__ import annotations

import argparse
from typing import Mapping, Sequence

from .io import read_params


def study_parser(doc: str | None, steps: Sequence[str]) -> argparse.ArgumentParser:
    """A parser with the options every study step takes: ``step``, ``--params``, ``--scale``, ``--threads``."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("step", choices=tuple(steps))
    ap.add_argument("--params", required=True,
                    help="the study's config block (after the scale overlay): JSON text or a JSON file")
    ap.add_argument("--scale", required=True)
    ap.add_argument("--threads", type=int, default=1)
    return ap


def parse_step(ap: argparse.ArgumentParser, argv: Sequence[str] | None,
               need: Mapping[str, Sequence[str]]) -> tuple[argparse.Namespace, dict]:
    """Parse ``argv``; check that the options ``need[step]`` (attribute names) were given;
    return the arguments and the config block read from ``--params``."""
    args = ap.parse_args(argv)
    missing = [f"--{n.replace('_', '-')}" for n in need.get(args.step, ()) if getattr(args, n) is None]
    if missing:
        ap.error(f"step {args.step!r} needs {' '.join(missing)}")
    from .metrics import set_data_digest, set_params_digest

    block = read_params(args.params)
    set_params_digest(block)          # every run's meta records which config it ran with
    set_data_digest(getattr(args, "data_dir", None))    # ... and which dataset (its manifest's hash)
    return args, block
