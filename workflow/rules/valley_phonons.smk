# valley_phonons — valley linear Weyl phonons across the 80 layer groups (arXiv 2302.01054).
# DFT-free: Tersoff (graphene, hBN) through ASE, phonons through phonopy, layer groups through
# spglib. All steps are deterministic (one run each, "seed0").

VP = "valley_phonons"
VP_MATERIALS = list(config[VP]["materials"]) if is_enabled(VP) else []
VP_FIGS = ["fig_bands_valley", "fig_berry_vs_radius", "fig_layergroup_scan"]

if is_enabled(VP):
    register(
        VP,
        runs=[res(VP, f"runs/{m}/seed0/metrics.json") for m in VP_MATERIALS]
        + [res(VP, "runs/lgscan/seed0/metrics.json")],
        figures=[res(VP, f"figures/{name}.png") for name in VP_FIGS],
    )


rule valley_phonons_material:
    output:
        metrics=res(VP, "runs/{material}/seed0/metrics.json"),
        phonopy=res(VP, "runs/{material}/seed0/phonopy_params.yaml"),
        bands=res(VP, "runs/{material}/seed0/bands.npz"),
        valley=res(VP, "runs/{material}/seed0/valley.json"),
        berry=res(VP, "tables/berry_{material}.csv"),
    params:
        cfg=lambda w: get_block(VP, "materials", "structure", "phonons", "valley"),
        scale=SCALE,
    wildcard_constraints:
        material="|".join(VP_MATERIALS) if VP_MATERIALS else "NONE",
    log:
        log_path(VP, "material", "{material}"),
    benchmark:
        bench_path(log_path(VP, "material", "{material}")),
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.studies.valley_phonons.steps material --params {params.cfg:q} --scale {params.scale}"
        " --material {wildcards.material} --threads {threads} --out {output.metrics}"
        " --phonopy-params {output.phonopy} --bands-npz {output.bands} --valley-json {output.valley}"
        " --berry-csv {output.berry} > {log} 2>&1"


rule valley_phonons_lgscan:
    input:
        materials=[res(VP, f"runs/{m}/seed0/metrics.json") for m in VP_MATERIALS],
    output:
        metrics=res(VP, "runs/lgscan/seed0/metrics.json"),
        table=res(VP, "tables/layergroup_scan.csv"),
        hosts=res(VP, "tables/host_layergroups.csv"),
    params:
        cfg=lambda w: get_block(VP, "lgscan", "valley"),
        scale=SCALE,
    log:
        log_path(VP, "lgscan"),
    benchmark:
        bench_path(log_path(VP, "lgscan")),
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.studies.valley_phonons.steps lgscan --params {params.cfg:q} --scale {params.scale}"
        " --threads {threads} --out {output.metrics} --table {output.table} --hosts {output.hosts}"
        " --materials {input.materials} > {log} 2>&1"


rule valley_phonons_figures:
    input:
        bands=[res(VP, f"runs/{m}/seed0/bands.npz") for m in VP_MATERIALS],
        berry=[res(VP, f"tables/berry_{m}.csv") for m in VP_MATERIALS],
        scan=res(VP, "tables/layergroup_scan.csv"),
    output:
        [
            report(res(VP, f"figures/{name}.png"), caption="../report/valley_phonons.rst", category=VP)
            for name in VP_FIGS
        ],
    params:
        cfg=lambda w: get_block(VP, "valley"),
        scale=SCALE,
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_path(VP, "figures"),
    benchmark:
        bench_path(log_path(VP, "figures")),
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.studies.valley_phonons.steps figures --params {params.cfg:q} --scale {params.scale}"
        " --bands-npz {input.bands} --berry-csv {input.berry} --scan-csv {input.scan}"
        " --outdir {params.out_dir} > {log} 2>&1"


rule valley_phonons:
    localrule: True
    input:
        RUNS.get(VP, []),  # every run, not only what the committed claims need (fresh clones)
        res(VP, "claims.json"),
        [res(VP, f"figures/{name}.png") for name in VP_FIGS],
