"""A verdict for every claim of the ledger, computed from one profile's results CSVs alone.

Each verdict kind reads the CSV its claim names and applies the claim's rule:

- ``exact``: checked to a float tolerance (exactness, equal accuracy);
- ``reproduced`` / ``not reproduced``: the 95 % CI of the effect lies on the claim's side / the other;
- ``inconclusive``: the CI straddles the decision point, too few trained seeds, no point above chance,
  or an unstable timing; the note says which;
- ``not run in this profile``: the profile did not produce the evidence (a dataset, ImageNet, a GPU);
  the note says what would.

The shared rules (trained seeds only, the failure test, the CI decisions) are in :mod:`.rules`.

The scope (dataset, resolution, width, epochs, device, seeds) is measured from the CSVs and reported
beside the verdict, never folded into it: "reproduced" on Fashion-MNIST at 1/8 width is a real result
about Fashion-MNIST at 1/8 width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ..stats import DID_NOT_TRAIN_MARGIN, SeedSummary, difference_ci, summarize_seeds
from . import rules
from .evidence import NAN, SMOKE, Evidence, Verdict, datasets_for, not_run, training_seeds
from .ledger import Claim
from .rules import (
    EXACT,
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    VERDICTS,
    decide,
    failed_mask,
    failure_test,
    how_to_run,
    join,
    name_seeds,
)
from .speed import ablation_level, ablation_scaling, ablation_trend, speed_ratio

__all__ = ["KINDS", "VERDICTS", "Evidence", "Verdict", "decide", "judge", "matched_difference"]


def _exactness(claim: Claim, evidence: Evidence) -> list[Verdict]:
    frame = evidence.csv("exactness/exactness.csv")
    if frame is None or (rows := frame[frame["claim_id"] == claim.id]).empty:
        return [not_run("no exactness checks in this profile: rule exactness writes them")]
    passed = bool(rows["passed"].all())
    failed = rows[~rows["passed"].astype(bool)]["check"].tolist()
    errors = rows[(rows["bound"] > 0) & (rows["bound"] < 1)]
    effect = float(errors["value"].max()) if len(errors) else float((rows["value"] - rows["bound"]).abs().max())
    dtypes = sorted({str(d) for d in rows["dtype"].dropna() if str(d)})
    return [Verdict(EXACT if passed else NOT_REPRODUCED, effect=effect,
                    scope=f"random BN statistics, {', '.join(dtypes) or 'integer counts'}, {rows['device'].iloc[0]}",
                    evidence="exactness/exactness.csv",
                    note=join(f"{len(rows)} checks" + (", worst relative error shown" if len(errors) else
                                                        ", largest deviation from the expected count shown"),
                              f"failed: {'; '.join(failed)}" if failed else ""))]


def _analytic(claim: Claim, evidence: Evidence) -> list[Verdict]:
    """Section 4.2's cost claims: integer counts of conv weights before and after RM (exactness.csv)."""
    frame = evidence.csv("exactness/exactness.csv")
    if frame is None or (rows := frame[frame["claim_id"] == claim.id]).empty:
        return [not_run("no counting checks in this profile: rule exactness writes them")]
    failed = rows[~rows["passed"].astype(bool)]
    listing = "; ".join(f"{r.check}: {r.value:.6g} (claim {r.bound:.6g})" for r in rows.itertuples())
    return [Verdict(EXACT if failed.empty else NOT_REPRODUCED, effect=float(rows["value"].iloc[0]),
                    scope="integer counts of conv weights, no data", evidence="exactness/exactness.csv",
                    note=join(listing, f"{len(failed)} of {len(rows)} checks off" if len(failed) else ""))]


def _paper_form(forms: dict[str, str], backbone: str) -> str:
    """The form (train / deploy) the paper reports for a row: the longest matching backbone prefix."""
    matches = [prefix for prefix in forms if prefix != "default" and backbone.startswith(prefix)]
    return forms[max(matches, key=len)] if matches else forms.get("default", "train")


