"""The measured matmul peak (CPUs, unlisted GPUs) stays within its time budget."""

import time

from replication.measure import peak


def test_a_slow_matmul_shrinks_the_measurement_instead_of_running_for_minutes(monkeypatch):
    real = peak.time.perf_counter
    clock = {"offset": 0.0}

    def slow_clock():  # every timed matmul appears to take half a second
        clock["offset"] += 0.5
        return real() + clock["offset"]

    monkeypatch.setattr(peak.time, "perf_counter", slow_clock)
    started = real()
    rate = peak.measured_matmul_peak("cpu", "float32", size=2048, budget_s=2.0)
    assert real() - started < 5 and rate > 0


def test_float16_on_a_cpu_finishes_in_seconds():
    started = time.perf_counter()
    assert peak.measured_matmul_peak("cpu", "float16", budget_s=1.0) > 0
    assert time.perf_counter() - started < 15
