"""The model registry resolves every registered name without study-specific imports, and its
list of model modules is complete."""
import re
import subprocess
import sys
from pathlib import Path

from paperzoo.layers import registry

SRC = Path(__file__).resolve().parents[2] / "src"


def test_model_modules_list_every_module_that_registers():
    found = set()
    for p in SRC.rglob("*.py"):
        text = p.read_text()
        if p.name != "registry.py" and re.search(r"@register_model|register_model\(|register_presets\(", text):
            found.add(".".join(p.relative_to(SRC).with_suffix("").parts))
    found.discard("paperzoo.layers")          # __init__ re-exports the decorator
    assert found == set(registry.MODEL_MODULES), sorted(found ^ set(registry.MODEL_MODULES))


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
