"""Figures 5-7 draw what the rows hold and nothing else: ticks only at run depths, every seed, failed
seeds marked, intervals inside what is possible, one colour per family in every panel, the scope."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from replication.report import figures  # noqa: E402

SCOPE = {"profile": "evidence", "preset": "evidence", "device": "cpu", "global_batch": 128, "epochs": 6,
         "train_samples": 12000, "test_samples": 5000, "image_size": 28, "num_classes": 10, "in_chans": 1,
         "model_kwargs": '{"widths": [8, 16, 32, 64]}'}
# (run, label, per-seed (top1, test_loss)): a did-not-train seed (RepVGG 133 seed 2, at chance, loss above
# ln 10) and a single-seed run (ResNet 133).
RUNS = {
    "resnet_d21": ("ResNet 21", [(80.0, 0.54), (79.8, 0.53), (81.5, 0.50)]),
    "repvgg_d21": ("RepVGG 21", [(86.2, 0.38), (84.5, 0.40), (83.5, 0.43)]),
    "resnet_d133": ("ResNet 133", [(83.0, 0.47)]),
    "repvgg_d133": ("RepVGG 133", [(34.9, 1.7), (15.6, 1.95), (11.6, 2.31)]),
}


def _depth_frames(datasets=("fashion_mnist", "cifar10")) -> tuple[pd.DataFrame, pd.DataFrame]:
    summary, seeds = [], []
    for dataset in datasets:
        for run, (label, values) in RUNS.items():
            top1 = [v[0] for v in values]
            mean = float(np.mean(top1))
            # the committed summaries' CI runs over every seed, failed ones included: it can reach below 0
            half = 60.0 if len(values) > 1 else float("nan")
            summary.append({"run": run, "dataset_key": dataset, "dataset": dataset, "label": label, "model": run,
                            **SCOPE, "top1": mean, "top1_ci_low": mean - half, "top1_ci_high": mean + half,
                            "n_seeds": len(values), "seeds": " ".join(map(str, range(len(values)))),
                            "top1_per_seed": " ".join(f"{v:.2f}" for v in top1), "did_not_train": False,
                            "chance_top1": 10.0})
            seeds += [{"run": run, "dataset_key": dataset, "dataset": dataset, "model": run, **SCOPE, "seed": seed,
                       "epoch": 6, "top1": t, "test_loss": loss, "top5": 99.0}
                      for seed, (t, loss) in enumerate(values)]
    return pd.DataFrame(summary), pd.DataFrame(seeds)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _errorbar_extent(ax) -> tuple[float, float]:
    """Lowest and highest y of every error bar segment in ``ax``."""
    ys = [segment[:, 1] for collection in ax.collections if isinstance(collection, LineCollection)
          for segment in collection.get_segments()]
    ys = np.concatenate(ys) if ys else np.array([50.0])
    return float(ys.min()), float(ys.max())


def _series_colours(ax) -> dict[str, str]:
    """Legend label -> colour of every labelled line and error-bar series in ``ax``."""
    series = {container.get_label(): to_hex(container.lines[0].get_color()) for container in ax.containers
              if container.get_label() and not container.get_label().startswith("_")}
    series.update({line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()
                   if not line.get_label().startswith("_")})
    return series


def _scatter(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _colours(collection) -> set[str]:
    colours = collection.get_edgecolors() if len(collection.get_edgecolors()) else collection.get_facecolors()
    return {to_hex(c) for c in colours}


def test_fig5_ticks_at_run_depths_every_seed_failed_marked_ci_clipped_colours_fixed():
    summary, seeds = _depth_frames()
    fig = figures.depth_study_figure(summary, seeds)
    data_axes = fig.axes[:2]
    for ax in data_axes:
        assert list(ax.get_xticks()) == [21, 133]  # not the paper's 37 and 69, which were not run
        low, high = _errorbar_extent(ax)
        assert 0.0 <= low and high <= 100.0
        points = sum(len(c.get_offsets()) for c in _scatter(ax))
        assert points == sum(len(values) for _, values in RUNS.values())  # every seed drawn
        # no line through a depth that was not run: 21 and 133 are not neighbouring paper depths
        assert not [line for line in ax.get_lines() if len(line.get_xdata()) >= 2 and line.get_linestyle() == "-"
                    and np.ptp(line.get_xdata()) > 50]
    # RepVGG 133's seed at 11.6 % with loss 2.31 is drawn with the failed marker, in RepVGG's colour
    failed = {c for ax in data_axes for c in _scatter(ax) if c.get_offsets()[:, 1].tolist() == [11.6]}
    assert len(failed) == 2
    repvgg, resnet = figures.family_colour("RepVGG"), figures.family_colour("ResNet")
    for collection in failed:
        assert _colours(collection) == {repvgg}
        assert collection.get_paths()[0].vertices.tolist() != _scatter(fig.axes[0])[0].get_paths()[0].vertices.tolist()
    # the same colour for a family in every panel, the paper's panel included
    for ax in fig.axes:
        series = _series_colours(ax)
        resnet_series = [label for label in series if label.startswith(("ResNet", "paper, CIFAR-100: RMNet"))]
        assert resnet_series and {series[label] for label in resnet_series} == {resnet}
        assert {series[label] for label in series if "RepVGG" in label} == {repvgg}
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert any("did not train" in t for t in texts) and "one seed" in texts
    assert fig.axes[1].get_title().startswith("fashion_mnist")  # panels in dataset order: cifar10 first
    title = fig.axes[1].get_title().replace("\n", " ")
    for part in ("fashion_mnist", "28 px", "widths 8-16-32-64", "6 epochs", "cpu", "seeds 0 1 2"):
        assert part in title


def test_fig5_without_seed_rows_uses_the_summary_per_seed_values():
    summary, _ = _depth_frames(("fashion_mnist",))
    fig = figures.depth_study_figure(summary, None)
    assert sum(len(c.get_offsets()) for c in _scatter(fig.axes[0])) == 10


def _pruning_frame() -> pd.DataFrame:
    rows = []
    for seed in (0, 1, 2):
        for method, base in (("RMNet 18 (RM + slimming)", 78.0), ("ResNet 18 (Torch-Pruning)", 79.0)):
            for index, threshold in enumerate((0.05, 0.3, 0.7)):
                top1 = base - 30 * index * (seed + 1) if index < 2 else 9.5 + seed  # the last threshold collapses
                rows.append({"profile": "evidence", "dataset": "fashion_mnist", "seed": seed, "method": method,
                             "threshold": threshold, "pruned_params_ratio": 0.2 * index, "top1": max(top1, 5.0),
                             "top1_unpruned": 79.0, "speedup_vs_unpruned_ratio": 1 + 0.3 * index,
                             "speedup_vs_unpruned_unstable": False, "device_name": "AMD EPYC", "batch_size": 32,
                             "input_size": "1x28x28", "threads": 2})
    return pd.DataFrame(rows)


def test_fig6_error_bars_inside_0_100_and_collapsed_points_marked():
    frame = _pruning_frame()
    fig = figures.pruning_figure(frame)
    for ax in fig.axes:
        low, high = _errorbar_extent(ax)
        assert 0.0 <= low and high <= 100.0
        assert sum(len(c.get_offsets()) for c in _scatter(ax)) == len(frame)  # every seed's point
        markers = {tuple(map(tuple, c.get_paths()[0].vertices.round(3))) for c in _scatter(ax)}
        assert len(markers) == 2  # hollow circles and the x of the collapsed points
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("at chance" in t for t in texts)
    for ax in fig.axes:
        series = _series_colours(ax)
        assert {series[label] for label in series if label.startswith("RMNet")} == {figures.family_colour("RMNet")}
        assert {series[label] for label in series if label.startswith("ResNet")} == {figures.family_colour("ResNet")}
    assert "fashion_mnist" in fig._suptitle.get_text() and "AMD EPYC" in fig._suptitle.get_text()


def test_fig7_ticks_only_at_swept_values_and_family_colours():
    rows = [{"profile": "evidence", "model": "rmnet26x3_32_cifar", "factor": factor, "value": value,
             "speedup": 0.9, "speedup_ci_low": -0.2, "speedup_ci_high": 1.1, "unstable": False, "ips_rmnet": 100.0,
             "ips_resnet_form": 110.0, "device_name": "AMD EPYC", "threads": 2, "input_size": "3x32x32",
             "cpu_allocator": "glibc pinned"}
            for factor, values in (("batch_size", (1, 8, 32)), ("width", (16, 64))) for value in values]
    fig = figures.ablation_figure(pd.DataFrame(rows))
    top, bottom = fig.axes[0], fig.axes[2]
    assert list(top.get_xticks()) == [1, 8, 32] and list(bottom.get_xticks()) == [1, 8, 32]
    assert _errorbar_extent(top)[0] >= 0.0  # a speed ratio is never below 0
    lines = {line.get_label(): to_hex(line.get_color()) for line in bottom.get_lines()}
    assert lines["RMNet"] == figures.family_colour("RMNet") and lines["ResNet form"] == figures.family_colour("ResNet")
    assert "glibc pinned" in fig._suptitle.get_text()


def test_did_not_train_is_decided_by_the_suites_rule():
    assert figures.did_not_train(11.6, 10) and not figures.did_not_train(80.0, 10)
    assert figures.family_colour("RepVGG 133") == figures.family_colour("RepVGG A2")
    assert figures.family_colour("Unknown 1") == figures.family_colour("Unknown 2")
