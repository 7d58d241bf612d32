# paperzoo — one DAG that regenerates the results of ten papers.
# Table of contents only: config + validation, helpers, one rules file per study, the report.
#   snakemake --cores all                          # `mini` scale (the default), every study
#   snakemake --config scale=tiny --cores 2        # every rule, in minutes (tests/CI)
#   snakemake -n --config scale=paper              # paper scale (GPU cluster via SLURM profile)
#   snakemake interface_phonons                    # one study
from snakemake.utils import min_version

min_version("9.27")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/interface_phonons.smk"
include: "workflow/rules/valley_phonons.smk"
include: "workflow/rules/cpgnet.smk"
include: "workflow/rules/lae.smk"
include: "workflow/rules/kd_detr.smk"
include: "workflow/rules/cfnet.smk"
include: "workflow/rules/drkd.smk"
include: "workflow/rules/group_detr.smk"
include: "workflow/rules/apis.smk"
include: "workflow/rules/ufo.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
