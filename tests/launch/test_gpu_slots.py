"""The GPU slot allocator over fake devices: concurrent jobs get distinct devices, a torchrun job gets k
of them, a job killed with SIGKILL frees its slot, and under SLURM the job's own GPUs are used."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replication.launch import gpu_slots
from replication.launch.gpu_slots import SlotError, acquire, device_list, slurm_devices

SCRIPT = Path(gpu_slots.__file__)
FAKE = ",".join(f"fake{i}" for i in range(8))


def _job(pool, *args, command, env=None):
    """The wrapper as the workflow runs it: a plain script (no torch), then the job's command."""
    return subprocess.Popen([sys.executable, str(SCRIPT), "--pool", str(pool), *args, "--", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**_env_without_slurm(), **(env or {})})


def _env_without_slurm():
    """This process's environment without SLURM's variables (the tests may run inside a SLURM job)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}


def test_eight_concurrent_jobs_each_see_their_own_fake_device(tmp_path):
    seen = tmp_path / "seen"
    seen.mkdir()
    # each job records its device, then waits until all eight have: they provably hold their slots at once
    body = ("import os, pathlib, time, sys\n"
            f"seen = pathlib.Path({str(seen)!r})\n"
            "(seen / str(os.getpid())).write_text(os.environ['CUDA_VISIBLE_DEVICES'])\n"
            "deadline = time.time() + 60\n"
            "while len(list(seen.iterdir())) < 8 and time.time() < deadline:\n"
            "    time.sleep(0.05)\n"
            "sys.exit(0 if len(list(seen.iterdir())) == 8 else 3)\n")
    jobs = [_job(tmp_path / "pool", "--slots", "8", "--devices", FAKE, "--timeout", "60",
                 command=[sys.executable, "-c", body]) for _ in range(8)]
    codes = [job.wait(timeout=120) for job in jobs]
    assert codes == [0] * 8, [job.stderr.read() for job in jobs]
    devices = sorted(path.read_text() for path in seen.iterdir())
    assert devices == sorted(FAKE.split(","))


def test_a_torchrun_job_gets_k_distinct_devices_and_a_too_large_one_is_refused(tmp_path):
    held = acquire(tmp_path, 8, 3, devices=FAKE)
    try:
        assert len(set(held.devices)) == 3 and held.visible.count(",") == 2
        other = acquire(tmp_path, 8, 5, devices=FAKE, timeout=0)
        assert not set(other.devices) & set(held.devices)
        other.release()
        with pytest.raises(SlotError, match="free GPU slot"):
            acquire(tmp_path, 8, 6, devices=FAKE, timeout=0.3)   # only 5 are free
    finally:
        held.release()
    with pytest.raises(SlotError, match="needs 9 GPUs but the pool has 8"):
        acquire(tmp_path, 8, 9, devices=FAKE)


def test_a_sigkilled_job_frees_its_slot(tmp_path):
    pool = tmp_path / "pool"
    holder = _job(pool, "--slots", "1", "--devices", "fake0",
                  command=[sys.executable, "-c", "import time; print('holding', flush=True); time.sleep(600)"])
    assert holder.stdout.readline().strip() == "holding"
    waiting = _job(pool, "--slots", "1", "--devices", "fake0", "--timeout", "0.5", command=["true"])
    assert waiting.wait(timeout=60) == 2 and "no 1 free GPU slot" in waiting.stderr.read()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    started = time.monotonic()
    reused = _job(pool, "--slots", "1", "--devices", "fake0", "--timeout", "30",
                  command=[sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"])
    assert reused.wait(timeout=60) == 0
    assert reused.stdout.read().strip() == "fake0" and time.monotonic() - started < 30


def test_slots_map_to_the_inherited_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert device_list(4) == ["4", "5", "6", "7"]
    assert device_list(2) == ["4", "5"]
    with pytest.raises(SlotError, match="only 4 are listed"):
        device_list(8)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert device_list(3) == ["0", "1", "2"]


def test_under_slurm_the_jobs_own_gpus_are_used_and_too_few_is_an_error(tmp_path):
    assert slurm_devices(2, {}) is None
    assert slurm_devices(2, {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0,1"}) == "0,1"
    with pytest.raises(SlotError, match="--gpus-per-node=4 or --gres=gpu:4"):
        slurm_devices(4, {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0,1"})
    job = _job(tmp_path, "--slots", "8", "--need", "2",
               command=[sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
               env={"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "2,3"})
    assert job.wait(timeout=60) == 0 and job.stdout.read().strip() == "2,3"
    assert not list(tmp_path.glob("slot-*.lock"))  # nothing allocated: SLURM did it