def _counts(claim: Claim, evidence: Evidence) -> list[Verdict]:
    frame = evidence.csv("counts/counts_vs_paper.csv")
    if frame is None or (rows := frame[frame["table"] == claim.measure["table"]]).empty:
        return [not_run("no counts in this profile: rule counts writes them")]
    tolerance = float(claim.measure.get("tolerance", 0.05))
    forms = dict(claim.measure.get("forms", {"default": "train"}))
    rows = rows.assign(paper_form=[_paper_form(forms, b) for b in rows["backbone"]])
    ours = np.where(rows["paper_form"] == "deploy", rows["ours_deploy"], rows["ours_train"])
    diff = np.where(rows["paper_form"] == "deploy", rows["rel_diff_deploy"], rows["rel_diff_train"])
    off = rows[np.abs(diff) > tolerance].assign(ours=ours[np.abs(diff) > tolerance])
    listing = "; ".join(f"{r.dataset} {r.backbone} {r.quantity}: paper {r.paper}, ours {r.ours:.4g} ({r.paper_form})"
                        + (f" ({r.explanation})" if isinstance(r.explanation, str) and r.explanation else "")
                        for r in off.itertuples())
    return [Verdict(REPRODUCED if off.empty else NOT_REPRODUCED, effect=1.0 - len(off) / len(rows),
                    scope="analytic counts (convs + FC multiply-accumulates), no data; each row in the form the "
                          "paper reports it (ledger: " + ", ".join(f"{k} {v}" for k, v in forms.items()) + ")",
                    evidence="counts/counts_vs_paper.csv",
                    note=join(f"{len(rows) - len(off)} of {len(rows)} numbers within {tolerance:.0%}",
                              f"off: {listing}" if listing else ""))]


def compare_accuracy(rows_a: pd.DataFrame, rows_b: pd.DataFrame, a: str, b: str, classes: int, *,
                     metric: str = "top1", threshold: float = 0.0, higher_is_claim: bool = True,
                     failure_claim: bool = False) -> tuple[str, SeedSummary | None, str]:
    """The accuracy rule: (verdict, Welch difference of A minus B over trained seeds or None, note).

    Seeds that did not train never enter the difference. ``failure_claim``: the claim's substance is
    that the side it expects to be worse (B when ``higher_is_claim``) fails to train; a significant
    excess of failed seeds on that side decides (reproduced; on the other side: not reproduced)."""
    failed_a, failed_b = failed_mask(rows_a, classes), failed_mask(rows_b, classes)
    named = join(name_seeds(rows_a, failed_a, a), name_seeds(rows_b, failed_b, b))
    failed_note = f"did not train (not in the means): {named}" if named else ""
    worse_fails = failure_test(failed_b, failed_a) if higher_is_claim else failure_test(failed_a, failed_b)
    better_fails = failure_test(failed_a, failed_b) if higher_is_claim else failure_test(failed_b, failed_a)
    worse, better = (b, a) if higher_is_claim else (a, b)
    if failure_claim and worse_fails.significant:
        return REPRODUCED, None, join(worse_fails.text(worse, better), failed_note)
    if better_fails.significant:
        return NOT_REPRODUCED, None, join(better_fails.text(better, worse), failed_note)
    trained_a, trained_b = rows_a[~failed_a], rows_b[~failed_b]
    diff = difference_ci(trained_a[metric], trained_b[metric])
    means = f"{metric} {a} {trained_a[metric].mean():.2f}, {b} {trained_b[metric].mean():.2f} (trained seeds)"
    if min(len(trained_a), len(trained_b)) < MIN_SEEDS:
        return INCONCLUSIVE, diff, join(f"too few trained seeds for a CI ({a} {len(trained_a)}, {b} {len(trained_b)};"
                                        f" needs {MIN_SEEDS} per side)", failed_note,
                                        worse_fails.text(worse, better) if worse_fails.any_failed else "")
    verdict = decide(diff.ci_low, diff.ci_high, threshold, n=diff.n, higher_is_claim=higher_is_claim)
    return verdict, diff, join(means, failed_note)


