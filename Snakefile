"""RMNet replication workflow: every experiment to results/<profile>/**.csv, every table and figure
regenerated from those CSVs alone into figures/<profile>/.

    snakemake --cores 8                                   # embedded default (CPU, minutes)
    snakemake --cores 8 --configfile config/paper.yaml    # the paper's settings (GPUs, days)
    snakemake --workflow-profile profiles/slurm --configfile config/paper.yaml   # on SLURM (README)
    snakemake --report report.html                        # self-contained HTML report
"""

import json
import os
import shlex
import sys

from replication import workflow_steps as steps

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")
try:
    steps.check_config(config)  # model names and run references, before any job starts
except ValueError as error:
    raise WorkflowError(str(error))


report: "workflow/report/workflow.rst"


PROFILE = config["profile"]
RESULTS = f"results/{PROFILE}"
RUNS = f"runs/{PROFILE}"
FIGURES = f"figures/{PROFILE}"
LOGS = f"logs/{PROFILE}"
BENCH = f"benchmarks/{PROFILE}"
DATASETS = config["datasets"]
EXP = config["experiments"]
SEEDS = config["training"].get("seeds") or [config["training"].get("seed", 0)]


def gpu_for(device):
    """A GPU for a job whose work runs on ``device`` (a cluster job gets no GPU it did not ask for)."""
    return {"gpu": 1} if str(device or "cpu").startswith("cuda") else {}


GPU = gpu_for(config["throughput"].get("device"))

wildcard_constraints:
    dataset="[a-z0-9_]+",
    run="[A-Za-z0-9_]+",
    mode="bn|fused",
    seed="[0-9]+",


def training_payload(wildcards):
    """The run's spec and the shared settings, as one JSON argument for the training entry point."""
    training = dict(config["training"])
    if wildcards.dataset == "imagenet":
        training["preset"] = training.get("imagenet_preset", "imagenet_repvgg")
    payload = {"run": config["runs"][wildcards.run], "data": config["data"], "training": training,
               "profile": PROFILE}
    return shlex.quote(json.dumps(payload))


def launcher():
    """The interpreter running this workflow (not whatever 'python' is on PATH), or torchrun through it."""
    configured = config["training"].get("launcher", "python")
    python = shlex.quote(sys.executable)
    if configured == "python":
        return python
    if configured.startswith("torchrun"):
        arguments = configured[len("torchrun"):]
        return f"{python} -m torch.distributed.run{arguments}"
    return configured


def training_resources():
    """What one training job asks a cluster for: per process (torchrun's --nproc_per_node, else 1) one
    CPU plus one per data-loading worker (SLURM's cpus_per_task), and one GPU on a CUDA device."""
    words = config["training"].get("launcher", "python").replace("=", " ").split()
    processes = 1
    for flag, value in zip(words, words[1:]):
        if flag in ("--nproc_per_node", "--nproc-per-node") and value.isdigit():
            processes = int(value)
    cpus = processes * (1 + int(config["training"].get("workers") or 0))
    resources = {"cpus_per_task": cpus} if cpus > 1 else {}
    if gpu_for(config["training"].get("device")):
        resources["gpu"] = processes
    return resources


def checkpoint_dir(dataset, run, seed):
    return f"{RUNS}/{dataset}/{run}/seed{seed}"


def trained(run):
    """Input function: the metrics of a finished training run (its checkpoint sits in checkpoint_dir)."""
    return lambda wildcards: f"{RESULTS}/train/{wildcards.dataset}/{run}/seed{wildcards.seed}/metrics.csv"


def metrics_of(runs, dataset):
    return [f"{RESULTS}/train/{dataset}/{run}/seed{seed}/metrics.csv" for run in runs for seed in SEEDS]


def experiment_runs(experiment, dataset):
    """Runs of an experiment; Table 1 on ImageNet has its own list (experiments.imagenet_sota)."""
    if experiment == "sota" and dataset == "imagenet":
        return EXP.get("imagenet_sota", [])
    return EXP[experiment]


def sota_datasets():
    """Datasets with Table 1 accuracy runs (none when experiments.sota is empty: those claims are then
    'not run in this profile')."""
    cifar = DATASETS if EXP["sota"] else []
    return cifar + (["imagenet"] if config.get("imagenet") and EXP.get("imagenet_sota") else [])


def table3_datasets():
    return ["imagenet"] if config.get("imagenet") else DATASETS


