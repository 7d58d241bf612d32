# group_detr — Group DETR v2 (arXiv 2211.03594; query groups: arXiv 2207.13085).
# (E) mim: MAE pretraining of the ViT encoder, once → (D) detpre: detector pretraining per arm
# (number of query groups, encoder or not) × seed → (F) finetune: per arm × seed, from D's arm of
# the same seed (class head re-initialised) or from E only → aggregate → claims → figures.
# Data: shapes_o365 (E, D) and shapes_easy (F) at tiny/mini.

GD = "group_detr"
GD_SEEDS = list(range(config[GD]["seeds"])) if is_enabled(GD) else []
GD_D_ARMS = list(config[GD]["arms"]["detpre"]) if is_enabled(GD) else []
GD_F_ARMS = list(config[GD]["arms"]["finetune"]) if is_enabled(GD) else []
GD_PRE = f"results/data/{config[GD]['pretrain_dataset']}/{SCALE}/manifest.json" if is_enabled(GD) else []  # not "": Snakemake warns of an empty path
GD_TGT = f"results/data/{config[GD]['target_dataset']}/{SCALE}/manifest.json" if is_enabled(GD) else []  # not "": Snakemake warns of an empty path
GD_FIGS = ["table_arms", "fig_ap_curves", "fig_groups"]

if is_enabled(GD):
    register(
        GD,
        runs=[res(GD, "mim/metrics.json")]
        + [res(GD, f"runs/{a}/seed{k}/metrics.json") for a in GD_D_ARMS + GD_F_ARMS for k in GD_SEEDS],
        figures=[res(GD, f"figures/{name}.png") for name in GD_FIGS],
    )


GD_MIM = res(GD, "mim/model.pt") if is_enabled(GD) else []  # not "": Snakemake warns of an empty path
GD_ARMS = config[GD]["arms"] if is_enabled(GD) else {}


rule group_detr_mim:
    input:
        data=GD_PRE,
    output:
        checkpoint=res(GD, "mim/model.pt"),
        metrics=res(GD, "mim/metrics.json"),
    params:
        cfg=lambda w: get_block(GD, "model", "pretrain_dataset", "mim", "eval"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(GD, "mim"),
    benchmark:
        bench_path(log_path(GD, "mim")),
    threads: 1
    priority: 10  # on the critical path: every arm waits for it
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.group_detr.steps mim --params {params.cfg:q} --scale {params.scale}"
        " --threads {threads} --data-dir {params.data_dir} --checkpoint {output.checkpoint}"
        " --out {output.metrics} > {log} 2>&1"


rule group_detr_detpre:
    input:
        unpack(
            lambda w: {"data": GD_PRE}
            | ({"encoder": GD_MIM} if GD_ARMS["detpre"][w.arm]["encoder"] == "mim" else {})
        ),
    output:
        metrics=res(GD, "runs/{arm}/seed{seed}/metrics.json"),
        checkpoint=res(GD, "checkpoints/{arm}/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(GD),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        encoder=lambda w, input: f" --encoder {input.encoder}" if "encoder" in input.keys() else "",
    wildcard_constraints:
        arm="|".join(GD_D_ARMS) if GD_D_ARMS else "NONE",
    log:
        log_path(GD, "detpre", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(GD, "detpre", "{arm}_seed{seed}")),
    threads: 1
    priority: 5  # the finetune arms wait for g11
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.group_detr.steps detpre --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.arm} --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        "{params.encoder} --checkpoint {output.checkpoint} --out {output.metrics} > {log} 2>&1"


rule group_detr_finetune:
    input:
        unpack(
            lambda w: {"data": GD_TGT}
            | (
                {"detector": res(GD, f"checkpoints/{GD_ARMS['finetune'][w.arm]['from']}/seed{w.seed}/model.pt")}
                if GD_ARMS["finetune"][w.arm]["from"] is not None
                else {"encoder": GD_MIM} if GD_ARMS["finetune"][w.arm]["encoder"] == "mim" else {}
            )
        ),
    output:
        metrics=res(GD, "runs/{arm}/seed{seed}/metrics.json"),
        checkpoint=res(GD, "checkpoints/{arm}/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(GD),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        encoder=lambda w, input: f" --encoder {input.encoder}" if "encoder" in input.keys() else "",
        detector=lambda w, input: f" --detector {input.detector}" if "detector" in input.keys() else "",
    wildcard_constraints:
        arm="|".join(GD_F_ARMS) if GD_F_ARMS else "NONE",
    log:
        log_path(GD, "finetune", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(GD, "finetune", "{arm}_seed{seed}")),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.group_detr.steps finetune --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.arm} --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        "{params.encoder}{params.detector} --checkpoint {output.checkpoint} --out {output.metrics} > {log} 2>&1"


rule group_detr_figures:
    input:
        metrics=res(GD, "metrics.json"),
    output:
        [
            report(res(GD, f"figures/{name}.png"), caption="../report/group_detr.rst", category=GD)
            for name in GD_FIGS
        ],
    params:
        cfg=lambda w: get_block(GD, "arms"),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(GD, "figures"),
    benchmark:
        bench_path(log_path(GD, "figures")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.group_detr.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --outdir {params.out_dir} > {log} 2>&1"


rule group_detr:
    localrule: True
    input:
        RUNS.get(GD, []),
        res(GD, "claims.json"),
        [res(GD, f"figures/{name}.png") for name in GD_FIGS],
