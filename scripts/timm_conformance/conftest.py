"""conftest for timm's own tests/test_models.py over the models ``replication`` registers.

scripts/timm-conformance.sh copies this file beside the test_models.py of the installed timm version
(from its source release on PyPI) and runs pytest there. Nothing in test_models.py is changed:

- ``import replication`` registers the suite's models with timm;
- timm's forward_intermediates / pruning tests choose models from the timm modules listed in
  test_models.py's ``FEAT_INTER_FILTERS``; the list is a literal there, so ``timm.list_models`` is
  wrapped to add the suite's modules whenever it is asked for a list of modules;
- only items parametrized with one of the suite's models are kept (``RMNET_TIMM_MODELS``, comma
  separated, narrows that to a subset); the rest are deselected, as are the tests below that need
  pretrained weights or the network.
"""

import os

import timm

import replication  # noqa: F401  registers the suite's models
from replication.models import __all__ as SUITE_MODULES, registered_models

ALL_MODELS = set(registered_models())
SELECTED = {name for name in os.environ.get("RMNET_TIMM_MODELS", "").split(",") if name} or ALL_MODELS
UNKNOWN = SELECTED - ALL_MODELS
if UNKNOWN:
    raise ValueError(f"RMNET_TIMM_MODELS names models the suite does not register: {sorted(UNKNOWN)}")

# Tests that do not apply: they need pretrained weights (the suite registers untrained configs only)
# or the network (Hugging Face Hub downloads).
NOT_APPLICABLE = {
    "test_model_inference": "needs timm's pretrained test_* weights from the Hugging Face Hub",
    "test_model_load_pretrained": "needs pretrained weights (the suite's configs are untrained)",
    "test_model_features_pretrained": "needs pretrained weights (the suite's configs are untrained)",
}

_list_models = timm.list_models


def _list_models_with_suite_modules(*args, **kwargs):
    """``timm.list_models``; a list of modules (test_models.py's FEAT_INTER_FILTERS) gains the suite's."""
    module = kwargs.get("module")
    if isinstance(module, (list, tuple)):
        kwargs["module"] = list(module) + [m for m in SUITE_MODULES if m not in module]
    return _list_models(*args, **kwargs)


timm.list_models = _list_models_with_suite_modules
timm.models.list_models = _list_models_with_suite_modules


def _model_name(item):
    callspec = getattr(item, "callspec", None)
    name = callspec.params.get("model_name") if callspec is not None else None
    return name.split(".")[0] if isinstance(name, str) else None  # default_cfgs lists names with tags


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        test = item.originalname if hasattr(item, "originalname") else item.name
        selected = _model_name(item) in SELECTED and test not in NOT_APPLICABLE
        (keep if selected else drop).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


def pytest_report_header(config):
    lines = [f"timm {timm.__version__}: {len(SELECTED)} of the suite's {len(ALL_MODELS)} models"]
    lines += [f"not applicable: {test} ({reason})" for test, reason in NOT_APPLICABLE.items()]
    return lines
