"""One peak-memory probe for trials and benchmarks, so the figures they print measure the same thing.

On CUDA it is the peak tensor allocation (``torch.cuda.max_memory_allocated``); elsewhere the
process's resident-set high-water mark. On Linux the high-water mark is reset on entry
(``/proc/self/clear_refs``), so a worker process that runs many trials, or a benchmark that times
several runs in one process, reports each block's own peak rather than the process's largest so far.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

__all__ = ["peak_memory"]


@contextlib.contextmanager
def peak_memory(device: str) -> Iterator[Callable[[], float]]:
    """Measure the block's peak memory in MiB: yields a function that reads the peak so far."""
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak() -> float:
        if cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        # No /proc (macOS, BSD): the process's lifetime peak, never reset; ru_maxrss is in KiB here.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    yield peak
