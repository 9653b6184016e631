"""The one peak-memory probe: it sees what a block allocates, and each block starts afresh, so a
worker that runs many trials reports each trial's own peak."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from objectives.trial.memory import peak_memory

MIB = 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reset needs /proc")
def test_each_block_reports_its_own_peak_not_the_processs() -> None:
    with peak_memory("cpu") as before:
        baseline = before()
    with peak_memory("cpu") as big:
        block = np.ones(300 * MIB, dtype=np.uint8)  # written, so resident
        big_peak = big()
    del block
    with peak_memory("cpu") as small:
        small_peak = small()
    assert big_peak >= baseline + 250
    assert small_peak < big_peak - 250
