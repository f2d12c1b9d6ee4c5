# Training: the parent once per task, then every (method, variant, seed) run of the config, each
# as one job per training stage. A job receives its resolved specification through `params:`
# and reads nothing else, so Snakemake reruns exactly the jobs whose specification changed and
# everything downstream of them. The last stage writes into the model's own directory; earlier
# stages into stage-<name>/ beside it, and the next stage starts from their method.pt. Runs that
# start from the trained child (`init: child`) depend on the child-alone run of the same seed.


rule train_parent:
    conda:
        "../envs/hkt.yaml"
    input:
        unpack(parent_inputs),
    output:
        weights=f"{PARENT}/parent.pt",
        curve=f"{PARENT}/curve.csv",
        meta=f"{PARENT}/meta.json",
    log:
        "logs/{task}/parent.log",
    benchmark:
        "benchmarks/train_parent/task={task}.tsv"
    priority: PRIORITY_CHAIN_HEAD
    threads: lambda w: job(w.task, "parent", "threads")
    resources:
        **job_resources("parent"),
    params:
        spec=parent_spec_param,
        processes=lambda w: job(w.task, "parent", "processes"),
    script:
        "../scripts/train.py"


use rule train_parent as train_parent_stage with:
    output:
        weights=f"{PARENT}/stage-{{stage}}/parent.pt",
        curve=f"{PARENT}/stage-{{stage}}/curve.csv",
        meta=f"{PARENT}/stage-{{stage}}/meta.json",
        method=f"{PARENT}/stage-{{stage}}/method.pt",
    log:
        "logs/{task}/parent.stage-{stage}.log",
    benchmark:
        "benchmarks/train_parent_stage/task={task},stage={stage}.tsv"


rule train_run:
    conda:
        "../envs/hkt.yaml"
    input:
        unpack(run_inputs),
    output:
        weights=f"{RUN}/child.pt",
        curve=f"{RUN}/curve.csv",
        meta=f"{RUN}/meta.json",
    log:
        "logs/{task}/{method}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/train_run/task={task},method={method},variant={variant},seed={seed}.tsv"
    priority: run_priority
    threads: lambda w: job(w.task, "train", "threads")
    resources:
        **job_resources("train"),
    params:
        spec=run_spec_param,
        processes=lambda w: job(w.task, "train", "processes"),
    script:
        "../scripts/train.py"


use rule train_run as train_run_stage with:
    output:
        weights=f"{RUN}/stage-{{stage}}/child.pt",
        curve=f"{RUN}/stage-{{stage}}/curve.csv",
        meta=f"{RUN}/stage-{{stage}}/meta.json",
        method=f"{RUN}/stage-{{stage}}/method.pt",
    log:
        "logs/{task}/{method}/{variant}/seed{seed}.stage-{stage}.log",
    benchmark:
        "benchmarks/train_run_stage/task={task},method={method},variant={variant},seed={seed},stage={stage}.tsv"
    priority: PRIORITY_CHAIN_HEAD  # the run's later stages wait on it