FIGURE_FILES = [
    f"{FIGURES}/fig5_depth_study.png",
    f"{FIGURES}/fig7_ablation.png",
    f"{FIGURES}/roofline.png",
    *expand(f"{FIGURES}/fig6_pruning_{{dataset}}.png", dataset=DATASETS),
    *expand(f"{FIGURES}/fig9_finetune_{{dataset}}.png", dataset=DATASETS),
]
TABLE_FILES = [
    f"{FIGURES}/tables/claims.md",
    f"{FIGURES}/tables/counts_vs_paper.md",
    f"{FIGURES}/tables/throughput.md",
    f"{FIGURES}/tables/table4_structure.md",
    *expand(f"{FIGURES}/tables/table1_{{dataset}}.md", dataset=sota_datasets()),
    *expand(f"{FIGURES}/tables/table2_{{dataset}}.md", dataset=DATASETS),
    *expand(f"{FIGURES}/tables/table3_{{dataset}}.md", dataset=table3_datasets()),
]


onstart:
    # A missing dataset stops the run here, with the data layer's message, before any long job starts.
    from replication.data.datasets import DatasetNotFoundError, build_datasets
    from replication.experiments.training_runs import data_config

    for name in DATASETS + (["imagenet"] if config.get("imagenet") else []):
        try:
            build_datasets(data_config(config["data"], name))
        except DatasetNotFoundError as error:
            raise WorkflowError(str(error))


RESULT_FILES = [  # results are targets too: deleting one regenerates it and whatever reads it
    f"{RESULTS}/counts/model_counts.csv",
    f"{RESULTS}/exactness/exactness.csv",
    f"{RESULTS}/speed/pairs.csv",
    f"{RESULTS}/throughput/throughput.csv",
    f"{RESULTS}/ablation/speed.csv",
    *expand(f"{RESULTS}/sota/{{dataset}}/summary.csv", dataset=sota_datasets()),
    *expand(f"{RESULTS}/depth_study/{{dataset}}/summary.csv", dataset=DATASETS),
    *expand(f"{RESULTS}/table3/{{dataset}}/summary.csv", dataset=table3_datasets()),
    *expand(f"{RESULTS}/mobilenet/{{dataset}}.csv", dataset=DATASETS),
    *expand(f"{RESULTS}/pruning/{{dataset}}.csv", dataset=DATASETS),
    *expand(f"{RESULTS}/finetune/{{dataset}}/{{mode}}/seed{{seed}}/metrics.csv", dataset=DATASETS,
            mode=EXP["finetune"]["modes"], seed=SEEDS),
]


rule all:
    input:
        RESULT_FILES,
        FIGURE_FILES,
        TABLE_FILES,


rule claims:
    input:
        RESULT_FILES,
        f"{RESULTS}/counts/counts_vs_paper.csv",
        "replication/paper/claims.yaml",
    output:
        csv=f"{RESULTS}/claims.csv",
        table=report(f"{FIGURES}/tables/claims.md", category="Claims", caption="workflow/report/claims.rst"),
    log:
        f"{LOGS}/claims.log",
    run:
        steps.claims(RESULTS, config, output.csv, output.table)


rule exactness:
    output:
        f"{RESULTS}/exactness/exactness.csv",
    log:
        f"{LOGS}/exactness.log",
    run:
        steps.exactness(output[0], PROFILE)


rule speed_pairs:
    output:
        f"{RESULTS}/speed/pairs.csv",
    log:
        f"{LOGS}/speed_pairs.log",
    threads: workflow.cores  # timing runs alone
    resources:
        **GPU,
    run:
        steps.speed_pairs(output[0], config, PROFILE, threads)


rule counts:
    output:
        counts=f"{RESULTS}/counts/model_counts.csv",
        comparison=f"{RESULTS}/counts/counts_vs_paper.csv",
        table=report(f"{FIGURES}/tables/counts_vs_paper.md", category="Tables", caption="workflow/report/counts.rst"),
    log:
        f"{LOGS}/counts.log",
    benchmark:
        f"{BENCH}/counts.tsv"
    run:
        steps.counts(output.counts, output.comparison, output.table)


rule throughput:
    output:
        f"{RESULTS}/throughput/throughput.csv",
    log:
        f"{LOGS}/throughput.log",
    benchmark:
        f"{BENCH}/throughput.tsv"
    threads: workflow.cores  # timing runs alone: no other job shares the CPU
    resources:
        **GPU,
    run:
        steps.throughput(output[0], config, PROFILE, threads)


rule throughput_report:
    input:
        rules.throughput.output,
    output:
        table=report(f"{FIGURES}/tables/throughput.md", category="Tables"),
        roofline=report(f"{FIGURES}/roofline.png", category="Figures", caption="workflow/report/roofline.rst"),
        roofline_pdf=f"{FIGURES}/roofline.pdf",
    log:
        f"{LOGS}/throughput_report.log",
    run:
        steps.throughput_report(input[0], output.table, output.roofline)


