# cpgnet — cascade point-grid fusion for LiDAR segmentation (arXiv 2204.09914).
# Per arm × seed: train (resumable) → latency (merges the train metrics: one metrics.json per run)
# → aggregate → claims → figures. Data: procedural `synthscan` scans (SemanticKITTI at paper scale).

CP = "cpgnet"
CP_ARMS = list(config[CP]["arms"]) if is_enabled(CP) else []
CP_SEEDS = list(range(config[CP]["seeds"])) if is_enabled(CP) else []
CP_DATA = f"results/data/{config[CP]['dataset']}/{SCALE}" if is_enabled(CP) else f"results/data/off/{SCALE}"  # a study that is off: no job asks for it
CP_FIGS = ["fig_miou_tta", "fig_iou_per_class", "fig_latency"]
CP_SCENE_ARM = config[CP]["eval"]["scene_arm"] if is_enabled(CP) else ""
if is_enabled(CP) and CP_SCENE_ARM not in CP_ARMS:
    raise ValueError(f"config key 'cpgnet.eval.scene_arm' = {CP_SCENE_ARM!r}: expected one of the arms {CP_ARMS}")

if is_enabled(CP):
    register(
        CP,
        runs=[res(CP, f"runs/{a}/seed{k}/metrics.json") for a in CP_ARMS for k in CP_SEEDS],
        figures=[res(CP, f"figures/{name}.png") for name in CP_FIGS] + [res(CP, "figures/fig_bev_scene.png")],
    )


rule cpgnet_train:
    input:
        data=f"{CP_DATA}/manifest.json",
    output:
        metrics=res(CP, "runs/{arm}/seed{seed}/train.json"),
        checkpoint=res(CP, "checkpoints/{arm}/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(CP),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    wildcard_constraints:
        arm="|".join(CP_ARMS) if CP_ARMS else "NONE",
    log:
        log_path(CP, "train", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(CP, "train", "{arm}_seed{seed}")),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.cpgnet.steps train --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.arm} --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --out {output.metrics} --checkpoint {output.checkpoint} > {log} 2>&1"


rule cpgnet_latency:
    input:
        data=f"{CP_DATA}/manifest.json",
        train=res(CP, "runs/{arm}/seed{seed}/train.json"),
        checkpoint=res(CP, "checkpoints/{arm}/seed{seed}/model.pt"),
    output:
        res(CP, "runs/{arm}/seed{seed}/metrics.json"),
    params:
        cfg=lambda w: get_block(CP),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(CP, "latency", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(CP, "latency", "{arm}_seed{seed}")),
    # Latency is judged by claims: the job takes every core so nothing runs beside it; the
    # model itself is timed on `cpgnet.eval.latency_threads` threads.
    threads: exclusive_threads()
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.cpgnet.steps latency --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.arm} --seed {wildcards.seed} --checkpoint {input.checkpoint}"
        " --data-dir {params.data_dir} --train-metrics {input.train} --out {output} > {log} 2>&1"


rule cpgnet_figures:
    input:
        metrics=res(CP, "metrics.json"),
    output:
        [
            report(res(CP, f"figures/{name}.png"), caption="../report/cpgnet.rst", category=CP)
            for name in CP_FIGS
        ],
    params:
        cfg=lambda w: get_block(CP),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(CP, "figures"),
    benchmark:
        bench_path(log_path(CP, "figures")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.cpgnet.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --outdir {params.out_dir} > {log} 2>&1"


rule cpgnet_scene:
    input:
        data=f"{CP_DATA}/manifest.json",
        checkpoint=res(CP, f"checkpoints/{CP_SCENE_ARM}/seed0/model.pt") if is_enabled(CP) else [],
    output:
        report(res(CP, "figures/fig_bev_scene.png"), caption="../report/cpgnet.rst", category=CP),
    params:
        cfg=lambda w: get_block(CP),
        scale=SCALE,
        arm=CP_SCENE_ARM,
        data_dir=lambda w, input: os.path.dirname(input.data),
    log:
        log_path(CP, "scene"),
    benchmark:
        bench_path(log_path(CP, "scene")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.cpgnet.steps scene --params {params.cfg:q} --scale {params.scale}"
        " --arm {params.arm} --seed 0 --checkpoint {input.checkpoint} --data-dir {params.data_dir}"
        " --out {output} > {log} 2>&1"


rule cpgnet:
    localrule: True
    input:
        RUNS.get(CP, []),  # every run, not only what the committed claims need (fresh clones)
        res(CP, "claims.json"),
        [res(CP, f"figures/{name}.png") for name in CP_FIGS],
        res(CP, "figures/fig_bev_scene.png"),
