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
# profile, dataset). The tables and figures below are built from those files alone, beside the paper's
# numbers. They read the committed **evidence** profile (`results/evidence/`); set the environment
# variable `RMNET_PROFILE` (e.g. `RMNET_PROFILE=embedded`, the default workflow's smoke run) to read
# another. If that profile has no results yet, the parameter / MAC counts are computed here for the
# CIFAR rows.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from replication.experiments import model_counts
from replication.experiments.paper_rows import PAPER_ROWS
from replication.paper import reported
from replication.report import counts_table

PROFILE = os.environ.get("RMNET_PROFILE", "evidence")
import replication

# the checkout: the folder with results/ here, above, or where the package lives (an editable install)
candidates = [Path.cwd(), Path.cwd().parent, Path(replication.__file__).resolve().parents[1]]
ROOT = next((path for path in candidates if (path / "results").is_dir()), Path.cwd())
RESULTS = ROOT / "results" / PROFILE
print(f"profile {PROFILE}: {RESULTS} ({'found' if RESULTS.is_dir() else 'no results yet'})")
counts_csv = RESULTS / "counts" / "model_counts.csv"
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
speed_files = sorted((RESULTS / "throughput").glob("throughput*.csv"))  # predicted.csv is the cost model
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
# The claims ledger lists every empirical claim of the paper with the rule that decides it. Where the
# profile has run, `results/<profile>/claims.csv` holds its verdicts; otherwise the ledger itself is shown.

# %%
from replication.claims import load_claims

claims_csv = RESULTS / "claims.csv"
if claims_csv.exists():
    verdicts = pd.read_csv(claims_csv)
    table = verdicts[["id", "verdict", "effect", "ci_low", "ci_high", "n_seeds", "scope"]]
else:
    verdicts = None
    table = pd.DataFrame([{"id": c.id, "source": c.source, "statement": c.statement, "rule": c.rule}
                          for c in load_claims()])
table

# %% [markdown]
# ## The verdicts at a glance, and the speed ratios with their CIs
#
# Left: how many claims got each verdict. Right: every speed claim's paired ratio (A / B, median of
# interleaved rounds) with its bootstrap 95 % CI; right of the line at 1, A is faster.

# %%
if verdicts is not None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 1.6]})
    verdicts["verdict"].value_counts().sort_values().plot.barh(ax=left, color="tab:blue")
    left.set(xlabel="claims", title=f"verdicts, profile {PROFILE}")
    speed = verdicts[verdicts["id"].str.contains(r"^table.*(?:speed|faster)") & verdicts["effect"].notna()]
    if len(speed):
        y = range(len(speed))
        right.errorbar(speed["effect"], y, xerr=[speed["effect"] - speed["ci_low"], speed["ci_high"] - speed["effect"]],
                       fmt="o", capsize=3)
        right.axvline(1.0, color="grey", lw=1)
        right.set_yticks(list(y), speed["id"].str.replace("_", " "))
        right.set(xlabel="speed ratio A / B [95 % CI]", title="speed claims (paired ratios)")
    else:
        right.text(0.5, 0.5, "no speed claims measured in this profile", ha="center")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## The depth study (paper Figure 5)
#
# Top-1 of ResNet / RMNet and RepVGG of the same width as depth grows (mean over seeds, 95 % t interval).
# The paper's claim: RepVGG falls with depth, the residual network trained for RM does not.

# %%
depth_csv = RESULTS / "depth_study" / "all_datasets.csv"
if depth_csv.exists():
    depth = pd.read_csv(depth_csv)
    depth["family"] = depth["label"].str.split().str[0]
    depth["depth"] = depth["label"].str.split().str[-1].astype(int)
    fig, ax = plt.subplots(figsize=(6, 4))
    for family, rows in depth.sort_values("depth").groupby("family"):
        ax.errorbar(rows["depth"], rows["top1"], yerr=[rows["top1"] - rows["top1_ci_low"],
                                                       rows["top1_ci_high"] - rows["top1"]],
                    marker="o", capsize=3, label=family)
    ax.axhline(depth["chance_top1"].iloc[0], color="grey", ls=":", label="chance")
    ax.set(xlabel="depth", ylabel="top-1 (%)", xticks=sorted(depth["depth"].unique()),
           title=f"depth study, profile {PROFILE}")
    ax.legend()
    plt.show()
else:
    print(f"no depth study in profile {PROFILE}")
