# Tables beside the paper's numbers and figures, for any task: the task's config block names
# them (tasks.<task>.report) and its package makes them (hkt.tasks.Task.tables / .figures).


rule table:
    conda:
        "../envs/hkt.yaml"
    input:
        metrics="results/{task}/metrics.csv",
        paper="results/paper/results.csv",
    output:
        csv="results/tables/{task}/{name}.csv",
        md="results/tables/{task}/{name}.md",
        tex="results/tables/{task}/{name}.tex",
    params:
        spec=lambda w: C.report_spec(config, w.task),
    log:
        "logs/{task}/table.{name}.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    script:
        "../scripts/table.py"


rule figure:
    conda:
        "../envs/hkt.yaml"
    input:
        metrics="results/{task}/metrics.csv",
        paper="results/paper/results.csv",
        curves=lambda w: [f"{d}/curve.csv" for d, _ in final_models(w.task).values()],
    output:
        figure=report("figures/{task}_{name}.png", category="Figures"),
    params:
        spec=lambda w: C.report_spec(config, w.task),
        models=lambda w: {key: d for key, (d, _) in final_models(w.task).items()},
    log:
        "logs/{task}/figure.{name}.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    script:
        "../scripts/figure.py"


# Not part of `all`: run it alone so that nothing else competes for the processor. Its outputs
# are committed, so regenerate them with: snakemake bench --cores all --forcerun bench
rule bench:
    conda:
        "../envs/hkt.yaml"
    output:
        csv="results/bench/cifar10_train_step.csv",
        figure="results/bench/cifar10_train_step.png",
    params:
        python=sys.executable,
    log:
        "logs/bench.log",
    threads: 1  # single-threaded on a CPU so that the figures of different machines compare
    shell:
        "{params.python} -m hkt.bench --config config/config.yaml --config config/paper.yaml "
        "--out {output.csv} --figure {output.figure} --threads {threads} > {log} 2>&1"
