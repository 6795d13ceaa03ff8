# Experiments on trained networks: Table 2 (MobileNetV2 -> RMNetV1 -> MobileNetV1) and Figure 6
# (pruning), one job per seed, gathered into one CSV per dataset.


rule mobilenet:
    input:
        v2=trained(EXP["mobilenet"]["v2"]),
        v1=trained(EXP["mobilenet"]["v1"]),
    output:
        result(layout.per_seed_csv("mobilenet", "{dataset}", "{seed}")),
    log:
        f"{LOGS}/mobilenet/{{dataset}}/seed{{seed}}.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, output: step_args(
            v2_run=config["runs"][EXP["mobilenet"]["v2"]],
            v2_checkpoint_dir=checkpoint_dir(wildcards.dataset, EXP["mobilenet"]["v2"], wildcards.seed),
            v1_run=config["runs"][EXP["mobilenet"]["v1"]],
            v1_checkpoint_dir=checkpoint_dir(wildcards.dataset, EXP["mobilenet"]["v1"], wildcards.seed),
            output=output[0], dataset=wildcards.dataset, data=config["data"], profile=NAME,
            seed=int(wildcards.seed)),
    shell:
        "{params.step} mobilenet {params.args} > {log} 2>&1"


rule pruning:
    input:
        trained(EXP["pruning"]["run"]),
    output:
        result(layout.per_seed_csv("pruning", "{dataset}", "{seed}")),
    log:
        f"{LOGS}/pruning/{{dataset}}/seed{{seed}}.log",
    threads: workflow.cores  # includes timing
    priority: 100  # as soon as its trained network and the cores are free
    resources:
        **timing(EXP["pruning"]["speed"].get("device")),
    conda:
        "../../environment.yml"
    params:
        step=gpu_launch(EXP["pruning"]["speed"].get("device")) + STEP,  # a GPU job gets its own GPU
        args=lambda wildcards, output, threads: step_args(
            run=config["runs"][EXP["pruning"]["run"]],
            checkpoint_dir=checkpoint_dir(wildcards.dataset, EXP["pruning"]["run"], wildcards.seed),
            output=output[0], dataset=wildcards.dataset, data=config["data"], pruning=EXP["pruning"],
            profile=NAME, threads=threads, seed=int(wildcards.seed)),
    shell:
        "{params.step} pruning {params.args} > {log} 2>&1"


rule gather_seeds:
    input:
        lambda wildcards: [result(layout.per_seed_csv(wildcards.experiment, wildcards.dataset, seed))
                           for seed in SEEDS],
    output:
        result(layout.gathered_csv("{experiment}", "{dataset}")),
    log:
        f"{LOGS}/gather/{{experiment}}_{{dataset}}.log",
    wildcard_constraints:
        experiment="mobilenet|pruning",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(per_seed=list(input), output=output[0]),
    shell:
        "{params.step} gather_seeds {params.args} > {log} 2>&1"
