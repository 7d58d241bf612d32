# ufo — UFO: unified feature optimization (arXiv 2207.10341; PaddlePaddle/VIMER UFO/OneForAll).
# Per seed: (single) one dense model per task; (allinone) one multi-task model without routing or
# sub-network sampling; (supernet) the UFO supernet, evaluated at its largest sub-network; (trim)
# per task, the sub-network found by search on validation identities under a parameter cap, the
# supernet loaded read-only → aggregate → claims → figures. Data: synthid at tiny/mini.

UF = "ufo"
UF_SEEDS = list(range(config[UF]["seeds"])) if is_enabled(UF) else []
UF_TASKS = list(config[UF]["tasks"]) if is_enabled(UF) else []
UF_DATA = f"results/data/{config[UF]['dataset']}/{SCALE}/manifest.json" if is_enabled(UF) else []  # not "": Snakemake warns of an empty path
UF_FIGS = ["table_tasks", "fig_tasks", "fig_trim_search"]
UF_TRAIN_KEYS = ("dataset", "tasks", "model", "space", "train", "cosface", "eval")

if is_enabled(UF):
    register(
        UF,
        runs=[res(UF, f"runs/{a}/seed{k}/metrics.json") for a in ("single", "allinone", "ufo_largest", "ufo_trimmed")
              for k in UF_SEEDS],
        figures=[res(UF, f"figures/{name}.png") for name in UF_FIGS],
    )


rule ufo_single:
    input:
        data=UF_DATA,
    output:
        metrics=res(UF, "runs/single/seed{seed}/metrics.json"),
        checkpoints=[res(UF, f"checkpoints/single/seed{{seed}}/{t}.pt") for t in UF_TASKS],
    params:
        cfg=lambda w: get_block(UF, *UF_TRAIN_KEYS),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        ckpt_dir=lambda w, output: os.path.dirname(output.checkpoints[0]),
    log:
        log_path(UF, "single", "seed{seed}"),
    benchmark:
        bench_path(log_path(UF, "single", "seed{seed}")),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.ufo.steps single --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --checkpoint-dir {params.ckpt_dir} --out {output.metrics} > {log} 2>&1"


rule ufo_multitask:
    input:
        data=UF_DATA,
    output:
        metrics=res(UF, "runs/{arm}/seed{seed}/metrics.json"),
        checkpoint=res(UF, "checkpoints/{arm}/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(UF, *UF_TRAIN_KEYS),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        step=lambda w: "allinone" if w.arm == "allinone" else "supernet",
    wildcard_constraints:
        arm="allinone|ufo_largest",
    log:
        log_path(UF, "multitask", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(UF, "multitask", "{arm}_seed{seed}")),
    threads: 1
    priority: 5  # the supernet feeds the trimming search
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.ufo.steps {params.step} --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --checkpoint {output.checkpoint} --out {output.metrics} > {log} 2>&1"


rule ufo_trim:
    input:
        data=UF_DATA,
        supernet=res(UF, "checkpoints/ufo_largest/seed{seed}/model.pt"),
    output:
        metrics=res(UF, "runs/ufo_trimmed/seed{seed}/metrics.json"),
    params:
        cfg=lambda w: get_block(UF, *UF_TRAIN_KEYS, "search"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(UF, "trim", "seed{seed}"),
    benchmark:
        bench_path(log_path(UF, "trim", "seed{seed}")),
    threads: 1
    resources:
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.ufo.steps trim --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --supernet {input.supernet} --out {output.metrics} > {log} 2>&1"


rule ufo_figures:
    input:
        metrics=res(UF, "metrics.json"),
        trimmed=res(UF, "runs/ufo_trimmed/seed0/metrics.json") if UF_SEEDS else [],
    output:
        [report(res(UF, f"figures/{name}.png"), caption="../report/ufo.rst", category=UF) for name in UF_FIGS],
    params:
        cfg=lambda w: get_block(UF, "tasks", "search"),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(UF, "figures"),
    benchmark:
        bench_path(log_path(UF, "figures")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.ufo.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --trimmed {input.trimmed} --outdir {params.out_dir} > {log} 2>&1"


rule ufo:
    localrule: True
    input:
        RUNS.get(UF, []),
        res(UF, "claims.json"),
        [res(UF, f"figures/{name}.png") for name in UF_FIGS],