def _accuracy_gap(claim: Claim, evidence: Evidence) -> list[Verdict]:
    datasets = datasets_for(claim, evidence)
    if not datasets:
        return [not_run(how_to_run(claim.requires))]
    a, b, metric = claim.measure["a"], claim.measure["b"], claim.measure.get("metric", "top1")
    verdicts = []
    for dataset in datasets:
        loaded = training_seeds(evidence, claim.measure["experiment"], dataset)
        if loaded is None:
            verdicts.append(not_run(f"no {claim.measure['experiment']} results: add its runs to "
                                     f"experiments.{claim.measure['experiment']}", dataset))
            continue
        seeds, _, relative = loaded
        rows_a, rows_b = seeds[seeds["label"] == a], seeds[seeds["label"] == b]
        missing = [name for name, rows in ((a, rows_a), (b, rows_b)) if rows.empty]
        if missing:
            verdicts.append(Verdict(NOT_RUN, dataset=dataset, evidence=relative,
                                    note=f"{' and '.join(missing)} not trained in this profile: add to "
                                         f"experiments.{claim.measure['experiment']}"))
            continue
        verdict, diff, note = compare_accuracy(rows_a, rows_b, a, b, rules.num_classes(dataset, seeds), metric=metric,
                                               failure_claim=bool(claim.measure.get("failure_claim", False)))
        runs = [*rows_a["run"].unique(), *rows_b["run"].unique()]
        verdicts.append(_accuracy_verdict(verdict, diff, dataset, evidence.training_scope(
            pd.concat([rows_a, rows_b]), runs), relative, note, len(rows_a), len(rows_b)))
    return verdicts


def _accuracy_verdict(verdict: str, diff: SeedSummary | None, dataset: str, scope: str, relative: str, note: str,
                      seeds_a: int, seeds_b: int) -> Verdict:
    if diff is None:
        return Verdict(verdict, dataset=dataset, scope=f"{scope}, {seeds_a} + {seeds_b} seeds", evidence=relative,
                       note=note)
    return Verdict(verdict, diff.mean, diff.ci_low, diff.ci_high, diff.n, dataset,
                   f"{scope}, {seeds_a} + {seeds_b} seeds", relative, note)


def _depth_study(claim: Claim, evidence: Evidence) -> Iterator[tuple[str, pd.DataFrame, str, Verdict | None]]:
    """Per dataset of the claim: (dataset, its depth-study seeds, their CSV, None), or a not-run verdict
    in place of the seeds when the profile lacks them."""
    for dataset in datasets_for(claim, evidence) or [""]:
        if not dataset:
            yield dataset, pd.DataFrame(), "", not_run(how_to_run(claim.requires))
            continue
        loaded = training_seeds(evidence, "depth_study", dataset)
        if loaded is None:
            yield dataset, pd.DataFrame(), "", not_run("no depth-study results: experiments.depth_study", dataset)
            continue
        yield dataset, loaded[0], loaded[2], None


def _depth(claim: Claim, evidence: Evidence) -> list[Verdict]:
    family, tolerance = claim.measure["family"], float(claim.measure.get("tolerance", 1.0))
    shallow, deep = f"{family} {claim.measure['shallow']}", f"{family} {claim.measure['deep']}"
    holds = claim.measure.get("expect", "holds") == "holds"
    verdicts = []
    for dataset, seeds, relative, missing in _depth_study(claim, evidence):
        if missing is not None:
            verdicts.append(missing)
            continue
        rows_deep, rows_shallow = seeds[seeds["label"] == deep], seeds[seeds["label"] == shallow]
        if rows_deep.empty or rows_shallow.empty:
            verdicts.append(Verdict(NOT_RUN, dataset=dataset, evidence=relative,
                                    note=f"needs {shallow} and {deep} in experiments.depth_study"))
            continue
        # holds: deep - shallow above -tolerance; falls (a failure claim): below it, or the deep net fails
        verdict, diff, note = compare_accuracy(rows_deep, rows_shallow, deep, shallow,
                                               rules.num_classes(dataset, seeds), threshold=-tolerance,
                                               higher_is_claim=holds, failure_claim=not holds)
        runs = [*rows_deep["run"].unique(), *rows_shallow["run"].unique()]
        verdicts.append(_accuracy_verdict(verdict, diff, dataset, evidence.training_scope(
            pd.concat([rows_deep, rows_shallow]), runs), relative, join(f"effect: top-1({deep}) - top-1({shallow})",
                                                                         note), len(rows_deep), len(rows_shallow)))
    return verdicts


