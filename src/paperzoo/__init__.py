"""paperzoo: one Snakemake DAG that regenerates the results of ten papers.

See README.md for usage and ``docs/`` for the studies. All logic lives
in this package; the workflow rules only call its entry points (``python -m ...``).
"""

__version__ = "0.1.0"

STUDIES = (
    "lae", "cfnet", "drkd", "kd_detr", "group_detr",
    "apis", "ufo", "cpgnet", "valley_phonons", "interface_phonons",
)

# The model catalogue (cheap: it installs the registry's loader; a family is imported on first use).
from .models import create_model, list_models  # noqa: E402, F401
