# Datasets: downloaded and verified, or generated in the real on-disk layout (embedded default),
# one job per task; its record is written last, so a half-prepared dataset is never complete.


rule prepare_data:
    conda:
        "../envs/hkt.yaml"
    output:
        record="results/data/{task}.json",
    params:
        spec=lambda w: C.data_spec(config, w.task),
    log:
        "logs/data/{task}.log",
    threads: lambda w: job(w.task, "data", "threads")
    resources:
        **job_resources("data"),
    script:
        "../scripts/prepare_data.py"


# Published checkpoints (the parent, released children): downloaded and checksum-verified, or,
# offline, an error that says where to get the file and where to put it.
rule fetch_checkpoint:
    conda:
        "../envs/hkt.yaml"
    output:
        "data/checkpoints/{file}",
    params:
        entry=lambda w: manifest_entry(f"data/checkpoints/{w.file}"),
    log:
        "logs/data/{file}.log",
    localrule: True  # compute nodes often have no internet
    script:
        "../scripts/fetch_checkpoint.py"
