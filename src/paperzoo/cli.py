"""``paperzoo``: one command for the tools around the DAG (Snakemake runs the studies themselves).

    paperzoo why drkd drkd_beats_baseline        # trace a verdict to its runs, commit and config
    paperzoo power --study cpgnet                # seeds that would decide the undecided claims
    paperzoo diff ../other/results               # verdicts that changed against another results tree
    paperzoo cost --simulate-cores 2,4,8,16      # measured cost, critical path, core scaling
    paperzoo predict --scale paper --tflops 60   # parameters, FLOPs and device-hours before compute
    paperzoo config --scale paper --study cfnet  # the effective config of a study
    paperzoo report readme                       # README's claims and cost sections, docs/claims/
    paperzoo seeds --study lae                   # verdicts on subsets of the seeds

Each subcommand is the ``main`` of one module (listed by ``paperzoo --help``) and takes that
module's options (``paperzoo <command> --help``). A mistake a user can make (a missing or damaged
file, an unknown claim or key) prints one line naming it and exits with code 2; ``--debug``
shows the traceback instead.
"""
from __future__ import annotations

import importlib
import json
import sys

import yaml

# subcommand -> (module whose main() it runs, arguments put first, one line of help)
COMMANDS = {
    "why": ("paperzoo.why", [], "trace a claim's verdict to its per-seed runs, commit, config and CPU"),
    "power": ("paperzoo.engine.power", [], "seeds that would decide each undecided paper claim, and their cost"),
    "seeds": ("paperzoo.engine.subsample", [], "every claim re-judged on subsets of its study's seeds"),
    "diff": ("paperzoo.engine.report", ["diff"], "verdicts that changed against another results folder"),
    "report": ("paperzoo.engine.report", [], "build the claims report, or write the README's generated sections"),
    "claims": ("paperzoo.engine.claims", [], "judge one study's claims from its aggregated metrics"),
    "cost": ("paperzoo.engine.ledger", [], "the measured ledger: cost per study and rule, critical path, core scaling"),
    "predict": ("paperzoo.predict", [], "parameters, FLOPs and device-hours per training rule, before compute"),
    "config": ("paperzoo.engine.config", [], "the effective config (defaults + scale overlay) of a study"),
}
# errors a user's input causes (messages name the file or key); anything else is a bug: traceback
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, json.JSONDecodeError, yaml.YAMLError)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: paperzoo [--debug] <command> [options]   (paperzoo <command> --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "examples:", *[line for line in __doc__.split("\n\n")[1].splitlines()]]
    return "\n".join(lines)


def _message(err: BaseException) -> str:
    if isinstance(err, KeyError) and err.args:   # str(KeyError) quotes its message
        return str(err.args[0])
    return str(err) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"paperzoo: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, first, _ = COMMANDS[name]
    prog, sys.argv[0] = sys.argv[0], f"paperzoo {name}"   # argparse names the command in its usage
    try:
        importlib.import_module(module).main([*first, *rest])
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"paperzoo {name}: error: {_message(err)}", file=sys.stderr)
        return 2
    except SystemExit as err:   # argparse and the modules' own one-line errors
        if isinstance(err.code, str):
            print(f"paperzoo {name}: error: {err.code}", file=sys.stderr)
            return 2
        return err.code or 0
    finally:
        sys.argv[0] = prog
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
