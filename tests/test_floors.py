"""The package's floors: engine/ and layers/ import nothing above them, and no import circle.

Every import statement counts (module level or inside a function, absolute or relative);
``from pkg import mod`` is an import of ``pkg.mod`` when that module exists; a package's
``__init__`` is not counted as imported by its own submodules. Strings in code that name a
module above (an importlib catalogue) count too; docstrings are prose and do not.
"""
import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
           for p in (SRC / "paperzoo").rglob("*.py")}
TOP = {p.stem for p in (SRC / "paperzoo").glob("*.py") if p.stem != "__init__"}   # cli, predict, why, models


def _package(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str):
    """(line, imported module name, how) of every import and module-naming string in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for a in n.names:
                yield n.lineno, a.name, "import"
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                parts = _package(module).split(".")
                base = ".".join(parts[: len(parts) - (n.level - 1)] + ([n.module] if n.module else []))
            for a in n.names:
                yield n.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base, "import"
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            for name in re.findall(r"\bpaperzoo(?:\.\w+)+", n.value):
                yield n.lineno, name, "string"


def _above(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "paperzoo" and (len(parts) == 1 or parts[1] in ("studies", "data") or parts[1] in TOP)


def test_engine_and_layers_import_nothing_above_them():
    hits = [f"{MODULES[m].relative_to(SRC)}:{line}: {how} {name}"
            for m in MODULES if m.split(".")[1:2] in (["engine"], ["layers"])
            for line, name, how in _imports(m) if _above(name)]
    assert not hits, "\n".join(hits)


def test_no_import_circle():
    graph = {m: set() for m in MODULES}
    for m in MODULES:
        for _, name, how in _imports(m):
            while how == "import" and name and name not in MODULES:
                name = name.rpartition(".")[0]
            if how == "import" and name and name != m and not m.startswith(name + "."):
                graph[m].add(name)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        raise AssertionError(f"import circle: {' -> '.join(err.args[1])}") from None


def test_no_source_file_over_400_lines():
    """Files a reader can hold at once (STYLE: a few hundred lines; split along the paper's concepts)."""
    long = {str(p.relative_to(SRC)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"over 400 lines: {long}"
