# Datasets. Embedded scales (tiny, mini) generate them, seeded; the paper scale downloads
# and verifies COCO 2017. Outputs: results/data/<dataset>/<scale>/ with manifest.json
# written last (it exists only for a complete dataset). DVC-tracked (dvc.yaml, stage data).

rule data_generate:
    output:
        f"results/data/{{dataset}}/{SCALE}/manifest.json",
    params:
        cfg=lambda w: get_data_block(w.dataset),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    wildcard_constraints:
        dataset="|".join(DATASETS),
    log:
        f"logs/data/{SCALE}/generate/{{dataset}}.log",
    benchmark:
        bench_path(f"logs/data/{SCALE}/generate/{{dataset}}.log"),
    threads: 1
    # Seconds each, and every study waits for its data; Snakemake's priorities do not pass
    # upstream, so without this the priority-10 jobs of other studies hold it back
    # (docs/ARCHITECTURE.md, Per-job cost: "Data first").
    priority: 20
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.data.generate {wildcards.dataset} --params {params.cfg:q}"
        " --out-dir {params.out_dir} > {log} 2>&1"


# Paper scale: HTTPS download with size + SHA-256 checks, resumable, safe extraction.
rule data_coco:
    output:
        "results/data/coco/paper/verified.json",
    params:
        cfg=lambda w: get_data_block("coco"),
        root=lambda w, output: os.path.dirname(output[0]),
    log:
        "logs/data/paper/coco.log",
    benchmark:
        bench_path("logs/data/paper/coco.log"),
    threads: 1
    resources:
        runtime=600,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.data.coco_download fetch --params {params.cfg:q} --root {params.root} > {log} 2>&1"
        " && python -m paperzoo.data.coco_download verify --params {params.cfg:q} --root {params.root}"
        " --splits val2017 train2017 --out {output} >> {log} 2>&1"


# Paper scale of lae: CIFAR-100 (MD5-checked) and ImageNet-R (+ L2P split lists; no published
# checksum, so data.imagenet_r.allow_unverified must be set deliberately).
rule data_cl_download:
    output:
        "results/data/{cl_dataset}/paper/manifest.json",
    params:
        cfg=lambda w: get_data_block(w.cl_dataset),
    wildcard_constraints:
        cl_dataset="cifar100|imagenet_r",
    log:
        "logs/data/paper/{cl_dataset}.log",
    benchmark:
        bench_path("logs/data/paper/{cl_dataset}.log"),
    threads: 1
    resources:
        runtime=240,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.data.cl_download fetch --dataset {wildcards.cl_dataset} --params {params.cfg:q}"
        " --out {output} > {log} 2>&1"


rule data:
    localrule: True
    input:
        data_targets(),


# Paper scale of cpgnet: SemanticKITTI needs registration, so it is downloaded by hand
# (instructions: paperzoo.data.semantickitti); this rule only verifies it.
rule data_semantickitti:
    output:
        "results/data/semantickitti/paper/manifest.json",
    params:
        cfg=lambda w: get_data_block("semantickitti"),
    log:
        "logs/data/paper/semantickitti.log",
    benchmark:
        bench_path("logs/data/paper/semantickitti.log"),
    threads: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m paperzoo.data.semantickitti verify --params {params.cfg:q} --out {output} > {log} 2>&1"
