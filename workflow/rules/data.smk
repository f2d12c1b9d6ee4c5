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
