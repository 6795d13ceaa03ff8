"""The claims table: every claim of the paper with its verdict, effect, CI, paper value and scope."""

from __future__ import annotations

import os

import pandas as pd

from ..atomic_io import write_text_atomic
from .paper_tables import format_ci


def _effect(row: pd.Series) -> str:
    if pd.isna(row["effect"]):
        return ""
    if 0 < abs(row["effect"]) < 1e-3:  # an exactness error
        return f"{row['effect']:.1e}"
    return format_ci(row["effect"], row["ci_low"], row["ci_high"], digits=3 if abs(row["effect"]) < 10 else 2)


def build(claims_csv: str | os.PathLike, output_md: str | os.PathLike, *, wall_time: str = "") -> pd.DataFrame:
    frame = pd.read_csv(claims_csv, keep_default_na=False, na_values=[""])
    profile = ", ".join(sorted(map(str, frame["profile"].dropna().unique())))
    smoke = (frame["standing"] != "evidence").any()
    counts = frame["verdict"].value_counts()
    table = pd.DataFrame({
        "claim": frame["id"], "source": frame["source"], "statement": frame["statement"],
        "verdict": frame["verdict"] + (" (" + frame["standing"] + ")").where(frame["standing"] != "evidence", ""),
        "effect [95% CI]": frame.apply(_effect, axis=1),
        "seeds": frame["n_seeds"].map(lambda n: "" if pd.isna(n) else str(int(n))),
        "paper": frame["paper"].fillna(""), "scope": frame["scope"].fillna(""),
        "evidence": frame["evidence_csv"].fillna(""), "note": frame["note"].fillna(""),
    })
    header = [f"# Claims of the paper: verdicts of profile `{profile}`", ""]
    if smoke:
        header += ["**Smoke run: not evidence.** These verdicts show the pipeline works; the models are far too "
                   "small and briefly trained to confirm or refute anything.", ""]
    header += ["Verdicts: " + ", ".join(f"{name} {count}" for name, count in counts.items()) + ".", "",
               "Effects: accuracy in top-1 points, speed as a ratio (A / B), exactness as the worst relative error. "
               "The scope column says where a verdict holds; it is never part of the verdict."]
    if wall_time:
        header += ["", wall_time]
    write_text_atomic("\n".join(header) + "\n\n" + table.to_markdown(index=False) + "\n", output_md)
    return table


def readme_table(claims: str | os.PathLike | pd.DataFrame) -> str:
    """The compact verdict table of the README (statement, verdict, effect and CI, seeds, paper value;
    the device of a speed verdict, so a GPU verdict reads beside its CPU one)."""
    frame = claims if isinstance(claims, pd.DataFrame) else pd.read_csv(claims, keep_default_na=False, na_values=[""])
    frame = frame.reset_index(drop=True)
    # A claim judged once per network (Figure 9's ResNet 18 and 34) names the network of each row.
    repeated = frame["id"].duplicated(keep=False)
    which = frame["scope"].fillna("").str.split(",").str[0].where(repeated, "")
    table = pd.DataFrame({
        "claim (paper)": frame["statement"] + " (" + frame["source"] + ")"
                         + which.map(lambda name: f" [{name}]" if name else "")
                         + (frame["device"].fillna("") if "device" in frame else pd.Series("", index=frame.index)
                            ).map(lambda device: f" [{device}]" if device else ""),
        "verdict": frame["verdict"],
        "effect [95% CI]": frame.apply(_effect, axis=1),
        "seeds": frame["n_seeds"].map(lambda n: "" if pd.isna(n) else str(int(n))),
        "paper": frame["paper"].fillna(""),
    })
    return table.to_markdown(index=False)
