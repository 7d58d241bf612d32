# apis — APIS: active pointly-supervised instance segmentation (arXiv 2207.11493; PointSup: arXiv 2104.06404).
# (P0) one random point per instance, per seed → (rounds) per strategy × seed: 1 point more per
# instance per round, chosen from the previous round's model, fine-tuning from it; (fullmask) the
# full-mask reference per seed → aggregate → claims → figures. Data: shapes_inst at tiny/mini.

AP_ = "apis"
AP_SEEDS = list(range(config[AP_]["seeds"])) if is_enabled(AP_) else []
AP_STRATEGIES = list(config[AP_]["strategies"]) if is_enabled(AP_) else []
AP_DATA = f"results/data/{config[AP_]['dataset']}/{SCALE}/manifest.json" if is_enabled(AP_) else []  # not "": Snakemake warns of an empty path
AP_FIGS = ["table_strategies", "fig_miou_points", "fig_selected_points"]

if is_enabled(AP_):
    register(
        AP_,
        runs=[res(AP_, f"runs/{a}/seed{k}/metrics.json") for a in ["p0", "fullmask"] + AP_STRATEGIES for k in AP_SEEDS],
        figures=[res(AP_, f"figures/{name}.png") for name in AP_FIGS],
    )


rule apis_p0:
    input:
        data=AP_DATA,
    output:
        metrics=res(AP_, "runs/p0/seed{seed}/metrics.json"),
        checkpoint=res(AP_, "checkpoints/p0/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(AP_, "dataset", "n_train", "model", "crop", "points_per_instance", "p0", "rounds", "eval"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(AP_, "p0", "seed{seed}"),
    benchmark:
        bench_path(log_path(AP_, "p0", "seed{seed}")),
    threads: 1
    priority: 10  # every strategy of the seed waits for it
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.apis.steps p0 --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --checkpoint {output.checkpoint} --out {output.metrics} > {log} 2>&1"


rule apis_active:
    input:
        data=AP_DATA,
        p0=res(AP_, "checkpoints/p0/seed{seed}/model.pt"),
    output:
        metrics=res(AP_, "runs/{strategy}/seed{seed}/metrics.json"),
        checkpoint=res(AP_, "checkpoints/{strategy}/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(AP_),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    wildcard_constraints:
        strategy="|".join(AP_STRATEGIES) if AP_STRATEGIES else "NONE",
    log:
        log_path(AP_, "active", "{strategy}_seed{seed}"),
    benchmark:
        bench_path(log_path(AP_, "active", "{strategy}_seed{seed}")),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.apis.steps active --params {params.cfg:q} --scale {params.scale}"
        " --strategy {wildcards.strategy} --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --p0 {input.p0} --checkpoint {output.checkpoint} --out {output.metrics} > {log} 2>&1"


rule apis_fullmask:
    input:
        data=AP_DATA,
    output:
        metrics=res(AP_, "runs/fullmask/seed{seed}/metrics.json"),
        checkpoint=res(AP_, "checkpoints/fullmask/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(AP_, "dataset", "n_train", "model", "crop", "p0", "rounds", "fullmask", "eval",
                                "points_per_instance"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(AP_, "fullmask", "seed{seed}"),
    benchmark:
        bench_path(log_path(AP_, "fullmask", "seed{seed}")),
    threads: 1
    priority: 5  # the longest job of a seed
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.apis.steps fullmask --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --checkpoint {output.checkpoint} --out {output.metrics} > {log} 2>&1"


rule apis_figures:
    input:
        metrics=res(AP_, "metrics.json"),
        points=[res(AP_, f"checkpoints/{a}/seed0/model.pt") for a in AP_STRATEGIES],
    output:
        [report(res(AP_, f"figures/{name}.png"), caption="../report/apis.rst", category=AP_) for name in AP_FIGS],
    params:
        cfg=lambda w: get_block(AP_),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
        data_dir=lambda w: os.path.dirname(AP_DATA),
        ckpt_dir=lambda w: res(AP_, "checkpoints"),
    log:
        log_path(AP_, "figures"),
    benchmark:
        bench_path(log_path(AP_, "figures")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.apis.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --data-dir {params.data_dir} --checkpoint-dir {params.ckpt_dir}"
        " --outdir {params.out_dir} > {log} 2>&1"


rule apis:
    localrule: True
    input:
        RUNS.get(AP_, []),
        res(AP_, "claims.json"),
        [res(AP_, f"figures/{name}.png") for name in AP_FIGS],
