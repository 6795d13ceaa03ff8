# Training: one job per (dataset, run, seed), resumable; the accuracy summaries over seeds; fine-tuning
# the converted networks with and without BN (Figure 9).


rule train:
    # The checkpoint (RUNS/<dataset>/<run>/seed<k>/checkpoint.pt) is deliberately not an output:
    # Snakemake deletes the outputs of a killed job, and the checkpoint is what the rerun resumes from.
    output:
        metrics=result(layout.train_metrics("{dataset}", "{run}", "{seed}")),
    log:
        f"{LOGS}/train/{{dataset}}/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{run}}/seed{{seed}}.tsv"
    threads: 1
    priority: 1  # after the timing rules (priority 100), before the reports
    resources:
        **training_resources(),
    conda:
        "../../environment.yml"
    params:
        run_config=training_run_config,
        launcher=launcher(),
        gpus=gpu_launch(config["training"].get("device"), TRAINING_PROCESSES),
        profile=NAME,
        checkpoint_dir=lambda wildcards: checkpoint_dir(wildcards.dataset, wildcards.run, wildcards.seed),
    shell:
        "{params.gpus}{params.launcher} -m replication train --run-config {params.run_config} --profile {params.profile} "
        "--dataset {wildcards.dataset} --metrics {output.metrics} --output-dir {params.checkpoint_dir} "
        "--threads {threads} --seed {wildcards.seed} > {log} 2>&1"


rule summary:
    input:
        lambda wildcards: metrics_of(experiment_runs(wildcards.experiment, wildcards.dataset), wildcards.dataset),
    output:
        summary=result(layout.summary_csv("{experiment}", "{dataset}")),
        seeds=result(layout.seeds_csv("{experiment}", "{dataset}")),
    log:
        f"{LOGS}/summary/{{experiment}}_{{dataset}}.log",
    wildcard_constraints:
        experiment="sota|depth_study|table3",
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, input, output: step_args(metrics=list(input), runs=config["runs"],
                                                        summary=output.summary, seeds=output.seeds),
    shell:
        "{params.step} summary {params.args} > {log} 2>&1"


rule finetune:
    input:
        lambda wildcards: trained(wildcards.base)(wildcards),
    output:  # the fine-tuning checkpoint is not an output either (see rule train)
        metrics=result(layout.finetune_metrics("{dataset}", "{base}", "{mode}", "{seed}")),
    log:
        f"{LOGS}/finetune/{{dataset}}/{{base}}_{{mode}}/seed{{seed}}.log",
    threads: 1
    resources:
        **gpu(config["training"].get("device")),
    conda:
        "../../environment.yml"
    params:
        step=STEP,
        args=lambda wildcards, output: step_args(
            run=config["runs"][wildcards.base],
            base_checkpoint_dir=checkpoint_dir(wildcards.dataset, wildcards.base, wildcards.seed),
            checkpoint_dir=checkpoint_dir(wildcards.dataset, f"finetune_{wildcards.base}_{wildcards.mode}",
                                          wildcards.seed),
            metrics=output.metrics, mode=wildcards.mode, dataset=wildcards.dataset, data=config["data"],
            training=config["training"], calibration_batches=EXP["finetune"].get("calibration_batches", 8),
            profile=NAME, seed=int(wildcards.seed)),
        gpus=gpu_launch(config["training"].get("device")),
    shell:
        "{params.gpus}{params.step} finetune {params.args} > {log} 2>&1"
