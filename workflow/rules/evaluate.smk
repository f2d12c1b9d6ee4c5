# Evaluation: the only step that reads the test split. One job per task scores every deployed
# child (and the parent) loaded into its bare architecture, after checking that each was
# trained with its current specification.


rule evaluate:
    conda:
        "../envs/hkt.yaml"
    input:
        data=lambda w: data_record(w.task),
        models=lambda w: [f"{d}/{WEIGHTS[spec['role']]}" for d, spec in final_models(w.task).values()],
        published=lambda w: [MANIFEST["checkpoints"][name]["place_at"]
                             for name in config["tasks"][w.task]["evaluation"].get("published", [])],
    output:
        metrics="results/{task}/metrics.csv",
    params:
        spec=lambda w: C.evaluation_spec(config, w.task, MANIFEST),
        models=lambda w: final_models(w.task),
    log:
        "logs/{task}/evaluate.log",
    benchmark:
        "benchmarks/evaluate/task={task}.tsv"
    priority: PRIORITY_REPORT
    threads: lambda w: job(w.task, "evaluate", "threads")
    resources:
        **job_resources("evaluate"),
    script:
        "../scripts/evaluate.py"


# Files a deployed model writes for an outside benchmark (tasks.<task>.report.exports), e.g.
# KITTI-2015 test-set flow PNGs for the benchmark's server; the first seed of each named run.
rule export:
    conda:
        "../envs/hkt.yaml"
    input:
        data=lambda w: data_record(w.task),
        model=lambda w: export_model(w)[0],
    output:
        directory("results/exports/{task}/{name}/{method}/{variant}/seed{seed}"),
    params:
        spec=lambda w: C.evaluation_spec(config, w.task, MANIFEST),
        model_dir=lambda w: export_model(w)[1],
        current=lambda w: export_model(w)[2],
    log:
        "logs/{task}/export.{name}.{method}.{variant}.seed{seed}.log",
    benchmark:
        "benchmarks/export/task={task},name={name},method={method},variant={variant},seed={seed}.tsv"
    priority: PRIORITY_REPORT
    threads: lambda w: job(w.task, "evaluate", "threads")
    resources:
        **job_resources("evaluate"),
    script:
        "../scripts/export.py"
