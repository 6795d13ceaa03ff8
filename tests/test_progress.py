"""Progress of the long measuring steps: a bar on a terminal, one line per finished item in a log file."""

from __future__ import annotations

import io

import pandas as pd
from tqdm import tqdm

from replication.experiments import ablation
from replication.progress import LogLines, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_finished_item_with_its_label():
    log = io.StringIO()
    bar = progress(["resnet18", "resnet34"], desc="throughput", unit="model", stream=log)
    assert isinstance(bar, LogLines)
    seen = []
    for name in bar:
        bar.set_postfix_str(name)
        seen.append(name)
    lines = log.getvalue().splitlines()
    assert seen == ["resnet18", "resnet34"]
    assert len(lines) == 2
    assert lines[0].startswith("throughput: 1/2 model, ") and lines[0].endswith("(resnet18)")
    assert lines[1].startswith("throughput: 2/2 model, ") and lines[1].endswith("(resnet34)")


def test_a_count_without_an_iterable_and_an_unsized_iterable():
    log = io.StringIO()
    with progress(total=3, desc="ablation", unit="pair", stream=log) as bar:
        bar.update()
    assert log.getvalue().startswith("ablation: 1/3 pair, ")
    log = io.StringIO()
    list(progress((x for x in "ab"), desc="pairs", unit="pair", stream=log))
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == ["pairs: 1 pair", "pairs: 2 pair"]


def test_a_terminal_gets_a_tqdm_bar():
    terminal = _Terminal()
    bar = progress(range(2), desc="speed pairs", unit="pair", stream=terminal)
    assert isinstance(bar, tqdm)
    list(bar)
    assert "speed pairs" in terminal.getvalue()


def test_the_ablation_step_reports_each_pair_in_its_log(capsys, tmp_path):
    speed = {"device": "cpu", "batch_size": 1, "warmup": 0, "iters": 1, "repeats": 1, "rounds": 2, "max_rounds": 2}
    frame = ablation.run({"model": "rmnet26x3_32_cifar"}, {"batch_size": [1, 2]}, speed, input_size=8,
                         profile="test", output=tmp_path / "speed.csv")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ablation: ")]
    assert len(frame) == 3  # two sweep pairs and one batch-scaling pair
    assert [line.split(",")[0] for line in lines] == ["ablation: 1/3 pair", "ablation: 2/3 pair", "ablation: 3/3 pair"]
    assert lines[-1].endswith("(batch scaling 1->2)")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "speed.csv")[["factor", "value"]], frame[["factor", "value"]])
