# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Reading the results CSVs into the paper's tables
#
# Every experiment writes `results/<profile>/**.csv` with its full context (device, dtype, batch,
# profile, dataset). The tables below are built from those files alone, beside the paper's numbers.
# If no results exist yet, the parameter / MAC counts are computed here for the CIFAR rows.

# %%
from pathlib import Path

import pandas as pd

from replication.experiments import model_counts
from replication.experiments.paper_rows import PAPER_ROWS
from replication.paper import reported
from replication.report import counts_table

ROOT = Path.cwd() if (Path.cwd() / "results").exists() else Path.cwd().parent
counts_csv = ROOT / "results" / "counts" / "model_counts.csv"
if not counts_csv.exists():
    counts_csv = Path("model_counts_cifar.csv")
    model_counts.run(counts_csv, [row for row in PAPER_ROWS if row.dataset == "CIFAR10"])
counts = pd.read_csv(counts_csv)
counts.head()

# %% [markdown]
# ## Parameters and MACs beside Table 1

# %%
comparison = counts_table.compare(counts)
comparison[["dataset", "backbone", "quantity", "paper", "ours_train", "ours_deploy", "matches"]]

# %% [markdown]
# ## Throughput, where a run has been made

# %%
speed_files = sorted((ROOT / "results").glob("**/throughput*.csv"))
if speed_files:
    speed = pd.concat([pd.read_csv(path) for path in speed_files], ignore_index=True)
    columns = ["profile", "device_name", "runtime", "batch_size", "backbone", "form", "images_per_sec"]
    singles = speed[speed["measure"].fillna("single") != "pair"] if "measure" in speed else speed
    display_frame = singles[singles["status"] == "ok"][columns]  # paired ratios: the throughput.md tables
else:
    display_frame = reported("table1_sota")[["dataset", "backbone", "imgs_per_sec"]]
display_frame.head(20)

# %% [markdown]
# ## Verdicts on the paper's claims
#
# The claims ledger lists every empirical claim of the paper with the rule that decides it. Where a
# profile has run, `results/<profile>/claims.csv` holds its verdicts (the committed evidence run is
# `results/evidence/claims.csv`); otherwise the ledger itself is shown.

# %%
from replication.claims import load_claims

claims_files = sorted((ROOT / "results").glob("*/claims.csv"))
if claims_files:
    verdicts = pd.read_csv(claims_files[0])
    table = verdicts[["id", "verdict", "effect", "ci_low", "ci_high", "n_seeds", "scope"]]
else:
    table = pd.DataFrame([{"id": c.id, "source": c.source, "statement": c.statement, "rule": c.rule}
                          for c in load_claims()])
table
