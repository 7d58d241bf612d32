# kd_detr — KD-DETR: distillation through consistent distillation points (arXiv 2211.08071).
# teacher (once, shared) → shared student init (once, or per seed) → per seed: the teacher's outputs
# at every student step (kd.teacher_cache) → per arm × seed: student (KD arm, COCO eval, consistency
# diagnostic) → aggregate → claims → figures.
# Data: procedural `shapes` variant (config kd_detr.dataset) at tiny/mini, COCO 2017 at paper.

from paperzoo.studies.kd_detr.recipe import distils

KD = "kd_detr"
KD_ARMS = list(config[KD]["arms"]) if is_enabled(KD) else []
KD_SEEDS = list(range(config[KD]["seeds"])) if is_enabled(KD) else []
KD_DATASET = config[KD]["dataset"] if is_enabled(KD) else "off"  # a study that is off: no job asks for its paths
KD_DATA = (
    "results/data/coco/paper/verified.json"
    if KD_DATASET == "coco"
    else f"results/data/{KD_DATASET}/{SCALE}/manifest.json"
)
# one shared student init for every seed (the paper's one pretrained backbone), or one per seed
KD_INIT_SEED = config[KD]["student"]["init_seed"] if is_enabled(KD) else None
KD_FIGS = ["table_sampling_ablation", "fig_ap_per_arm", "fig_consistency"]
# the teacher's outputs stored once per seed for every KD arm (studies/kd_detr/teacher_cache.py)
KD_CACHE = bool(config[KD]["kd"]["teacher_cache"]) if is_enabled(KD) else False
KD_DISTILS = {a: distils(v) for a, v in (config[KD]["arms"].items() if is_enabled(KD) else [])}

if is_enabled(KD):
    register(
        KD,
        runs=[res(KD, f"runs/{a}/seed{k}/metrics.json") for a in KD_ARMS for k in KD_SEEDS],
        figures=[res(KD, f"figures/{name}.png") for name in KD_FIGS],
    )


rule kd_detr_teacher:
    input:
        data=KD_DATA,
    output:
        checkpoint=res(KD, "teacher/model.pt"),
        metrics=res(KD, "teacher/metrics.json"),
    params:
        cfg=lambda w: get_block(KD, "dataset", "coco_size", "anchors", "teacher", "train", "kd", "eval"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(KD, "teacher"),
    benchmark:
        bench_path(log_path(KD, "teacher")),
    threads: 1
    priority: 10  # long and on the critical path: start before the short per-arm jobs
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.kd_detr.steps teacher --params {params.cfg:q} --scale {params.scale}"
        " --threads {threads} --data-dir {params.data_dir} --checkpoint {output.checkpoint}"
        " --out {output.metrics} > {log} 2>&1"


rule kd_detr_init:
    input:
        data=KD_DATA,
    output:
        res(KD, "init/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(KD, "dataset", "coco_size", "anchors", "student", "train", "eval"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(KD, "init", "seed{seed}"),
    benchmark:
        bench_path(log_path(KD, "init", "seed{seed}")),
    threads: 1
    priority: 10  # long and on the critical path: start before the short per-arm jobs
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.kd_detr.steps init --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir} --checkpoint {output} > {log} 2>&1"


rule kd_detr_teacher_targets:
    input:
        data=KD_DATA,
        teacher=res(KD, "teacher/model.pt"),
    output:
        # temp: deleted once every arm of the seed has read it (74 MB per seed at mini); a finished
        # arm does not need it again, so a clone restored with `dvc pull` does not rebuild it
        temp(res(KD, "teacher_targets/seed{seed}.pt")),
    params:
        cfg=lambda w: get_block(KD),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(KD, "teacher_targets", "seed{seed}"),
    benchmark:
        bench_path(log_path(KD, "teacher_targets", "seed{seed}")),
    threads: 1
    priority: 10  # every KD arm of the seed waits for it
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.kd_detr.steps teacher_targets --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir} --teacher {input.teacher}"
        " --out {output} > {log} 2>&1"


rule kd_detr_student:
    input:
        # the seed's stored teacher outputs, for a distilling arm when the cache is on
        unpack(lambda w: {"targets": res(KD, f"teacher_targets/seed{w.seed}.pt")}
               if KD_CACHE and KD_DISTILS[w.arm] else {}),
        data=KD_DATA,
        teacher=res(KD, "teacher/model.pt"),
        teacher_metrics=res(KD, "teacher/metrics.json"),
        init=lambda w: res(KD, f"init/seed{w.seed if KD_INIT_SEED is None else KD_INIT_SEED}/model.pt"),
    output:
        metrics=res(KD, "runs/{arm}/seed{seed}/metrics.json"),
        checkpoint=res(KD, "checkpoints/{arm}/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(KD),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        targets=lambda w, input: f"--teacher-targets {input.targets}" if getattr(input, "targets", None) else "",
    wildcard_constraints:
        arm="|".join(KD_ARMS) if KD_ARMS else "NONE",
    log:
        log_path(KD, "student", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(KD, "student", "{arm}_seed{seed}")),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.kd_detr.steps student --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.arm} --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --teacher {input.teacher} --teacher-metrics {input.teacher_metrics} --init {input.init}"
        " {params.targets} --checkpoint {output.checkpoint} --out {output.metrics} > {log} 2>&1"


rule kd_detr_figures:
    input:
        metrics=res(KD, "metrics.json"),
        teacher=res(KD, "teacher/metrics.json"),
    output:
        [
            report(res(KD, f"figures/{name}.png"), caption="../report/kd_detr.rst", category=KD)
            for name in KD_FIGS
        ],
    params:
        cfg=lambda w: get_block(KD, "arms"),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(KD, "figures"),
    benchmark:
        bench_path(log_path(KD, "figures")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.kd_detr.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --teacher-metrics {input.teacher} --outdir {params.out_dir} > {log} 2>&1"


rule kd_detr:
    localrule: True
    input:
        RUNS.get(KD, []),  # every run, not only what the committed claims need (fresh clones)
        res(KD, "claims.json"),
        res(KD, "teacher/metrics.json"),
        [res(KD, f"figures/{name}.png") for name in KD_FIGS],
