"""The model registry resolves every registered name without study-specific imports, and the
catalogue of model modules (paperzoo.models) is complete."""
import re
import subprocess
import sys
from pathlib import Path

from paperzoo import models
from paperzoo.layers import registry

SRC = Path(__file__).resolve().parents[2] / "src"


def test_model_modules_list_every_module_that_registers():
    found = set()
    for p in SRC.rglob("*.py"):
        text = p.read_text()
        if p.name != "registry.py" and re.search(r"@register_model|register_model\(|register_presets\(", text):
            found.add(".".join(p.relative_to(SRC).with_suffix("").parts))
    found -= {"paperzoo.layers", "paperzoo.models"}   # they re-export the decorator
    assert found == set(models.MODEL_MODULES), sorted(found ^ set(models.MODEL_MODULES))


def test_layers_name_no_study_module():
    """The catalogue lives above layers and studies: no module of layers/ names a study module,
    by an import statement or by a string in its code (docstrings are prose); the registry
    learns the catalogue through the loader paperzoo.models installs."""
    import ast

    for p in (SRC / "paperzoo" / "layers").rglob("*.py"):
        tree = ast.parse(p.read_text())
        prose = {id(n.body[0].value) for n in ast.walk(tree)
                 if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                 and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for n in ast.walk(tree):
            names = ([a.name for a in n.names] if isinstance(n, ast.Import) else
                     [("." * n.level) + (n.module or "")] if isinstance(n, ast.ImportFrom) else
                     [n.value] if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in prose
                     else [])
            assert not [m for m in names if re.search(r"paperzoo\.studies|^\.\.studies", m)], (p, n.lineno, names)


def _fresh_python(code: str) -> str:
    """stdout of ``code`` run in a fresh interpreter (which fails the test if it fails)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_fresh_interpreter_builds_study_models_by_name():
    code = ("from paperzoo.layers import create_model, list_models\n"
            "for n in ('drkd_student_mini', 'test_gdetr_vit', 'convnext_fpn_mini', 'test_vit'):\n"
            "    create_model(n)\n"
            "names = list_models()\n"
            "assert 'cpgnet_mini' in names or any('cpgnet' in n for n in names), names\n"
            "print(len(names))\n")
    assert int(_fresh_python(code).strip()) > 30


def test_unknown_name_lists_the_registered_ones():
    import pytest

    with pytest.raises(KeyError, match="unknown model 'nope'.*detr_lite_s"):
        registry.create_model("nope")


def test_light_jobs_import_neither_torchvision_nor_the_compiler():
    """Start-up cost (benchmarks/bench_startup.py): seeding switches on deterministic algorithms
    (warn-only, as ``torch.use_deterministic_algorithms(True, warn_only=True)``) without importing
    ``torch._inductor``, and building a model whose module needs no torchvision (CPGNet) does not
    import the torchvision-based detectors registered after it."""
    code = ("import sys, torch\n"
            "from paperzoo.engine.seeding import seed_everything\n"
            "seed_everything(0, 1)\n"
            "from paperzoo.layers import create_model\n"
            "create_model('cpgnet_fuse2')\n"
            "print(torch.are_deterministic_algorithms_enabled(),"
            " torch.is_deterministic_algorithms_warn_only_enabled(),"
            " 'torch._inductor' in sys.modules, 'torchvision' in sys.modules)\n")
    out = _fresh_python(code)
    assert out.split() == ["True", "True", "False", "False"], out
