# Timing: images/s of every table row, the paired speed ratios of the speed claims, and the Figure 7
# ablation. A timing job takes every core (threads: workflow.cores), so nothing runs beside it, and the
# exclusive `timing` resource, so no two timing jobs overlap on any executor. The cost model's
# predictions (rule cost_model) time nothing and need neither.


rule throughput:
    output:
        result(layout.THROUGHPUT),
    log:
        f"{LOGS}/throughput.log",
    benchmark:
        f"{BENCH}/throughput.tsv"
    threads: workflow.cores
    priority: 100  # timing first, on a machine the run has not loaded or heated (the scheduler sums
    # priorities over the jobs it starts at once, so this outweighs filling the cores with trainings)
    resources:
        **timing(config["throughput"].get("device")),
    conda:
        "../../environment.yml"
    params:
        step=gpu_launch(config["throughput"].get("device")) + STEP,  # a GPU job gets its own GPU
        args=lambda wildcards, output, threads: step_args(output=output[0], throughput=config["throughput"],
                                                          profile=NAME, threads=threads),
    shell:
        "{params.step} throughput {params.args} > {log} 2>&1"


rule speed_pairs:
    output:
        result(layout.SPEED_PAIRS),
    log:
        f"{LOGS}/speed_pairs.log",
    threads: workflow.cores
    priority: 100  # timing first, on a machine the run has not loaded or heated (the scheduler sums
    # priorities over the jobs it starts at once, so this outweighs filling the cores with trainings)
    resources:
        **timing(config["throughput"].get("device")),
    conda:
        "../../environment.yml"
    params:
        step=gpu_launch(config["throughput"].get("device")) + STEP,  # a GPU job gets its own GPU
        args=lambda wildcards, output, threads: step_args(output=output[0], throughput=config["throughput"],
                                                          profile=NAME, threads=threads),
    shell:
        "{params.step} speed_pairs {params.args} > {log} 2>&1"


rule ablation:
    output:
        result(layout.ABLATION_SPEED),
    log:
        f"{LOGS}/ablation.log",
    threads: workflow.cores
    priority: 100  # timing first, on a machine the run has not loaded or heated (the scheduler sums
    # priorities over the jobs it starts at once, so this outweighs filling the cores with trainings)
    resources:
        **timing(config["ablation"]["speed"].get("device")),
    conda:
        "../../environment.yml"
    params:
        step=gpu_launch(config["ablation"]["speed"].get("device")) + STEP,  # a GPU job gets its own GPU
        args=lambda wildcards, output, threads: step_args(output=output[0], ablation=config["ablation"],
                                                          profile=NAME, threads=threads),
    shell:
        "{params.step} ablation {params.args} > {log} 2>&1"


rule cost_model:
    output:
        result(layout.PREDICTED),
    log:
        f"{LOGS}/cost_model.log",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, output: step_args(output=output[0]),
    shell:
        "{params.step} cost_model {params.args} > {log} 2>&1"
