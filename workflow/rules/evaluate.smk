# Evaluation: the only step that reads the test split. One job per task scores every deployed
# child (and the parent) loaded into its bare architecture.


rule evaluate:
    input:
        data=lambda w: data_manifest(w.task),
        parent=lambda w: f"{parent_dir(w.task)}/child.pt",
        runs=lambda w: [f"{run_dir(w.task, m, v, s)}/child.pt" for m, v, s in task_runs(w.task)],
        published=lambda w: [C.load_manifest()["checkpoints"][name]["place_at"]
                             for name in config["tasks"][w.task]["evaluation"].get("published", [])],
    output:
        metrics="results/{task}/metrics.csv",
    params:
        runs=lambda w: {(m, v, s): run_dir(w.task, m, v, s) for m, v, s in task_runs(w.task)},
        parent=lambda w: parent_dir(w.task),
    log:
        "logs/{task}/evaluate.log",
    threads: lambda w: job(w.task, "evaluate", "threads")
    resources:
        **job_resources("evaluate"),
    script:
        "../scripts/evaluate.py"
