# Tables beside the paper's numbers and figures, for any task: the task's config block names
# them (tasks.<task>.report) and its package makes them (hkt.tasks.Task.tables / .figures).


rule table:
    conda:
        "../envs/hkt.yaml"
    input:
        metrics="results/{task}/metrics.csv",
        paper=list(C.PAPER_FILES),
        claims=PAPER_CLAIMS,  # the paper's claims in words (flow's ablation table reads them)
    output:
        csv="results/tables/{task}/{name}.csv",
        md="results/tables/{task}/{name}.md",
        tex="results/tables/{task}/{name}.tex",
    params:
        spec=lambda w: C.report_spec(config, w.task),
    log:
        "logs/{task}/table.{name}.log",
    benchmark:
        "benchmarks/table/task={task},name={name}.tsv"
    priority: PRIORITY_REPORT
    # a CSV read and three small files written: on the submit host, where a cluster job would spend
    # its queueing and start-up (two Snakemake starts under SLURM, ~25 s in the rehearsal) on a
    # second of work
    localrule: True
    threads: 1
    resources:
        **plotting_resources(),
    script:
        "../scripts/table.py"


rule figure:
    conda:
        "../envs/hkt.yaml"
    input:
        metrics="results/{task}/metrics.csv",
        paper=list(C.PAPER_FILES),
        curves=lambda w: [f"{d}/curve.csv" for d, _ in final_models(w.task).values()],
    output:
        figure=report("figures/{task}_{name}.png", category="Figures"),
    params:
        spec=lambda w: C.report_spec(config, w.task),
        models=lambda w: {key: d for key, (d, _) in final_models(w.task).items()},
    log:
        "logs/{task}/figure.{name}.log",
    benchmark:
        "benchmarks/figure/task={task},name={name}.tsv"
    priority: PRIORITY_REPORT
    threads: lambda w: job(w.task, "figure", "threads")
    resources:
        **job_resources("figure"),
    script:
        "../scripts/figure.py"


# One self-contained page of every table, figure, the run metadata and the discrepancy register.
rule report_html:
    conda:
        "../envs/hkt.yaml"
    input:
        metrics=expand("results/{task}/metrics.csv", task=config["tasks"]),
        tables=[t for task in config["tasks"] for t in report_targets(task) if t.endswith(".md")],
        figures=[t for task in config["tasks"] for t in report_targets(task) if t.endswith(".png")],
        register="results/discrepancies.csv",
    output:
        "results/report.html",
    params:
        tasks=lambda w: [
            {
                "name": task,
                "scale": config["scale"],
                "metrics": f"results/{task}/metrics.csv",
                "tables": [t for t in report_targets(task) if t.endswith(".md")],
                "figures": [t for t in report_targets(task) if t.endswith(".png")],
            }
            for task in config["tasks"]
        ],
    log:
        "logs/report_html.log",
    benchmark:
        "benchmarks/report_html/all.tsv"
    priority: PRIORITY_REPORT
    localrule: True  # one HTML page of files already made, as the tables
    threads: 1
    resources:
        **plotting_resources(),
    script:
        "../scripts/report_html.py"


# Not part of `all`: freeze the current reproduction of every task (results/frozen/<scale>/, with
# a checksum manifest) — run it on a clean commit: `snakemake freeze --cores 1`.
rule freeze:
    conda:
        "../envs/hkt.yaml"
    input:
        expand("results/{task}/metrics.csv", task=config["tasks"]),
    output:
        f"results/frozen/{config['scale']}/MANIFEST.json",
    params:
        python=sys.executable,
        out=lambda w, output: os.path.dirname(output[0]),
        config=CONFIG_FILE,
    log:
        "logs/freeze.log",
    shell:
        "{params.python} -m hkt.cli freeze {input} --out {params.out} --config {params.config} > {log} 2>&1"


# The runs that the frozen reproduction of the same scale lacks (a method you added) against the
# controls and the best baselines of the same results (`hkt compare`: rerun beside them, on this
# machine), ranked on each task's headline metrics; outside `all`: the frozen folder exists for the
# scales that were frozen. The frozen files are read, never inputs: no job may rewrite them.
rule compare:
    conda:
        "../envs/hkt.yaml"
    input:
        expand("results/{task}/metrics.csv", task=config["tasks"]),
    output:
        csv="results/compare/new_runs.csv",
        ranking="results/compare/new_runs_ranking.csv",
        md="results/compare/new_runs.md",
    params:
        python=sys.executable,
        frozen=f"results/frozen/{config['scale']}",
        config=CONFIG_FILE,
        out=lambda w, output: output.csv.removesuffix(".csv"),
    log:
        "logs/compare.log",
    shell:
        "{params.python} -m hkt.cli compare {input} --frozen {params.frozen} --out {params.out} --config {params.config} > {log} 2>&1"


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
        "results/bench/ga_scaling.csv",
        "results/bench/cost.md",


rule bench_cost:
    conda:
        "../envs/hkt.yaml"
    input:
        config="config/paper.yaml",
        bench=expand("results/bench/{task}_train_step.csv", task=BENCH_TASKS),
    output:
        csv="results/bench/cost.csv",
        md="results/bench/cost.md",
    params:
        python=sys.executable,
        out=lambda w, output: output.csv.removesuffix(".csv"),
    log:
        "logs/bench.cost.log",
    shell:
        "{params.python} -m hkt.cost --config {input.config} --bench {input.bench} --out {params.out} > {log} 2>&1"


rule bench_ga:
    conda:
        "../envs/hkt.yaml"
    output:
        csv="results/bench/ga_scaling.csv",
        figure="results/bench/ga_scaling.png",
    params:
        python=sys.executable,
    log:
        "logs/bench.ga.log",
    threads: 1
    shell:
        "{params.python} -m hkt.bench --ga --out {output.csv} --figure {output.figure} --threads {threads} > {log} 2>&1"


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
