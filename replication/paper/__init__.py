"""Numbers the paper reports (Tables 1-3, text claims) and its Table 4 printout, as package data.

These are facts from the paper, shown beside the project's measurements; never results of the project.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

TABLES = ("table1_sota", "table2_mobilenet", "table3_repvgg_vs_resnet", "text_claims")


def reported(table: str) -> pd.DataFrame:
    """One of :data:`TABLES` as a DataFrame."""
    if table not in TABLES:
        raise KeyError(f"unknown paper table {table!r}; choose from {', '.join(TABLES)}")
    with resources.files(__name__).joinpath(f"{table}.csv").open() as handle:
        return pd.read_csv(handle)


def table4_text() -> str:
    """Paper Table 4: the printed deploy structure of RMNet 26x3_32 on CIFAR-10 (text as extracted)."""
    return resources.files(__name__).joinpath("table4_rmnet26x3_32.txt").read_text()
