"""The speed claims of the ledger, each measured as one paired, interleaved ratio (A over B).

A claim names its two sides (``{model, form}``; form ``train`` is the model as built, ``deploy`` its
RM / re-parameterised plain form) and the input side length. Both sides carry untrained weights:
speed does not depend on their values. Every row carries the device, threads, batch, dtype and load.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pandas as pd
import torch

from .. import rm, zoo
from ..atomic_io import write_csv_atomic
from ..claims.ledger import Claim
from ..measure.paired import measure_pair
from ..measure.throughput import ThroughputConfig, ThroughputError, environment
from ..progress import progress


def build_side(side: dict[str, Any], input_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = zoo.create(side["model"], num_classes=1000 if input_size >= 160 else 10).eval()
    return rm.convert(model) if side.get("form", "train") == "deploy" else model


def run(claims: list[Claim], base: ThroughputConfig, *, rounds: int, max_rounds: int, profile: str,
        output: str | os.PathLike, time_cap_s: float | None = 300.0) -> pd.DataFrame:
    rows = []
    # A claim about a GPU (``requires: cuda``) is timed only on one: scripts/gpu-check.sh measures it.
    pairs = [claim for claim in claims if claim.kind == "speed_ratio"
             and (claim.requires != "cuda" or base.device.startswith("cuda"))]
    for claim in (bar := progress(pairs, desc="speed pairs", unit="pair")):
        bar.set_postfix_str(claim.id)
        a, b, size = claim.measure["a"], claim.measure["b"], int(claim.measure["input_size"])
        config = replace(base, input_size=(3, size, size))
        row = {"profile": profile, "claim_id": claim.id, "a_model": a["model"], "a_form": a.get("form", "train"),
               "b_model": b["model"], "b_form": b.get("form", "train"), **environment(config)}
        try:
            pair = measure_pair(build_side(a, size), build_side(b, size), config, rounds=rounds, max_rounds=max_rounds,
                                time_cap_s=time_cap_s,
                                names=(f"{a['model']} ({row['a_form']})", f"{b['model']} ({row['b_form']})"))
            row.update(pair.as_row(pair_id=claim.id), images_per_sec_a=pair.images_per_sec_a,
                       images_per_sec_b=pair.images_per_sec_b, status="ok")
        except ThroughputError as error:
            row.update(pair_id=claim.id, status="oom" if error.out_of_memory else f"error: {error}")
        rows.append(row)
        write_csv_atomic(pd.DataFrame(rows), output)  # a crash keeps every finished pair
    return pd.DataFrame(rows)
