"""The workflow schema's enums are the package's own constants: adding a preset, a dataset or a dtype
in Python without the schema (or the other way round) fails here, not in a user's run."""

from pathlib import Path

import pytest
import yaml

from replication.data.datasets import DATASETS
from replication.experiments.paper_rows import PAPER_ROWS
from replication.measure.throughput import TIMING_DTYPES
from replication.train.presets import PRESETS

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml").read_text())
TRAINING = SCHEMA["properties"]["training"]["properties"]


@pytest.mark.parametrize("key", ["preset", "finetune_preset"])
def test_training_presets_are_the_registered_presets(key):
    assert set(TRAINING[key]["enum"]) == set(PRESETS)
    assert set(SCHEMA["properties"]["runs"]["additionalProperties"]["properties"]["preset"]["enum"]) == set(PRESETS)


def test_imagenet_presets_are_registered():
    assert set(TRAINING["imagenet_preset"]["enum"]) <= set(PRESETS)


def test_datasets_are_the_data_layers():
    """ImageNet is switched on by its own flag (`imagenet: true`), so the list names the others."""
    assert set(SCHEMA["properties"]["datasets"]["items"]["enum"]) == set(DATASETS) - {"imagenet"}


def test_throughput_enums_are_the_measurement_constants():
    throughput = SCHEMA["properties"]["throughput"]["properties"]
    assert set(throughput["dtype"]["enum"]) == set(TIMING_DTYPES)
    timed_tables = {row.table for row in PAPER_ROWS} - {"table3_repvgg_vs_resnet"}  # Table 3 is timed as pairs
    assert set(throughput["tables"]["items"]["enum"]) == timed_tables
    assert set(throughput["datasets"]["items"]["enum"]) == {row.dataset for row in PAPER_ROWS}


def test_recipe_schedules_are_the_engines():
    schedules = SCHEMA["$defs"]["recipe"]["properties"]["schedule"]["enum"]
    assert set(schedules) == {"step", "cosine"} == {preset.schedule for preset in PRESETS.values()}


def _schema_keys(node: dict, prefix: str) -> list[str]:
    """Dotted keys of the schema's leaves and sections (`runs.<name>.model`, `data`); a `$ref` to a shared
    definition is documented once, under its own heading."""
    keys = []
    for name, child in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        if isinstance(child, dict) and "properties" in child:
            keys += _schema_keys(child, key + ".")
        else:
            keys.append(key)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        keys += _schema_keys(extra, f"{prefix}<name>.")
    return keys


def test_config_readme_documents_every_key():
    readme = (Path(__file__).resolve().parents[2] / "config" / "README.md").read_text()
    undocumented = [key for key in _schema_keys(SCHEMA, "") if f"`{key}`" not in readme]
    assert not undocumented, f"config/README.md does not document {undocumented}"
