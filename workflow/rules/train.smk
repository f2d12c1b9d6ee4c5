# Training: the parent once per task, then every (method, variant, seed) run of the config.
# Runs that start from the trained child (`init: child`) depend on the child-alone run of the
# same seed; methods that read the parent depend on the parent.


def parent_inputs(wildcards):
    task_cfg = config["tasks"][wildcards.task]
    inputs = {"data": data_manifest(wildcards.task)}
    name = task_cfg["parent"].get("published")
    if name and task_cfg["parent"]["source"] != "train":
        place = C.load_manifest()["checkpoints"][name]["place_at"]
        if task_cfg["parent"]["source"] == "published" or Path(place).exists():
            inputs["published"] = place
    return inputs


rule train_parent:
    input:
        unpack(parent_inputs),
    output:
        ckpt=f"{RUNS}/{{task}}/parent/child.pt",
        curve=f"{RUNS}/{{task}}/parent/curve.csv",
        meta=f"{RUNS}/{{task}}/parent/meta.json",
    log:
        "logs/{task}/parent.log",
    priority: 10  # the longest job on the critical path: start it before the children
    threads: lambda w: job(w.task, "parent", "threads")
    resources:
        **job_resources("parent"),
    params:
        processes=lambda w: job(w.task, "parent", "processes"),
    script:
        "../scripts/train_parent.py"


def run_inputs(wildcards):
    spec = C.run_spec(config, wildcards.task, wildcards.method, wildcards.variant)
    inputs = {"data": data_manifest(wildcards.task)}
    if spec["needs_parent"]:
        inputs["parent"] = f"{parent_dir(wildcards.task)}/child.pt"
    if spec["init"] == "child":
        inputs["init"] = f"{run_dir(wildcards.task, *C.CHILD_RUN, wildcards.seed)}/child.pt"
    return inputs


rule train_run:
    input:
        unpack(run_inputs),
    output:
        ckpt=f"{RUNS}/{{task}}/{{method}}/{{variant}}/seed{{seed}}/child.pt",
        curve=f"{RUNS}/{{task}}/{{method}}/{{variant}}/seed{{seed}}/curve.csv",
        meta=f"{RUNS}/{{task}}/{{method}}/{{variant}}/seed{{seed}}/meta.json",
    log:
        "logs/{task}/{method}/{variant}/seed{seed}.log",
    threads: lambda w: job(w.task, "train", "threads")
    resources:
        **job_resources("train"),
    params:
        processes=lambda w: job(w.task, "train", "processes"),
    script:
        "../scripts/train_run.py"