def _depth_trend(claim: Claim, evidence: Evidence) -> list[Verdict]:
    """Accuracy rises with depth: least-squares slope of trained seeds' top-1 on log2(depth), t 95 % CI."""
    family = claim.measure["family"]
    verdicts = []
    for dataset, seeds, relative, missing in _depth_study(claim, evidence):
        if missing is not None:
            verdicts.append(missing)
            continue
        rows = seeds[seeds["label"].str.match(rf"^{family} \d+$", na=False)].copy()
        rows["depth"] = rows["label"].str.split().str[-1].astype(int)
        failed = failed_mask(rows, rules.num_classes(dataset, seeds)) if len(rows) else pd.Series(dtype=bool)
        trained = rows[~failed] if len(rows) else rows
        depths = sorted(int(d) for d in trained["depth"].unique()) if len(trained) else []
        failed_runs = [f"{family} {r.depth} seed {int(r.seed)}" for r in rows[failed].itertuples()] if len(rows) else []
        failed_note = f"did not train (not in the fit): {', '.join(failed_runs)}" if failed_runs else ""
        if len(depths) < 3 or len(trained) < 4:
            verdicts.append(Verdict(INCONCLUSIVE, dataset=dataset, evidence=relative,
                                    note=join(f"needs trained {family} runs at 3 or more depths (has {depths})",
                                              failed_note)))
            continue
        fit = scipy_stats.linregress(np.log2(trained["depth"].to_numpy(float)), trained["top1"].to_numpy(float))
        half = float(scipy_stats.t.ppf(0.975, len(trained) - 2)) * fit.stderr
        means = ", ".join(f"{d}: {trained[trained['depth'] == d]['top1'].mean():.2f}" for d in depths)
        verdicts.append(Verdict(decide(fit.slope - half, fit.slope + half), fit.slope, fit.slope - half,
                                fit.slope + half, len(trained), dataset,
                                evidence.training_scope(trained, list(trained["run"].unique())) +
                                f", depths {', '.join(map(str, depths))}, {len(trained)} trained runs", relative,
                                join(f"slope of top-1 (points) per doubling of depth; mean top-1 by depth: {means}",
                                     failed_note)))
    return verdicts


def _per_dataset(evidence: Evidence, experiment: str, judge_one: Callable[[pd.DataFrame, str], Verdict]
                 ) -> list[Verdict]:
    """``judge_one(rows, dataset)`` for each dataset with a gathered ``<experiment>/<dataset>.csv``
    (Table 2's MobileNets, Figure 6's pruning); a missing one is "not run", saying why."""
    verdicts = []
    for dataset in evidence.datasets:
        frame = evidence.csv(f"{experiment}/{dataset}.csv")
        if frame is None:
            configured = bool(evidence.config.get("experiments", {}).get(experiment))
            verdicts.append(not_run(evidence.absent(f"{experiment}/{dataset}.csv", configured,
                                                    f"no {experiment} results: experiments.{experiment}"), dataset))
        else:
            verdicts.append(judge_one(frame, dataset))
    return verdicts


def _equal_accuracy(claim: Claim, evidence: Evidence) -> list[Verdict]:
    tolerance = float(claim.measure.get("tolerance", 0.05))

    def judge_one(frame: pd.DataFrame, dataset: str) -> Verdict:
        top1 = frame.pivot_table(index="seed", columns="backbone", values="top1")
        diff = (top1[claim.measure["a"]] - top1[claim.measure["b"]]).abs()
        return Verdict(EXACT if bool((diff <= tolerance).all()) else NOT_REPRODUCED, float(diff.max()),
                       n_seeds=len(diff), dataset=dataset,
                       scope=f"{dataset}, {int(frame['image_size'].iloc[0])}px, "
                             f"{int(frame['test_samples'].iloc[0])} test images, {len(diff)} trained models",
                       evidence=f"mobilenet/{dataset}.csv",
                       note=f"largest |top-1 difference| over seeds (bound {tolerance}); a conversion, so a seed "
                            "that did not train still counts")
    return _per_dataset(evidence, "mobilenet", judge_one)


