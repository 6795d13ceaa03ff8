# Paths, run lists and helpers shared by every stage. Nothing here imports torch: each job runs in its
# own process through STEP (python -m replication.workflow_steps), which logs to the rule's {log}.

import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError


def _load_layout():
    """replication/layout.py, the results layout the verdicts read too, loaded by path: importing the
    package would load torch (replication/__init__.py registers the models with timm)."""
    spec = importlib.util.spec_from_file_location("rmnet_layout", Path(workflow.basedir) / "replication" / "layout.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


layout = _load_layout()
NAME = layout.results_name(config)  # results/<NAME>/, figures/<NAME>/, runs/, logs/, benchmarks/
RESULTS = layout.results_dir(NAME)
RUNS = layout.runs_dir(NAME)
FIGURES = layout.figures_dir(NAME)
LOGS = layout.logs_dir(NAME)
BENCH = layout.benchmarks_dir(NAME)
DATASETS = config["datasets"]
EXP = config["experiments"]
SEEDS = layout.seeds(config)
PYTHON = shlex.quote(sys.executable)  # the interpreter running this workflow, not whatever is on PATH
STEP = f"{PYTHON} -m replication.workflow_steps"


wildcard_constraints:  # run / base: replication.workflow_steps.RUN_NAME, which check_config applies to run names
    dataset="[a-z0-9_]+",
    run="[A-Za-z0-9_]+",
    base="[A-Za-z0-9_]+",
    mode="bn|fused",
    seed="[0-9]+",


def step_args(**arguments):
    """A step's keyword arguments as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(arguments, sort_keys=True))


def _load_script(name, path):
    """A standard-library module of the suite, loaded by path: importing the package would load torch."""
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


SUITE = Path(workflow.basedir)
PLAN_CHECKS = _load_script("rmnet_plan_checks", SUITE / "replication" / "launch" / "plan_checks.py")
GPU_SLOTS_SCRIPT = SUITE / "replication" / "launch" / "gpu_slots.py"


def _global_resource(name):
    value = workflow.global_resources.get(name)
    return getattr(value, "value", value)


# Jobs go to a cluster scheduler (SLURM) when Snakemake counts nodes (--jobs of a remote executor).
CLUSTER = _global_resource("_nodes") is not None
GPU_POOL = _global_resource("gpu")  # the profile's `gpu` resource: this node's GPUs (None: not limited)


def gpu(device, count=1):
    """The GPU request of a job that runs on `device` (each job asks only for its own device): the
    `gpu` resource locally (the profile's pool), `gres: gpu:<count>` on a cluster (SLURM's --gres=gpu:k on
    the job's node, set from this config, so torchrun's processes get exactly those GPUs)."""
    if not str(device or "").startswith("cuda"):
        return {}
    return {"gres": f"gpu:{count}"} if CLUSTER else {"gpu": count}


def gpu_launch(device, count=1):
    """Shell prefix of a GPU job: the slot allocator, which sets CUDA_VISIBLE_DEVICES to `count` free GPUs of
    the profile's pool (under SLURM: the job's own), then runs the command. Empty for CPU jobs."""
    if not str(device or "").startswith("cuda"):
        return ""
    slots = max(int(GPU_POOL or count), count)
    return f"{PYTHON} {shlex.quote(str(GPU_SLOTS_SCRIPT))} --slots {slots} --need {count} -- "


def timing(device):
    """Resources of a timing rule: the one `timing` unit (profiles set `resources: [timing=1]`), so no two
    timing jobs run at once on any executor, and the `gpu` of its device. (`threads: workflow.cores`
    also keeps every other job off the machine while one runs locally.)"""
    return {"timing": 1, **gpu(device)}


TRAINING_PROCESSES = PLAN_CHECKS.launcher_processes(config["training"].get("launcher", "python"))


def training_resources():
    """What one training job asks a cluster for: per process (torchrun's --nproc_per_node, else 1) one
    CPU plus one per data-loading worker (SLURM's cpus_per_task), and one GPU on a CUDA device."""
    cpus = TRAINING_PROCESSES * (1 + int(config["training"].get("workers") or 0))
    resources = {"cpus_per_task": cpus} if cpus > 1 else {}
    resources.update(gpu(config["training"].get("device"), TRAINING_PROCESSES))
    return resources


def run_step(name, **arguments):
    """Run a check step in a subprocess (torch stays out of the scheduler); its message stops the run."""
    result = subprocess.run([sys.executable, "-m", "replication.workflow_steps", name, json.dumps(arguments)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        message = [line for line in result.stderr.splitlines() if not line.startswith("[workflow step")]
        raise WorkflowError("\n".join(message) or f"workflow step {name} failed")


if workflow.is_main_process:  # jobs re-parsing this file on a cluster node skip the checks
    # Plan-time checks (replication/launch/plan_checks.py), dry runs included, one message per problem:
    # datasets not on disk, jobs asking for more GPUs / CPUs than the profile or node offers, a launcher
    # whose processes do not divide the GPUs. `snakemake --lint` does not need the data.
    _problems = PLAN_CHECKS.plan_problems(config, cores=_global_resource("_cores"), gpus=GPU_POOL, cluster=CLUSTER,
                                          datasets="--lint" not in sys.argv)
    if _problems:
        raise WorkflowError(f"the plan cannot run as configured ({len(_problems)} problem(s)):\n  - "
                            + "\n  - ".join(_problems))
    # Model names and run references are checked before any job starts (the schema cannot see them).
    run_step("check_config", config=config)


onstart:
    # A missing dataset stops the run here, with the data layer's message, before any long job starts.
    run_step("check_datasets", data=config["data"], datasets=DATASETS + (["imagenet"] if config.get("imagenet") else []))


def result(relative):
    """A results file of this configuration: results/<NAME>/<relative> (relative: a layout path)."""
    return f"{RESULTS}/{relative}"


def checkpoint_dir(dataset, run, seed):
    return f"{RUNS}/{layout.checkpoint_dir(dataset, run, seed)}"


def trained(run):
    """Input function: the metrics of a finished training run (its checkpoint sits in checkpoint_dir)."""
    return lambda wildcards: result(layout.train_metrics(wildcards.dataset, run, wildcards.seed))


def metrics_of(runs, dataset):
    return [result(layout.train_metrics(dataset, run, seed)) for run in runs for seed in SEEDS]


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


def training_run_config(wildcards):
    """The run's spec and the shared settings, as one JSON argument (`python -m replication train --run-config`)."""
    training = dict(config["training"])
    if wildcards.dataset == "imagenet":
        training["preset"] = training.get("imagenet_preset", "imagenet_repvgg")
    run_config = {"run": config["runs"][wildcards.run], "data": config["data"], "training": training}
    return shlex.quote(json.dumps(run_config))


def launcher():
    """This workflow's interpreter, or torchrun through it (training.launcher: 'torchrun --nproc_per_node 4').
    check_config has vetted the value (python, or torchrun with options torchrun accepts); anything else
    never reaches a shell command."""
    words = str(config["training"].get("launcher", "python")).split()
    if words == ["python"]:
        return PYTHON
    if words[:1] == ["torchrun"]:
        return " ".join([PYTHON, "-m", "torch.distributed.run", *map(shlex.quote, words[1:])])
    raise WorkflowError(f"training.launcher: {config['training'].get('launcher')!r} is not python or torchrun")


def finetune_bases(dataset):
    """Figure 9's panels: base run label -> that run's per-seed metrics."""
    return {config["runs"][base]["label"]: metrics_of([base], dataset) for base in EXP["finetune"]["bases"]}


RESULT_FILES = [  # results are targets too: deleting one regenerates it and whatever reads it
    result(layout.MODEL_COUNTS),
    result(layout.EXACTNESS),
    result(layout.SPEED_PAIRS),
    result(layout.THROUGHPUT),
    result(layout.ABLATION_SPEED),
    *[result(layout.summary_csv("sota", dataset)) for dataset in sota_datasets()],
    *[result(layout.summary_csv("depth_study", dataset)) for dataset in DATASETS],
    *[result(layout.summary_csv("table3", dataset)) for dataset in table3_datasets()],
    *[result(layout.mobilenet_csv(dataset)) for dataset in DATASETS],
    *[result(layout.pruning_csv(dataset)) for dataset in DATASETS],
    *[result(layout.finetune_metrics(dataset, base, mode, seed)) for dataset in DATASETS
      for base in EXP["finetune"]["bases"] for mode in EXP["finetune"]["modes"] for seed in SEEDS],
]
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
TABLE_FILES += [path.removesuffix(".md") + ".html" for path in TABLE_FILES]  # the report's views of them
