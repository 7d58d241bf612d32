# Generic per-study aggregation and claims, and the cross-study report.


rule aggregate:
    input:
        get_runs,
    output:
        f"results/{{study}}/{SCALE}/metrics.json",
    log:
        f"logs/{{study}}/{SCALE}/aggregate/log.log",
    benchmark:
        bench_path(f"logs/{{study}}/{SCALE}/aggregate/log.log"),
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.engine.metrics --out {output} {input} > {log} 2>&1"


rule claims:
    input:
        metrics=f"results/{{study}}/{SCALE}/metrics.json",
        paper="src/paperzoo/studies/{study}/paper.yaml",
    output:
        f"results/{{study}}/{SCALE}/claims.json",
    log:
        f"logs/{{study}}/{SCALE}/claims/log.log",
    benchmark:
        bench_path(f"logs/{{study}}/{SCALE}/claims/log.log"),
    params:
        scale=SCALE,
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.engine.claims --paper {input.paper} --metrics {input.metrics}"
        " --scale {params.scale} --out {output} > {log} 2>&1"


rule report:
    input:
        claims=[res(s, "claims.json") for s in STUDIES],
        figures=[f for s in STUDIES for f in FIGURES[s]],
    output:
        md=f"results/report/{SCALE}/claims.md",
        csv=f"results/report/{SCALE}/claims.csv",
        html=report(f"results/report/{SCALE}/index.html", caption="../report/report.rst",
                    category="Report"),
    params:
        out_dir=lambda w, output: os.path.dirname(output.md),
        expect=" ".join(ALL_STUDIES),
    log:
        f"logs/report/{SCALE}/report/log.log",
    benchmark:
        bench_path(f"logs/report/{SCALE}/report/log.log"),
    threads: 1
    conda:
        "../../envs/phonon.yaml"
    shell:
        "python -m paperzoo.engine.report build --claims {input.claims} --figures {input.figures}"
        " --expect {params.expect}"
        " --out-dir {params.out_dir} > {log} 2>&1"
