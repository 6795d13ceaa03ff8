"""Progress of the long measuring steps: a tqdm bar on a terminal, one line per finished item in a log.

A Snakemake job's stderr goes to its ``{log}``. A tqdm bar written there is a stream of carriage returns,
and a bar switched off there leaves the log silent for the minutes one throughput pair takes. Off a
terminal, each finished item is therefore one line, e.g. ``throughput: 3/12 model, 41 s (resnet34)``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TextIO

from tqdm import tqdm


class ProgressBar(Protocol):
    """What the experiments call on a progress report; tqdm and :class:`LogLines` both provide it."""

    def __iter__(self) -> Iterator[Any]: ...

    def update(self, n: int = 1) -> bool | None: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...

    def close(self) -> None: ...


class LogLines:
    """The part of tqdm's interface the experiments use (iterate, ``update``, ``set_postfix_str``,
    ``close``, ``with``), printing one flushed line per finished item to ``stream``."""

    def __init__(self, iterable: Iterable[Any] | None, total: int | None, desc: str, unit: str,
                 stream: TextIO) -> None:
        self.iterable = iterable
        self.total = total if total is not None else _length(iterable)
        self.desc, self.unit, self.stream = desc, unit, stream
        self.n = 0
        self.postfix = ""
        self.started = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError(f"progress '{self.desc}' was made without an iterable; call update() instead")
        for item in self.iterable:
            yield item
            self.update()

    def update(self, n: int = 1) -> bool | None:
        self.n += n
        of = f"/{self.total}" if self.total is not None else ""
        label = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}, {time.monotonic() - self.started:.0f} s{label}",
              file=self.stream, flush=True)
        return None  # tqdm's update returns whether it redrew; a log line has nothing to say

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        """Nothing to clear: the lines are the record."""

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _length(iterable: Iterable[Any] | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress(iterable: Iterable[Any] | None = None, *, desc: str, unit: str = "it", total: int | None = None,
             stream: TextIO | None = None) -> ProgressBar:
    """A progress report over ``iterable`` (or ``total`` items counted with ``update()``): a tqdm bar when
    ``stream`` (default stderr) is a terminal, else :class:`LogLines`."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream)
    return LogLines(iterable, total, desc, unit, stream)
