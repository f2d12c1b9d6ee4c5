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


# Not part of `all`: run it alone so that nothing else competes for the processor. Every task
# block with a `bench` block in the smoke or the paper config is measured, at both scales where
# both have one. Outputs are committed; regenerate them with `make bench`.
BENCH_CONFIGS = ["config/config.yaml", "config/paper.yaml"]
BENCH_TASKS = sorted({name for path in BENCH_CONFIGS for name, t in C.load(path)["tasks"].items() if "bench" in t})


rule bench:
    conda:
        "../envs/hkt.yaml"
    input:
        expand("results/bench/{task}_train_step.csv", task=BENCH_TASKS),


rule bench_task:
    conda:
        "../envs/hkt.yaml"
    input:
        BENCH_CONFIGS,
    output:
        csv="results/bench/{task}_train_step.csv",
        figure="results/bench/{task}_train_step.png",
    params:
        python=sys.executable,
        configs=" ".join(f"--config {path}" for path in BENCH_CONFIGS),
    log:
        "logs/bench.{task}.log",
    threads: 1  # single-threaded on a CPU so that the figures of different machines compare
    shell:
        "{params.python} -m hkt.bench {params.configs} --task {wildcards.task} "
        "--out {output.csv} --figure {output.figure} --threads {threads} > {log} 2>&1"