rule train:
    # The checkpoint (RUNS/<dataset>/<run>/seed<k>/checkpoint.pt) is deliberately not an output:
    # Snakemake deletes the outputs of a killed job, and the checkpoint is what the rerun resumes from.
    output:
        metrics=f"{RESULTS}/train/{{dataset}}/{{run}}/seed{{seed}}/metrics.csv",
    log:
        f"{LOGS}/train/{{dataset}}/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{run}}/seed{{seed}}.tsv"
    threads: 1
    priority: 1  # training before the timing rules, which take every core
    resources:
        **training_resources(),
    conda:
        "environment.yml"
    params:
        payload=training_payload,
        launcher=launcher(),
        checkpoint_dir=lambda wildcards: checkpoint_dir(wildcards.dataset, wildcards.run, wildcards.seed),
    shell:
        "{params.launcher} -m replication.experiments train-run --payload {params.payload} "
        "--dataset {wildcards.dataset} --metrics {output.metrics} --checkpoint-dir {params.checkpoint_dir} "
        "--threads {threads} --seed {wildcards.seed} > {log} 2>&1"


rule summary:
    input:
        lambda wildcards: metrics_of(experiment_runs(wildcards.experiment, wildcards.dataset), wildcards.dataset),
    output:
        summary=f"{RESULTS}/{{experiment}}/{{dataset}}/summary.csv",
        seeds=f"{RESULTS}/{{experiment}}/{{dataset}}/seeds.csv",
    log:
        f"{LOGS}/summary/{{experiment}}_{{dataset}}.log",
    wildcard_constraints:
        experiment="sota|depth_study|table3",
    run:
        from replication.experiments.training_runs import summarize

        summarize(list(input), config["runs"], output.summary, output.seeds)


rule accuracy_tables:
    input:
        sota=f"{RESULTS}/sota/{{dataset}}/summary.csv",
    output:
        table1=report(f"{FIGURES}/tables/table1_{{dataset}}.md", category="Tables"),
        table1_tex=f"{FIGURES}/tables/table1_{{dataset}}.tex",
    log:
        f"{LOGS}/tables/table1_{{dataset}}.log",
    run:
        from replication.report.tables import accuracy_table

        accuracy_table(input.sota, "table1_sota", output.table1[: -len(".md")],
                       f"Table 1 ({wildcards.dataset}): accuracy, params, MACs")


rule table3:
    input:
        f"{RESULTS}/table3/{{dataset}}/summary.csv",
    output:
        table=report(f"{FIGURES}/tables/table3_{{dataset}}.md", category="Tables"),
        tex=f"{FIGURES}/tables/table3_{{dataset}}.tex",
    log:
        f"{LOGS}/tables/table3_{{dataset}}.log",
    run:
        from replication.report.tables import accuracy_table

        accuracy_table(input[0], "table3_repvgg_vs_resnet", output.table[: -len(".md")],
                       f"Table 3 ({wildcards.dataset}): ResNet vs RepVGG of the same depth and width")


rule table4:
    output:
        report(f"{FIGURES}/tables/table4_structure.md", category="Tables"),
    log:
        f"{LOGS}/tables/table4.log",
    run:
        from replication.report.tables import structure_table

        structure_table(output[0][: -len(".md")])


rule mobilenet:
    input:
        v2=trained(EXP["mobilenet"]["v2"]),
        v1=trained(EXP["mobilenet"]["v1"]),
    output:
        f"{RESULTS}/mobilenet/{{dataset}}/seed{{seed}}.csv",
    log:
        f"{LOGS}/mobilenet/{{dataset}}/seed{{seed}}.log",
    params:
        v2=lambda wildcards: checkpoint_dir(wildcards.dataset, EXP["mobilenet"]["v2"], wildcards.seed),
        v1=lambda wildcards: checkpoint_dir(wildcards.dataset, EXP["mobilenet"]["v1"], wildcards.seed),
    run:
        steps.mobilenet(params.v2, params.v1, output[0], wildcards.dataset, config, PROFILE, int(wildcards.seed))


rule gather_seeds:
    input:
        lambda wildcards: expand(f"{RESULTS}/{wildcards.experiment}/{wildcards.dataset}/seed{{seed}}.csv", seed=SEEDS),
    output:
        f"{RESULTS}/{{experiment}}/{{dataset}}.csv",
    log:
        f"{LOGS}/gather/{{experiment}}_{{dataset}}.log",
    wildcard_constraints:
        experiment="mobilenet|pruning",
    run:
        steps.gather_seeds(list(input), output[0])


