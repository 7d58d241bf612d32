# interface_phonons — quartic interface potential and elastic phonon transmission
# (arXiv 2202.11037), minimal model in the spirit of the paper. DFT-free, numpy only.
# elastic (AGF + SCPH) and localized are deterministic (one run, "seed0"); md runs per seed.

IP = "interface_phonons"
IP_MD_SEEDS = list(range(config[IP]["md"]["seeds"])) if is_enabled(IP) else []
IP_FIGS = [
    "fig_transmission_vs_T",
    "fig_keff_vs_T",
    "fig_conductance_vs_T",
    "fig_conductance_physical_vs_T",
    "fig_localization_vs_T",
]

if is_enabled(IP):
    register(
        IP,
        runs=[res(IP, "runs/elastic/seed0/metrics.json"), res(IP, "runs/localized/seed0/metrics.json")]
        + [res(IP, f"runs/md/seed{k}/metrics.json") for k in IP_MD_SEEDS],
        figures=[res(IP, f"figures/{name}.png") for name in IP_FIGS],
    )


rule interface_phonons_elastic:
    output:
        metrics=res(IP, "runs/elastic/seed0/metrics.json"),
        npz=res(IP, "runs/elastic/seed0/curves.npz"),
        keff=res(IP, "tables/keff_vs_T.csv"),
        transmission=res(IP, "tables/transmission_vs_omega.csv"),
        physical=res(IP, "tables/transmission_physical.csv"),
        conductance=res(IP, "tables/conductance_vs_T.csv"),
    params:
        cfg=lambda w: get_block(IP, "model", "scph", "elastic", "physical"),
        scale=SCALE,
    log:
        log_path(IP, "elastic"),
    benchmark:
        bench_path(log_path(IP, "elastic")),
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.studies.interface_phonons.steps elastic --params {params.cfg:q} --scale {params.scale}"
        " --threads {threads} --out {output.metrics} --npz {output.npz} --keff-csv {output.keff}"
        " --transmission-csv {output.transmission} --physical-csv {output.physical}"
        " --conductance-csv {output.conductance} > {log} 2>&1"


rule interface_phonons_localized:
    output:
        metrics=res(IP, "runs/localized/seed0/metrics.json"),
        npz=res(IP, "runs/localized/seed0/curves.npz"),
        table=res(IP, "tables/localization_vs_T.csv"),
    params:
        cfg=lambda w: get_block(IP, "model", "scph", "localized"),
        scale=SCALE,
    log:
        log_path(IP, "localized"),
    benchmark:
        bench_path(log_path(IP, "localized")),
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.studies.interface_phonons.steps localized --params {params.cfg:q} --scale {params.scale}"
        " --threads {threads} --out {output.metrics} --table {output.table} --npz {output.npz} > {log} 2>&1"


# Resumable: a killed run continues from <metrics>.partial (not a declared output, so
# Snakemake keeps it when the job fails).
rule interface_phonons_md:
    output:
        metrics=res(IP, "runs/md/seed{seed}/metrics.json"),
        table=res(IP, "runs/md/seed{seed}/md.csv"),
    params:
        cfg=lambda w: get_block(IP, "model", "md"),
        scale=SCALE,
    log:
        log_path(IP, "md", "seed{seed}"),
    benchmark:
        bench_path(log_path(IP, "md", "seed{seed}")),
    threads: 1
    resources:
        runtime=60,
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.studies.interface_phonons.steps md --params {params.cfg:q} --scale {params.scale}"
        " --seed {wildcards.seed} --threads {threads} --out {output.metrics} --table {output.table} > {log} 2>&1"


rule interface_phonons_figures:
    input:
        metrics=res(IP, "metrics.json"),
        elastic=res(IP, "runs/elastic/seed0/curves.npz"),
        localized=res(IP, "runs/localized/seed0/curves.npz"),
    output:
        [
            report(res(IP, f"figures/{name}.png"), caption="../report/interface_phonons.rst", category=IP)
            for name in IP_FIGS
        ],
    params:
        cfg=lambda w: get_block(IP, "model", "md"),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(IP, "figures"),
    benchmark:
        bench_path(log_path(IP, "figures")),
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.studies.interface_phonons.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --metrics {input.metrics} --elastic-npz {input.elastic} --localized-npz {input.localized}"
        " --outdir {params.out_dir} > {log} 2>&1"


rule interface_phonons:
    localrule: True
    input:
        RUNS.get(IP, []),  # every run, not only what the committed claims need (fresh clones)
        res(IP, "claims.json"),
        [res(IP, f"figures/{name}.png") for name in IP_FIGS],
