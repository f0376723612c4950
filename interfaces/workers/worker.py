"""`a2a-goals worker`: a Dramatiq worker in this process, running the jobs of every queue on
N threads; and the in-process worker and scheduler of the embedded default."""

from __future__ import annotations

import signal
import threading

import dramatiq
from prometheus_client import start_http_server

from infrastructure.jobs import Jobs
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system, settle_heap
from interfaces.workers.collection import CollectionSweep
from interfaces.workers.scheduler import JobScheduler, polls

# How long stopping waits for the jobs running then; one still running is left to the broker,
# which gives it to another worker (Redis: once this one's heartbeat is missed; RabbitMQ: as
# its connection closes). Jobs not started yet go back to the broker at once.
STOP_TIMEOUT_S = 10.0
# How often an idle worker thread looks for work again; stopping takes at most about this.
IDLE_WAKE_MS = 500


class JobWorker:
    """A Dramatiq Worker on the broker of `jobs`: `threads` threads, every declared queue."""

    def __init__(self, jobs: Jobs, threads: int) -> None:
        self._jobs = jobs
        self._threads = threads
        self._worker: dramatiq.Worker | None = None

    def start(self) -> None:
        self._jobs.boot()
        self._worker = dramatiq.Worker(
            self._jobs.broker, worker_threads=self._threads, worker_timeout=IDLE_WAKE_MS
        )
        self._worker.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        if self._worker is not None:
            self._worker.stop(timeout=round(timeout_s * 1000))
            self._worker = None


class InProcessJobs:
    """The embedded default (no BROKER_URL): the API process runs a worker of its in-memory
    broker and the scheduler, so one process is the whole system."""

    def __init__(self, system: System) -> None:
        self._worker = JobWorker(system.jobs, system.settings.worker_threads)
        self._scheduler = JobScheduler(system.jobs, polls(system.settings))
        self._sweep = CollectionSweep(system.jobs, system.store, system.settings.collect_sweep_s)

    def start(self) -> None:
        self._worker.start()
        self._scheduler.start()
        self._sweep.start()

    def stop(self) -> None:
        self._sweep.stop()
        self._scheduler.stop()
        self._worker.stop()


def run_worker(settings: Settings, threads: int, metrics_port: int | None = None) -> None:
    """Run jobs until SIGTERM or SIGINT, then let the running ones finish (STOP_TIMEOUT_S)."""
    system = build_system(settings)
    settle_heap()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.host)
    worker = JobWorker(system.jobs, threads)
    worker.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        worker.stop()
        system.close()
