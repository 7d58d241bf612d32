# drkd — DRKD: dual relation knowledge distillation for object detection (arXiv 2302.05637).
# teacher (once, frozen, shared) → student init per seed → per arm × seed: student (distillation
# arm, COCO eval, relation diagnostics) → aggregate → claims → figures.
# drkd_calibrate (on demand, not part of `drkd`): the one-off loss-weight calibration on held-out
# TRAIN images whose result is written into config (drkd.kd.weights) with its provenance.
# Data: procedural shapes_dense at tiny/mini, COCO 2017 at paper.

DK = "drkd"
DK_ARMS = list(config[DK]["arms"]) if is_enabled(DK) else []
DK_SEEDS = list(range(config[DK]["seeds"])) if is_enabled(DK) else []
DK_DATASET = config[DK]["dataset"] if is_enabled(DK) else "off"  # a study that is off: no job asks for its paths
DK_DATA = (
    "results/data/coco/paper/verified.json"
    if DK_DATASET == "coco"
    else f"results/data/{DK_DATASET}/{SCALE}/manifest.json"
)
DK_INIT_SEED = config[DK]["student"]["init_seed"] if is_enabled(DK) else None
DK_FIGS = ["table_arms", "fig_ap_per_arm", "fig_delta_vs_baseline"]

if is_enabled(DK):
    register(
        DK,
        runs=[res(DK, f"runs/{a}/seed{k}/metrics.json") for a in DK_ARMS for k in DK_SEEDS],
        figures=[res(DK, f"figures/{name}.png") for name in DK_FIGS],
    )


rule drkd_teacher:
    input:
        data=DK_DATA,
    output:
        checkpoint=res(DK, "teacher/model.pt"),
        metrics=res(DK, "teacher/metrics.json"),
    params:
        cfg=lambda w: get_block(DK, "dataset", "coco_size", "teacher", "detector", "train", "kd.calibration", "eval"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(DK, "teacher"),
    benchmark:
        bench_path(log_path(DK, "teacher")),
    threads: 1
    priority: 10  # long and on the critical path: start before the short per-arm jobs
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.drkd.steps teacher --params {params.cfg:q} --scale {params.scale}"
        " --threads {threads} --data-dir {params.data_dir} --checkpoint {output.checkpoint}"
        " --out {output.metrics} > {log} 2>&1"


rule drkd_init:
    input:
        data=DK_DATA,
    output:
        res(DK, "init/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(DK, "dataset", "coco_size", "student", "detector", "train", "kd.calibration", "eval"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(DK, "init", "seed{seed}"),
    benchmark:
        bench_path(log_path(DK, "init", "seed{seed}")),
    threads: 1
    priority: 10
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.drkd.steps init --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir} --checkpoint {output} > {log} 2>&1"


rule drkd_calibrate:
    input:
        data=DK_DATA,
        teacher=res(DK, "teacher/model.pt"),
        init=res(DK, "init/seed0/model.pt"),
    output:
        res(DK, "calibration.json"),
    params:
        cfg=lambda w: get_block(DK),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(DK, "calibrate"),
    benchmark:
        bench_path(log_path(DK, "calibrate")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.drkd.steps calibrate --params {params.cfg:q} --scale {params.scale}"
        " --seed 0 --threads {threads} --data-dir {params.data_dir} --teacher {input.teacher}"
        " --init {input.init} --out {output} > {log} 2>&1"


rule drkd_student:
    input:
        data=DK_DATA,
        teacher=res(DK, "teacher/model.pt"),
        teacher_metrics=res(DK, "teacher/metrics.json"),
        init=lambda w: res(DK, f"init/seed{w.seed if DK_INIT_SEED is None else DK_INIT_SEED}/model.pt"),
    output:
        metrics=res(DK, "runs/{arm}/seed{seed}/metrics.json"),
        checkpoint=res(DK, "checkpoints/{arm}/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(DK),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    wildcard_constraints:
        arm="|".join(DK_ARMS) if DK_ARMS else "NONE",
    log:
        log_path(DK, "student", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(DK, "student", "{arm}_seed{seed}")),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.drkd.steps student --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.arm} --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --teacher {input.teacher} --teacher-metrics {input.teacher_metrics} --init {input.init}"
        " --checkpoint {output.checkpoint} --out {output.metrics} > {log} 2>&1"


rule drkd_figures:
    input:
        metrics=res(DK, "metrics.json"),
    output:
        [
            report(res(DK, f"figures/{name}.png"), caption="../report/drkd.rst", category=DK)
            for name in DK_FIGS
        ],
    params:
        cfg=lambda w: get_block(DK, "arms", "baseline_arm"),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(DK, "figures"),
    benchmark:
        bench_path(log_path(DK, "figures")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.drkd.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --outdir {params.out_dir} > {log} 2>&1"


rule drkd:
    localrule: True
    input:
        RUNS.get(DK, []),  # every run, not only what the committed claims need (fresh clones)
        res(DK, "claims.json"),
        res(DK, "teacher/metrics.json"),
        [res(DK, f"figures/{name}.png") for name in DK_FIGS],