def _mobilenet_gap(claim: Claim, evidence: Evidence) -> list[Verdict]:
    def judge_one(frame: pd.DataFrame, dataset: str) -> Verdict:
        a = frame[frame["backbone"] == claim.measure["a"]]
        b = frame[frame["backbone"] == claim.measure["b"]]
        verdict, diff, note = compare_accuracy(a, b, claim.measure["a"], claim.measure["b"],
                                               rules.num_classes(dataset))
        return _accuracy_verdict(verdict, diff, dataset, f"{dataset}, {int(frame['image_size'].iloc[0])}px, "
                                 "paper width", f"mobilenet/{dataset}.csv", note, len(a), len(b))
    return _per_dataset(evidence, "mobilenet", judge_one)


def _above_chance(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Pruning points whose top-1 is not at chance (a collapsed network decides nothing)."""
    chance = 100.0 / rules.num_classes(dataset)
    return frame[frame["top1"] >= chance + DID_NOT_TRAIN_MARGIN]


def matched_difference(frame: pd.DataFrame, x: str) -> float:
    """RMNet top-1 minus ResNet top-1 interpolated at RMNet's ``x`` values, over the x range both
    methods cover; NaN when the ranges do not overlap."""
    rmnet = frame[frame["method"].str.startswith("RMNet")].sort_values(x)
    resnet = frame[frame["method"].str.startswith("ResNet")].sort_values(x)
    if rmnet.empty or resnet.empty:
        return NAN
    low, high = max(rmnet[x].min(), resnet[x].min()), min(rmnet[x].max(), resnet[x].max())
    inside = rmnet[(rmnet[x] >= low) & (rmnet[x] <= high)]
    if inside.empty:
        return NAN
    resnet_at = np.interp(inside[x], resnet[x], resnet["top1"])
    return float(np.mean(inside["top1"].to_numpy() - resnet_at))


def _pruning_scope(frame: pd.DataFrame, dataset: str, n: int) -> str:
    return (f"{dataset} {int(str(frame['input_size'].iloc[0]).split('x')[-1])}px, "
            f"{int(frame['test_samples'].iloc[0])} test images, {frame['device_name'].iloc[0]}, "
            f"{int(frame['threads'].iloc[0])} threads, batch {int(frame['batch_size'].iloc[0])}, {n} seeds")


def _pruning(claim: Claim, evidence: Evidence) -> list[Verdict]:
    x = claim.measure["x"]

    def judge_one(frame: pd.DataFrame, dataset: str) -> Verdict:
        trained = _above_chance(frame, dataset)
        per_seed = {seed: matched_difference(rows, x) for seed, rows in trained.groupby("seed")}
        overlapping = [d for d in per_seed.values() if not math.isnan(d)]
        collapsed = {m: int((frame["method"] == m).sum() - (trained["method"] == m).sum())
                     for m in sorted(frame["method"].unique())}
        note = join(f"x = {x}; thresholds {', '.join(f'{t:g}' for t in sorted(frame['threshold'].unique()))}; "
                    "no fine-tuning", "points at chance (never compared): " +
                    ", ".join(f"{m} {k} of {int((frame['method'] == m).sum())}" for m, k in collapsed.items()))
        if len(overlapping) < MIN_SEEDS:
            ranges = "; ".join(f"{m}: {rows[x].min():.3g}-{rows[x].max():.3g}"
                               for m, rows in trained.groupby("method")) or "none above chance"
            return Verdict(INCONCLUSIVE, dataset=dataset, evidence=f"pruning/{dataset}.csv",
                           scope=_pruning_scope(frame, dataset, len(per_seed)),
                           note=join(f"a matched window where both methods are above chance in only "
                                     f"{len(overlapping)} seed(s) (needs {MIN_SEEDS}); x ranges above "
                                     f"chance: {ranges}", note))
        summary = summarize_seeds(overlapping)
        return Verdict(decide(summary.ci_low, summary.ci_high, n=summary.n), summary.mean, summary.ci_low,
                       summary.ci_high, summary.n, dataset, _pruning_scope(frame, dataset, summary.n),
                       f"pruning/{dataset}.csv", note)
    return _per_dataset(evidence, "pruning", judge_one)


def _pruning_max_ratio(claim: Claim, evidence: Evidence) -> list[Verdict]:
    x = claim.measure.get("x", "pruned_params_ratio")

    def judge_one(frame: pd.DataFrame, dataset: str) -> Verdict:
        differences, listing = [], []
        for seed, rows in _above_chance(frame, dataset).groupby("seed"):
            best = {m: rows[rows["method"].str.startswith(m)][x].max() for m in ("RMNet", "ResNet")}
            listing.append(f"seed {int(seed)}: RMNet {best['RMNet']:.3g}, ResNet {best['ResNet']:.3g}")
            if not any(math.isnan(v) for v in best.values()):
                differences.append(best["RMNet"] - best["ResNet"])
        summary = summarize_seeds(differences)
        verdict = decide(summary.ci_low, summary.ci_high, n=summary.n, min_n=MIN_SEEDS)
        return Verdict(verdict, summary.mean, summary.ci_low, summary.ci_high, summary.n, dataset,
                       _pruning_scope(frame, dataset, summary.n), f"pruning/{dataset}.csv",
                       join(f"largest {x} above chance: {'; '.join(listing)}",
                            f"needs {MIN_SEEDS} seeds with both methods above chance" if summary.n < MIN_SEEDS else ""))
    return _per_dataset(evidence, "pruning", judge_one)


def _finetune(claim: Claim, evidence: Evidence) -> list[Verdict]:
    """One verdict per dataset and base network (``finetune/<dataset>/<base>/<mode>/seed<k>/metrics.csv``);
    a seed where either side is at chance is left out of the pairing and named."""
    a, b = claim.measure["a"], claim.measure["b"]
    if not evidence.config.get("experiments", {}).get("finetune", {}).get("bases"):
        return [not_run("no fine-tuning in this profile: experiments.finetune.bases")]
    verdicts = []
    for dataset in evidence.datasets:
        classes = rules.num_classes(dataset)
        chance_line = 100.0 / classes
        for base in evidence.config["experiments"]["finetune"]["bases"]:
            root = evidence.path(f"finetune/{dataset}/{base}")
            label = evidence.config["runs"][base]["label"]
            finals: dict[str, dict[int, float]] = {}
            start: dict[int, float] = {}
            for path in sorted(root.glob("*/seed*/metrics.csv")):
                metrics = pd.read_csv(path)
                mode, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
                finals.setdefault(mode, {})[seed] = float(metrics["top1"].iloc[-1])
                if mode == a and (metrics["epoch"] == 0).any():
                    start[seed] = float(metrics.loc[metrics["epoch"] == 0, "top1"].iloc[0])
            other = start if b == "start" else finals.get(b, {})
            both = sorted(set(finals.get(a, {})) & set(other))
            if not both:
                verdicts.append(Verdict(NOT_RUN, dataset=dataset, scope=label,
                                        note="no fine-tuning results: experiments.finetune"))
                continue
            at_chance = [s for s in both if min(finals[a][s], other[s]) < chance_line + DID_NOT_TRAIN_MARGIN]
            seeds = [s for s in both if s not in at_chance]
            diff: SeedSummary = summarize_seeds([finals[a][s] - other[s] for s in seeds])
            sample = pd.read_csv(next(root.glob(f"{a}/seed*/metrics.csv")))
            verdicts.append(Verdict(decide(diff.ci_low, diff.ci_high, n=diff.n, min_n=MIN_SEEDS), diff.mean,
                                    diff.ci_low, diff.ci_high, diff.n, dataset,
                                    f"{label} {evidence.width(base)}, {dataset} {int(sample['image_size'].iloc[0])}px, "
                                    f"{int(sample['train_samples'].iloc[0])} train images, "
                                    f"{int(sample['epoch'].max())} fine-tuning epochs, {sample['device'].iloc[0]}, "
                                    f"{diff.n} seeds", f"finetune/{dataset}/{base}/",
                                    join(f"paired by seed (same base model); {a} final minus "
                                         f"{'epoch 0' if b == 'start' else b + ' final'}",
                                         f"seeds at chance (left out): {', '.join(map(str, at_chance))}"
                                         if at_chance else "",
                                         f"needs {MIN_SEEDS} seeds" if diff.n < MIN_SEEDS else "")))
    return verdicts


def _accuracy_level(claim: Claim, evidence: Evidence) -> list[Verdict]:
    """A run's top-1 above a level (``run``, ``above``): the t 95 % CI of its trained seeds' mean."""
    datasets = datasets_for(claim, evidence)
    if not datasets:
        return [not_run(how_to_run(claim.requires))]
    verdicts = []
    for dataset in datasets:
        loaded = training_seeds(evidence, claim.measure["experiment"], dataset)
        rows = None if loaded is None else loaded[0][loaded[0]["label"] == claim.measure["run"]]
        if rows is None or rows.empty:
            verdicts.append(not_run(f"{claim.measure['run']} not trained: experiments.{claim.measure['experiment']}",
                                     dataset))
            continue
        trained = rows[~failed_mask(rows, rules.num_classes(dataset, rows))]
        summary = summarize_seeds(trained["top1"])
        level = float(claim.measure["above"])
        verdicts.append(Verdict(decide(summary.ci_low, summary.ci_high, level, n=summary.n, min_n=MIN_SEEDS),
                                summary.mean, summary.ci_low, summary.ci_high, summary.n, dataset,
                                evidence.training_scope(rows, list(rows["run"].unique())), loaded[2],  # type: ignore[index]
                                f"mean top-1 of {claim.measure['run']} against {level:g}"))
    return verdicts


KINDS: dict[str, Callable[[Claim, Evidence], list[Verdict]]] = {
    "exactness": _exactness, "analytic": _analytic, "counts": _counts, "accuracy_gap": _accuracy_gap,
    "accuracy_level": _accuracy_level, "depth": _depth, "depth_trend": _depth_trend, "speed_ratio": speed_ratio,
    "equal_accuracy": _equal_accuracy, "mobilenet_gap": _mobilenet_gap, "pruning": _pruning,
    "pruning_max_ratio": _pruning_max_ratio, "ablation_trend": ablation_trend, "ablation_level": ablation_level,
    "ablation_scaling": ablation_scaling, "finetune": _finetune,
}


def judge(claims: list[Claim], evidence: Evidence, *, smoke: bool = False) -> pd.DataFrame:
    """One row per claim (per dataset where the claim is per dataset), in ledger order."""
    rows = []
    for claim in claims:
        if claim.kind not in KINDS:
            raise ValueError(f"claim {claim.id!r}: unknown measure kind {claim.kind!r}; known: {', '.join(KINDS)}")
        verdicts = KINDS[claim.kind](claim, evidence)  # a GPU-only claim finds its GPU rows or says how to get them
        for verdict in verdicts:
            rows.append({"id": claim.id, "source": claim.source, "statement": claim.statement,
                         "verdict": verdict.verdict, "standing": SMOKE if smoke else "evidence",
                         "effect": verdict.effect, "ci_low": verdict.ci_low, "ci_high": verdict.ci_high,
                         "n_seeds": verdict.n_seeds, "paper": claim.paper, "dataset": verdict.dataset,
                         "scope": verdict.scope, "evidence_csv": verdict.evidence, "rule": claim.rule,
                         "note": verdict.note, "device": verdict.device,
                         "profile": evidence.config.get("results_name", "")})
    return pd.DataFrame(rows)
