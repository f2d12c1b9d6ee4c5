# Datasets: downloaded and verified, or generated in the real on-disk layout (embedded default),
# one job per task; its record is written last, so a half-prepared dataset is never complete.


rule prepare_data:
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


def manifest_entry(place_at):
    """The data/MANIFEST.yaml checkpoint entry stored at `place_at`."""
    for name, entry in MANIFEST["checkpoints"].items():
        if entry.get("place_at") == place_at:
            return name, entry
    raise WorkflowError(f"{place_at} is not the place_at of any checkpoint in data/MANIFEST.yaml")


# Published checkpoints (the parent, released children): downloaded and checksum-verified, or,
# offline, an error that says where to get the file and where to put it.
rule fetch_checkpoint:
    output:
        "data/checkpoints/{file}",
    params:
        entry=lambda w: manifest_entry(f"data/checkpoints/{w.file}"),
    log:
        "logs/data/{file}.log",
    localrule: True  # compute nodes often have no internet
    script:
        "../scripts/fetch_checkpoint.py"
