"""Shared test settings: the two test tiers, hypothesis profiles and deterministic torch.

Tiers: ``pytest`` runs the fast tier (every module: float64 equivalence on small inputs, one model of each
family, the workflow's dry runs, the CLI); ``pytest --slow`` adds the slow tier (deep networks, every
registered model, full workflow runs, SLURM, DDP, inductor, ONNX): the tests marked ``slow`` and those
:data:`SLOW` and :data:`EVERY_MODEL_TESTS` name. CI (.ci/run) runs ``pytest`` and then ``pytest --slow -m slow``."""

import fnmatch
import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")


# The slow tier, besides the tests marked @pytest.mark.slow in their files: node ids (fnmatch patterns),
# kept here so that the tiers are decided in one place. Every pattern must match a collected test of
# its file, so a renamed test cannot drop out of the slow tier unnoticed.
SLOW = (
    # equivalence beyond float64 on small inputs: 224x224, the deep torchvision ResNets, float32
    "tests/rm/test_equivalence.py::test_converted_network_equals_original[*-224-*]",
    "tests/rm/test_equivalence.py::test_converted_network_equals_original[tv_resnet101-*]",
    "tests/rm/test_equivalence.py::test_converted_network_equals_original[tv_resnet152-*]",
    "tests/rm/test_equivalence.py::test_converted_network_equals_original[tv_wide_resnet50_2-*]",
    "tests/rm/test_equivalence.py::test_converted_network_equals_original[*-float32-*]",
    # a subprocess DDP run with two processes
    "tests/train/test_engine.py::test_two_process_ddp_matches_one_process",
    # full workflow runs (a copy of the tree, real jobs)
    "tests/workflow/test_workflow.py::test_missing_dataset_stops_before_any_job",
    "tests/workflow/test_workflow.py::test_label_out_of_range_stops_before_any_job",
    "tests/workflow/test_workflow.py::test_killed_training_job_resumes_from_its_checkpoint",
    "tests/workflow/test_workflow.py::test_failed_job_leaves_its_traceback_in_its_log",
    # SLURM (skipped where SLURM is not installed)
    "tests/workflow/test_slurm.py::*",
    # ONNX export and ONNX Runtime timing
    "tests/measure/test_throughput_experiment.py::test_throughput_command_writes_rows_ratios_and_roofline[pytorch+onnxruntime]",
)
# Tests parametrized over every registered model run one model per family in the fast tier.
EVERY_MODEL_TESTS = (
    "tests/models/test_registry.py::test_builds_runs_and_converts_exactly",
    "tests/models/test_registry.py::test_fresh_model_output_depends_on_its_input",
    "tests/measure/test_cost_model.py::test_flops_equal_flop_counter_on_every_model",
    "tests/models/test_timm_features.py::test_features_only_has_the_right_reductions_and_channels",
)
FAMILY_REPRESENTATIVES = ("rmnet26x3_32_cifar", "resnet18_cifar", "resdistill34_cifar", "repvgg_depth21_cifar",
                          "repvgg_a2_cifar", "diracnet34_cifar", "mobilenetv2_rm_cifar", "mobilenetv1_cifar")


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the slow tier (deep networks, every model, full workflow runs, SLURM, DDP)")


def _matches(nodeid: str, pattern: str) -> bool:
    """fnmatch, with the brackets of a parametrized id taken literally."""
    return fnmatch.fnmatchcase(nodeid, pattern.replace("[", "\0").replace("\0", "[[]"))


def _is_slow(item) -> bool:
    if item.get_closest_marker("slow"):
        return True
    if any(_matches(item.nodeid, pattern) for pattern in SLOW):
        return True
    base, _, params = item.nodeid.partition("[")
    if base in EVERY_MODEL_TESTS:
        return not any(params.startswith(name + "]") or params.startswith(name + "-") for name in
                       FAMILY_REPRESENTATIVES)
    return False


@pytest.hookimpl(tryfirst=True)  # before -m / -k select: `-m slow` then selects the whole slow tier
def pytest_collection_modifyitems(config, items):
    """The slow tier: marked slow, listed in SLOW, or a non-representative model of EVERY_MODEL_TESTS;
    each gets the ``slow`` marker. Without --slow they are deselected (reported as 'deselected')."""
    if not any("::" in arg for arg in config.args):  # whole files collected: check SLOW for stale entries
        files = {item.nodeid.partition("::")[0] for item in items}
        stale = [pattern for pattern in SLOW if pattern.partition("::")[0] in files
                 and not any(_matches(item.nodeid, pattern) for item in items)]
        if stale:
            raise pytest.UsageError(f"tests/conftest.py SLOW names no collected test: {', '.join(stale)}")
    slow = [item for item in items if _is_slow(item)]
    for item in slow:
        item.add_marker(pytest.mark.slow)
    if slow and not config.getoption("--slow"):
        config.hook.pytest_deselected(items=slow)
        kept = set(map(id, slow))
        items[:] = [item for item in items if id(item) not in kept]


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
