# Datasets: downloaded and verified, or generated in the real on-disk layout (embedded default).


rule prepare_cifar10:
    output:
        manifest=data_manifest("cifar10"),
    params:
        task="cifar10",
        data=config["tasks"]["cifar10"]["data"],
    log:
        "logs/data/cifar10.log",
    threads: job("cifar10", "data", "threads")
    resources:
        **job_resources("data", task="cifar10"),
    script:
        "../scripts/prepare_data.py"


def manifest_entry(place_at):
    """The data/MANIFEST.yaml checkpoint entry stored at `place_at`."""
    for name, entry in C.load_manifest()["checkpoints"].items():
        if entry.get("place_at") == place_at:
            return name
    raise WorkflowError(f"{place_at} is not the place_at of any checkpoint in data/MANIFEST.yaml")


# Published checkpoints (the parent, released children): downloaded and checksum-verified, or,
# offline, an error that says where to get the file and where to put it.
rule fetch_checkpoint:
    output:
        "data/checkpoints/{file}",
    params:
        name=lambda w: manifest_entry(f"data/checkpoints/{w.file}"),
    log:
        "logs/data/{file}.log",
    localrule: True  # compute nodes often have no internet
    script:
        "../scripts/fetch_checkpoint.py"
