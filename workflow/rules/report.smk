# Tables beside the paper's numbers, method comparisons and figures.


def report_targets(task):
    return [f"results/tables/{task}/{name}" for name in
            ("table2.csv", "table2.md", "table2.tex", "comparisons.csv")] + [
        f"figures/{task}_learning_curves.png", f"figures/{task}_accuracy_vs_params.png"]


rule table_cifar10:
    input:
        metrics="results/cifar10/metrics.csv",
        paper="results/paper/results.csv",
    output:
        csv="results/tables/cifar10/table2.csv",
        md="results/tables/cifar10/table2.md",
        tex="results/tables/cifar10/table2.tex",
        comparisons="results/tables/cifar10/comparisons.csv",
    log:
        "logs/cifar10/table2.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    script:
        "../scripts/table.py"


rule figures_cifar10:
    input:
        metrics="results/cifar10/metrics.csv",
        curves=[f"{run_dir('cifar10', m, v, s)}/curve.csv" for m, v, s in task_runs("cifar10")]
        + [f"{parent_dir('cifar10')}/curve.csv"],
    output:
        curves=report("figures/cifar10_learning_curves.png", category="CIFAR-10"),
        scatter=report("figures/cifar10_accuracy_vs_params.png", category="CIFAR-10"),
    params:
        runs={("parent", "default", config["tasks"]["cifar10"]["parent"]["seed"]): parent_dir("cifar10"),
              **{(m, v, s): run_dir("cifar10", m, v, s) for m, v, s in task_runs("cifar10")}},
    log:
        "logs/cifar10/figures.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    script:
        "../scripts/figures.py"


# Not part of `all`: run it alone so that nothing else competes for the processor. Its outputs
# are committed, so regenerate them with: snakemake bench --cores all --forcerun bench
rule bench:
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
