# cfnet — CFNet: cascade fusion inside the backbone vs backbone + FPN (arXiv 2302.06052).
# per arm x seed: train RetinaNet-lite with the arm's pyramid module (COCO eval, params, FLOPs)
# → aggregate → claims → figures. Data: procedural `shapes_dense` at tiny/mini.

CF = "cfnet"
CF_ARMS = list(config[CF]["run_arms"]) if is_enabled(CF) else []
CF_SEEDS = list(range(config[CF]["seeds"])) if is_enabled(CF) else []
CF_DATASET = config[CF]["dataset"] if is_enabled(CF) else "off"  # a study that is off: no job asks for its paths
CF_FIGS = ["table_arms", "fig_ap_per_arm", "fig_ap_vs_cost"]
CF_DATA = (
    "results/data/coco/paper/verified.json"
    if CF_DATASET == "coco"
    else f"results/data/{CF_DATASET}/{SCALE}/manifest.json"
)
CF_PRETRAINED = bool(config[CF]["pretrained"]) if is_enabled(CF) else False
IMAGENET = "results/data/imagenet/paper"  # the three ILSVRC2012 archives go here (registration)

if is_enabled(CF):
    register(
        CF,
        runs=[res(CF, f"runs/{a}/seed{k}/metrics.json") for a in CF_ARMS for k in CF_SEEDS],
        figures=[res(CF, f"figures/{name}.png") for name in CF_FIGS],
    )


rule cfnet_train:
    input:
        data=CF_DATA,
        pretrained=lambda w: [res(CF, f"pretrain/{w.arm}/model.pt")] if CF_PRETRAINED else [],
    output:
        metrics=res(CF, "runs/{arm}/seed{seed}/metrics.json"),
        checkpoint=res(CF, "checkpoints/{arm}/seed{seed}/model.pt"),
    params:
        cfg=lambda w: get_block(CF),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input.data),
        pretrained=lambda w, input: f"--pretrained {input.pretrained[0]}" if CF_PRETRAINED else "",
    wildcard_constraints:
        arm="|".join(CF_ARMS) if CF_ARMS else "NONE",
    log:
        log_path(CF, "train", "{arm}_seed{seed}"),
    benchmark:
        bench_path(log_path(CF, "train", "{arm}_seed{seed}")),
    threads: 1
    resources:
        gpu=1 if SCALE == "paper" else 0,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.cfnet.steps train --params {params.cfg:q} --scale {params.scale}"
        " --arm {wildcards.arm} --seed {wildcards.seed} --threads {threads} --data-dir {params.data_dir}"
        " --checkpoint {output.checkpoint} --out {output.metrics}"
        " {params.pretrained} > {log} 2>&1"


# Paper scale: ImageNet-1K needs registration. The archives are verified against torchvision's
# MD5s, extracted to train/ and val/ by torchvision's parsers, then every arm's backbone is
# pretrained by one recipe (CFNet: CEDNet's deep supervision).
rule data_imagenet:
    output:
        f"{IMAGENET}/extracted.json",
    params:
        root=lambda w, output: os.path.dirname(output[0]),
    log:
        "logs/data/paper/imagenet.log",
    benchmark:
        bench_path("logs/data/paper/imagenet.log"),
    threads: 1
    resources:
        runtime=1440,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.data.imagenet verify --root {params.root} --out {params.root}/verified.json > {log} 2>&1"
        " && python -m paperzoo.data.imagenet extract --root {params.root} --out {output} >> {log} 2>&1"


rule cfnet_pretrain:
    input:
        f"{IMAGENET}/extracted.json",
    output:
        checkpoint=res(CF, "pretrain/{arm}/model.pt"),
        metrics=res(CF, "pretrain/{arm}/metrics.json"),  # not under runs/: not an arm of the study
    params:
        cfg=lambda w: get_block(CF, "arms", "pretrain"),
        scale=SCALE,
        data_dir=lambda w, input: os.path.dirname(input[0]),
    wildcard_constraints:
        arm="|".join(CF_ARMS) if CF_ARMS else "NONE",
    log:
        log_path(CF, "pretrain", "{arm}"),
    benchmark:
        bench_path(log_path(CF, "pretrain", "{arm}")),
    threads: 8
    resources:
        gpu=1,
        runtime=7 * 24 * 60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.cfnet.pretrain --params {params.cfg:q} --scale {params.scale} --arm {wildcards.arm}"
        " --data-dir {params.data_dir} --checkpoint {output.checkpoint} --out {output.metrics} --threads {threads}"
        " --workers {threads} > {log} 2>&1"


rule cfnet_figures:
    input:
        metrics=res(CF, "metrics.json"),
    output:
        [
            report(res(CF, f"figures/{name}.png"), caption="../report/cfnet.rst", category=CF)
            for name in CF_FIGS
        ],
    params:
        cfg=lambda w: get_block(CF, "arms", "run_arms", "baseline_arm"),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(CF, "figures"),
    benchmark:
        bench_path(log_path(CF, "figures")),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.studies.cfnet.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --outdir {params.out_dir} > {log} 2>&1"


rule cfnet:
    localrule: True
    input:
        RUNS.get(CF, []),  # every run, not only what the committed claims need (fresh clones)
        res(CF, "claims.json"),
        [res(CF, f"figures/{name}.png") for name in CF_FIGS],