rule mobilenet_table:
    input:
        f"{RESULTS}/mobilenet/{{dataset}}.csv",
        pairs=f"{RESULTS}/speed/pairs.csv",
    output:
        table=report(f"{FIGURES}/tables/table2_{{dataset}}.md", category="Tables"),
        tex=f"{FIGURES}/tables/table2_{{dataset}}.tex",
    log:
        f"{LOGS}/tables/table2_{{dataset}}.log",
    run:
        from replication.report.tables import mobilenet_table

        mobilenet_table([input[0]], output.table[: -len(".md")], input.pairs)


rule pruning:
    input:
        trained(EXP["pruning"]["run"]),
    output:
        f"{RESULTS}/pruning/{{dataset}}/seed{{seed}}.csv",
    log:
        f"{LOGS}/pruning/{{dataset}}/seed{{seed}}.log",
    threads: workflow.cores  # includes timing
    resources:
        **gpu_for(EXP["pruning"]["speed"].get("device")),
    params:
        trained=lambda wildcards: checkpoint_dir(wildcards.dataset, EXP["pruning"]["run"], wildcards.seed),
    run:
        steps.pruning(params.trained, output[0], wildcards.dataset, config, PROFILE, threads, int(wildcards.seed))


rule pruning_figure:
    input:
        f"{RESULTS}/pruning/{{dataset}}.csv",
    output:
        png=report(f"{FIGURES}/fig6_pruning_{{dataset}}.png", category="Figures"),
        pdf=f"{FIGURES}/fig6_pruning_{{dataset}}.pdf",
    log:
        f"{LOGS}/figures/fig6_{{dataset}}.log",
    run:
        from replication.report import figures

        figures.pruning(input[0], output.png[: -len(".png")])


rule finetune:
    input:
        trained(EXP["finetune"]["base"]),
    output:  # the fine-tuning checkpoint is not an output either (see rule train)
        metrics=f"{RESULTS}/finetune/{{dataset}}/{{mode}}/seed{{seed}}/metrics.csv",
    log:
        f"{LOGS}/finetune/{{dataset}}_{{mode}}/seed{{seed}}.log",
    threads: 1
    resources:
        **gpu_for(config["training"].get("device")),
    params:
        base=lambda wildcards: checkpoint_dir(wildcards.dataset, EXP["finetune"]["base"], wildcards.seed),
        own=lambda wildcards: checkpoint_dir(wildcards.dataset, f"finetune_{wildcards.mode}", wildcards.seed),
    run:
        steps.finetune(params.base, output.metrics, params.own, wildcards.mode, wildcards.dataset, config, PROFILE,
                       int(wildcards.seed))


rule finetune_figure:
    input:
        base=expand(f"{RESULTS}/train/{{{{dataset}}}}/{EXP['finetune']['base']}/seed{{seed}}/metrics.csv", seed=SEEDS),
        modes=expand(f"{RESULTS}/finetune/{{{{dataset}}}}/{{mode}}/seed{{seed}}/metrics.csv", mode=EXP["finetune"]["modes"],
                     seed=SEEDS),
    output:
        png=report(f"{FIGURES}/fig9_finetune_{{dataset}}.png", category="Figures"),
        pdf=f"{FIGURES}/fig9_finetune_{{dataset}}.pdf",
    log:
        f"{LOGS}/figures/fig9_{{dataset}}.log",
    run:
        steps.finetune_figure(list(input.base), list(input.modes), output.png)


rule depth_figure:
    input:
        expand(f"{RESULTS}/depth_study/{{dataset}}/summary.csv", dataset=DATASETS),
    output:
        png=report(f"{FIGURES}/fig5_depth_study.png", category="Figures"),
        pdf=f"{FIGURES}/fig5_depth_study.pdf",
        csv=f"{RESULTS}/depth_study/all_datasets.csv",
    log:
        f"{LOGS}/figures/fig5.log",
    run:
        steps.depth_figure(list(input), output.csv, output.png)


rule ablation:
    output:
        f"{RESULTS}/ablation/speed.csv",
    log:
        f"{LOGS}/ablation.log",
    threads: workflow.cores  # timing runs alone
    resources:
        **gpu_for(config["ablation"]["speed"].get("device")),
    run:
        steps.ablation(output[0], config, PROFILE, threads)


rule ablation_figure:
    input:
        rules.ablation.output,
    output:
        png=report(f"{FIGURES}/fig7_ablation.png", category="Figures"),
        pdf=f"{FIGURES}/fig7_ablation.pdf",
    log:
        f"{LOGS}/figures/fig7.log",
    run:
        from replication.report import figures

        figures.ablation(input[0], output.png[: -len(".png")])
