"""Shared test settings: the two test tiers, hypothesis profiles and deterministic torch.

Tiers: ``pytest`` runs the fast tier (every module: float64 equivalence on small inputs, one model of each
family, the workflow's dry runs, the CLI); ``pytest --slow`` adds the tests marked ``slow`` (deep
networks, full workflow runs, SLURM, DDP, inductor) and ``pytest --slow -m slow`` runs those alone.
CI (.ci/run) runs both tiers."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the slow tier (tests marked slow: deep networks, full workflow runs, SLURM, DDP)")


def pytest_collection_modifyitems(config, items):
    """Without --slow, the tests marked slow are deselected (counted as 'deselected', not skipped)."""
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
