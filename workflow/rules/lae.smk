# lae — LAE: Learning-Accumulation-Ensemble with general PET (arXiv 2303.10070).
# pretrain (once; official ViT-B/16 IN-21k download at paper scale) → train per run arm
# (<benchmark>_<arm>) × seed → aggregate → claims → figures. Data: `classes` (upstream for
# pretraining, downstream for CL) and real `digits`; CIFAR-100 / ImageNet-R at paper scale (TODO).

LAE = "lae"
LAE_ARMS = [f"{b}_{a}" for b in config[LAE]["benchmarks"] for a in config[LAE]["arms"]] if is_enabled(LAE) else []
LAE_SEEDS = list(range(config[LAE]["seeds"])) if is_enabled(LAE) else []
LAE_FIGS = ["fig_accuracy_per_task", "table_main", "fig_lae_heatmap", "fig_prefix_calibration"]
# run arm <benchmark>_<arm> → the manifest of that benchmark's dataset
LAE_DATA = (
    {
        a: f"results/data/{config[LAE]['bench'][a.split('_', 1)[0]]['dataset']}/{SCALE}/manifest.json"
        for a in LAE_ARMS
    }
    if is_enabled(LAE)
    else {}
)


if is_enabled(LAE):
    register(
        LAE,
        runs=[res(LAE, f"runs/{a}/seed{k}/metrics.json") for a in LAE_ARMS for k in LAE_SEEDS],
        figures=[res(LAE, f"figures/{name}.png") for name in LAE_FIGS],
    )


rule lae_pretrain:
    input:
        data=[] if SCALE == "paper" else f"results/data/classes/{SCALE}/manifest.json",
    output:
        backbone=res(LAE, "pretrain/backbone.pt"),
        metrics=res(LAE, "pretrain/metrics.json"),
    params:
        cfg=lambda w: get_block(LAE),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data) if input.data else "none",
    log:
        log_path(LAE, "pretrain"),
    threads: 1
    priority: 10  # long and on the critical path: start before the short per-arm jobs
    resources:
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.lae.steps pretrain --params {params.cfg:q} --scale {params.scale}"
        " --threads {threads} --data-dir {params.data_dir} --out {output.backbone} --metrics {output.metrics}"
        " > {log} 2>&1"


rule lae_train:
    input:
        data=lambda w: LAE_DATA[w.arm],
        backbone=res(LAE, "pretrain/backbone.pt"),
    output:
        res(LAE, "runs/{arm}/seed{seed}/metrics.json"),
    params:
        cfg=lambda w: get_block(LAE),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        state=lambda w: res(LAE, f"runs/{w.arm}/seed{w.seed}/state.pt"),
    wildcard_constraints:
        arm="|".join(LAE_ARMS) if LAE_ARMS else "NONE",
    log:
        log_path(LAE, "train", "{arm}_seed{seed}"),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.lae.steps train --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.arm} --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --backbone {input.backbone} --state {params.state} --out {output} > {log} 2>&1"


rule lae_figures:
    input:
        metrics=res(LAE, "metrics.json"),
    output:
        [
            report(res(LAE, f"figures/{name}.png"), caption="../report/lae.rst", category=LAE)
            for name in LAE_FIGS
        ],
    params:
        cfg=lambda w: get_block(LAE),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(LAE, "figures"),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.lae.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --outdir {params.out_dir} > {log} 2>&1"


rule lae:
    localrule: True
    input:
        RUNS.get(LAE, []),  # every run, not only what the committed claims need (fresh clones)
        res(LAE, "claims.json"),
        [res(LAE, f"figures/{name}.png") for name in LAE_FIGS],
