"""GPUs for the jobs of one node: a lock-file slot allocator that sets ``CUDA_VISIBLE_DEVICES``.

Snakemake's ``gpu`` resource only counts: with ``--resources gpu=8`` it runs up to eight one-GPU jobs at
once, and each of them, left alone, trains on ``cuda:0``. Each GPU job of the workflow therefore runs
through this wrapper::

    python -m replication.launch.gpu_slots --slots 8 --need 2 -- torchrun --nproc_per_node 2 ...

It takes ``--need`` distinct slots out of ``--slots`` in a pool folder (``slot-<i>.lock`` files), each held
by an exclusive ``flock``, sets ``CUDA_VISIBLE_DEVICES`` to those slots' devices and replaces itself with the
command (``exec``). The locks belong to the open files, which the command inherits: they are released
when the job's last process ends, however it ends (a crash, ``kill -9``, the node's OOM killer), so a
dead job never keeps its GPUs. A job that finds too few free slots waits (``--timeout``, default no limit).

Slot ``i`` is the ``i``-th device of ``--devices`` (default: the ``CUDA_VISIBLE_DEVICES`` this wrapper was
started with, else ``0 .. slots-1``), so ``CUDA_VISIBLE_DEVICES=4,5,6,7 snakemake --resources gpu=4`` uses
GPUs 4-7. The allocator knows nothing about CUDA: the tests run it over fake devices.

Under SLURM (``SLURM_JOB_ID`` set) SLURM has already given the job its GPUs (``--gpus`` / ``--gres=gpu:k``
from the same ``gpu`` resource) and set ``CUDA_VISIBLE_DEVICES``: the wrapper allocates nothing, checks
that the job holds at least ``--need`` GPUs, and runs the command on exactly those.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_POOL = ".snakemake/gpu-slots"
ENV_POOL = "RMNET_GPU_POOL"


class SlotError(RuntimeError):
    """The job cannot get the GPUs it needs (too few in the pool or in its SLURM allocation, or a timeout)."""


@dataclass
class Slots:
    """Slots held by this process: their indices, the devices they stand for, and the open locked files."""

    indices: list[int]
    devices: list[str]
    fds: list[int]

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)  # closing the last descriptor of the file releases its flock
        self.fds = []

    @property
    def visible(self) -> str:
        return ",".join(self.devices)


def device_list(slots: int, devices: str | None = None) -> list[str]:
    """The device of each slot: ``devices`` (comma-separated), else the inherited ``CUDA_VISIBLE_DEVICES``,
    else ``0 .. slots-1``. Fewer devices than slots is a :class:`SlotError`."""
    source = devices if devices is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
    listed = [item.strip() for item in source.split(",") if item.strip()] if source else []
    if not listed:
        return [str(index) for index in range(slots)]
    if len(listed) < slots:
        raise SlotError(f"a pool of {slots} GPU slots needs {slots} devices, but only {len(listed)} are listed "
                        f"({','.join(listed)}): lower the profile's gpu resource or list more devices")
    return listed[:slots]


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def acquire(pool: str | os.PathLike, slots: int, need: int, *, devices: str | None = None,
            timeout: float | None = None, poll: float = 0.2) -> Slots:
    """Lock ``need`` distinct free slots of the ``slots`` in ``pool``; wait while too few are free.

    All or nothing: a job never holds part of what it needs while waiting (two jobs each holding half of
    what both need would wait forever). Raises :class:`SlotError` when ``need`` exceeds ``slots`` or after
    ``timeout`` seconds.
    """
    if need < 1 or slots < 1:
        raise SlotError(f"need >= 1 and slots >= 1, got need={need}, slots={slots}")
    if need > slots:
        raise SlotError(f"this job needs {need} GPUs but the pool has {slots} (the profile's gpu resource): "
                        f"raise it, e.g. --resources gpu={need}, or lower the job's processes")
    names = device_list(slots, devices)
    folder = Path(pool)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    while True:
        held: list[tuple[int, int]] = []
        for index in range(slots):
            fd = _try_lock(folder / f"slot-{index}.lock")
            if fd is not None:
                held.append((index, fd))
                if len(held) == need:
                    for _, kept in held:
                        os.set_inheritable(kept, True)  # the command keeps the locks across exec
                    return Slots([i for i, _ in held], [names[i] for i, _ in held], [f for _, f in held])
        for _, fd in held:
            os.close(fd)
        if timeout is not None and time.monotonic() - started > timeout:
            raise SlotError(f"no {need} free GPU slot(s) of {slots} in {folder} within {timeout:g} s")
        time.sleep(poll)


def slurm_devices(need: int, environ: dict[str, str] | None = None) -> str | None:
    """Under SLURM, the job's own GPUs (``CUDA_VISIBLE_DEVICES`` as SLURM set it); None outside SLURM.
    Fewer than ``need`` is a :class:`SlotError` naming what the job was given."""
    env = os.environ if environ is None else environ
    if not env.get("SLURM_JOB_ID"):
        return None
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    given = [item for item in visible.split(",") if item.strip()]
    if len(given) < need:
        raise SlotError(f"SLURM job {env['SLURM_JOB_ID']} holds {len(given)} GPU(s) (CUDA_VISIBLE_DEVICES="
                        f"{visible or 'unset'}) but needs {need}: submit it with --gpus-per-node={need} or "
                        f"--gres=gpu:{need} (the workflow's gpu resource does this on profiles/slurm)")
    return ",".join(given[:need])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replication.launch.gpu_slots",
                                     description="Run a command on its own GPUs of this node (CUDA_VISIBLE_DEVICES).")
    parser.add_argument("--slots", type=int, required=True, help="GPUs of the pool (the profile's gpu resource)")
    parser.add_argument("--need", type=int, default=1, help="GPUs this command needs (torchrun's processes)")
    parser.add_argument("--pool", default=os.environ.get(ENV_POOL, DEFAULT_POOL),
                        help=f"folder of the slot-<i>.lock files [${ENV_POOL} or {DEFAULT_POOL}]")
    parser.add_argument("--devices", help="device of each slot, comma-separated [inherited CUDA_VISIBLE_DEVICES "
                                          "or 0..slots-1]")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds of waiting [wait forever]")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    try:
        under_slurm = slurm_devices(args.need)
        if under_slurm is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = under_slurm
            os.environ["RMNET_GPU_SLOTS"] = "slurm"
        else:
            held = acquire(args.pool, args.slots, args.need, devices=args.devices, timeout=args.timeout)
            os.environ["CUDA_VISIBLE_DEVICES"] = held.visible
            os.environ["RMNET_GPU_SLOTS"] = ",".join(map(str, held.indices))
    except SlotError as error:
        print(f"gpu_slots: {error}", file=sys.stderr)
        return 2
    print(f"gpu_slots: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']} "
          f"(slots {os.environ['RMNET_GPU_SLOTS']})", file=sys.stderr, flush=True)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"gpu_slots: cannot run {command[0]}: {error}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
