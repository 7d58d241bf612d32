# lae — LAE: Learning-Accumulation-Ensemble with general PET (arXiv 2303.10070).
# pretrain (once; official ViT-B/16 IN-21k download at paper scale) → train per run arm
# (<benchmark>_<arm>) × class order (seed) → aggregate → claims → figures. Seq-PET and LAE of one
# PET run in one job (`lae.fork_seq`), LAE forked from Seq-PET after task 1. Data: `classes`
# (upstream for pretraining, downstream for CL); CIFAR-100 / ImageNet-R at paper scale.
from paperzoo.studies.lae.steps import arm_seeds, fork_pairs

LAE = "lae"
LAE_BENCH = list(config[LAE]["benchmarks"]) if is_enabled(LAE) else []
LAE_PAIRS = fork_pairs(config[LAE]) if is_enabled(LAE) else {}   # {lae_<pet>: seq_<pet>}
LAE_PAIR_PETS = sorted(config[LAE]["arms"][a]["pet"] for a in LAE_PAIRS)
LAE_ARMS = [f"{b}_{a}" for b in LAE_BENCH for a in config[LAE]["arms"]] if is_enabled(LAE) else []
# arms with a job of their own (a forked pair's two arms come from one job, lae_train_pair)
LAE_SOLO = [f"{b}_{a}" for b in LAE_BENCH for a in config[LAE]["arms"]
            if a not in LAE_PAIRS and a not in LAE_PAIRS.values()] if is_enabled(LAE) else []
LAE_FIGS = ["fig_accuracy_per_task", "table_main", "fig_lae_heatmap", "fig_prefix_calibration", "fig_paired_gains"]
# run arm <benchmark>_<arm> → the manifest of that benchmark's dataset
LAE_DATA = (
    {b: f"results/data/{config[LAE]['bench'][b]['dataset']}/{SCALE}/manifest.json" for b in LAE_BENCH}
    if is_enabled(LAE)
    else {}
)


if is_enabled(LAE):
    register(
        LAE,
        runs=[
            res(LAE, f"runs/{b}_{a}/seed{k}/metrics.json")
            for b in LAE_BENCH
            for a in config[LAE]["arms"]
            for k in arm_seeds(config[LAE], a)
        ],
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
    benchmark:
        bench_path(log_path(LAE, "pretrain")),
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
        data=lambda w: LAE_DATA[w.arm.split("_", 1)[0]],
        backbone=res(LAE, "pretrain/backbone.pt"),
    output:
        res(LAE, "runs/{arm}/seed{seed}/metrics.json"),
    params:
        cfg=lambda w: get_block(LAE),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        state=lambda w: res(LAE, f"runs/{w.arm}/seed{w.seed}/state.pt"),
    wildcard_constraints:
        arm="|".join(LAE_SOLO) if LAE_SOLO else "NONE",
    log:
        log_path(LAE, "train", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(LAE, "train", "{arm}_seed{seed}")),
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


rule lae_train_pair:
    input:
        data=lambda w: LAE_DATA[w.bench],
        backbone=res(LAE, "pretrain/backbone.pt"),
    output:
        seq=res(LAE, "runs/{bench}_seq_{pet}/seed{seed}/metrics.json"),
        lae=res(LAE, "runs/{bench}_lae_{pet}/seed{seed}/metrics.json"),
    params:
        cfg=lambda w: get_block(LAE),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        state=lambda w: res(LAE, f"runs/{w.bench}_lae_{w.pet}/seed{w.seed}/state.pt"),
    wildcard_constraints:
        bench="|".join(LAE_BENCH) if LAE_BENCH else "NONE",
        pet="|".join(LAE_PAIR_PETS) if LAE_PAIR_PETS else "NONE",
    log:
        log_path(LAE, "train", "{bench}_seq_lae_{pet}_seed{seed}"),
    benchmark:
        bench_path(log_path(LAE, "train", "{bench}_seq_lae_{pet}_seed{seed}")),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=120,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.lae.steps train --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.bench}_lae_{wildcards.pet} --seed {wildcards.seed} --threads {threads}"
        " --data-dir {params.data_dir} --backbone {input.backbone} --state {params.state}"
        " --seq-out {output.seq} --out {output.lae} > {log} 2>&1"


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
    benchmark:
        bench_path(log_path(LAE, "figures")),
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
