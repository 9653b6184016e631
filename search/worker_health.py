"""What a worker leaves behind about itself while a trial runs: its heartbeat (so a dead worker's
trial is noticed and retried), its node id and the trial's wall and CPU seconds.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import optuna
import ray

from storage.study_records import (
    WorkerTime,
    write_worker_time,
)


class WorkerClock:
    """Wall and CPU seconds of one trial function call in this worker process."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def record(self, trial: optuna.Trial) -> None:
        spent = WorkerTime(time.perf_counter() - self.wall, time.process_time() - self.cpu)
        write_worker_time(trial, spent)


def node_id() -> str:
    if ray.is_initialized():  # asking outside Ray would start a Ray instance
        return ray.get_runtime_context().get_node_id()
    return f"local-{os.getpid()}"


class Heartbeat:
    """Beat for one trial while it runs, so a dead worker's trial is noticed and retried."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int, interval: int):
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while True:
            # A storage hiccup must not kill the trial; the next beat retries.
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(self._interval):
                return
