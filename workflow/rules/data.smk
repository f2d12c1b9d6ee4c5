# Datasets: the files a data job reads from the network are fetched first, by local rules (compute
# nodes often have no internet), each verified before it is kept; then one job per part of a
# data root (hkt.config.data_jobs, shared by the blocks that read that root) verifies and extracts
# them, checks layouts placed by hand, or generates the embedded default's data in the real
# on-disk layout, offline. Its record is written last, so a half-prepared dataset is never complete.


rule prepare_data:
    conda:
        "../envs/hkt.yaml"
    input:
        data_downloads,
    output:
        record="results/data/{dataroot}/{part}.json",
    params:
        spec=data_job,
    log:
        "logs/data/{dataroot}/{part}.log",
    benchmark:
        "benchmarks/prepare_data/dataroot={dataroot},part={part}.tsv"
    priority: PRIORITY_CHAIN_HEAD
    threads: lambda w: job(data_job(w)["task"], "data", "threads")
    resources:
        **job_resources("data", task=lambda w: data_job(w)["task"]),
    script:
        "../scripts/prepare_data.py"


# One local rule per file of the network that a data job reads (named by its place on disk), so
# each archive is fetched once, where the network is, whichever blocks read it.
for _path, _download in all_downloads().items():

    rule:
        name:
            f"download_{re.sub(r'[^A-Za-z0-9_]', '_', os.path.basename(_path))}"
        output:
            _path,
        params:
            download=_download,
        log:
            f"logs/download/{os.path.basename(_path)}.log",
        localrule: True
        script:
            "../scripts/download.py"


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
