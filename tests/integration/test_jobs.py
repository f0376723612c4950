"""Background jobs on real brokers: a Dramatiq Worker in this process takes what was sent on
Redis (TEST_REDIS_URL), on RabbitMQ (TEST_BROKER_AMQP_URL) or in memory, retries a job that
failed once, and the scheduler sends no second poll of a key while the first is pending or
running. Each test has a queue prefix of its own, and leaves nothing on the servers."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pika
import pytest
import redis
from dramatiq.brokers.stub import StubBroker
from prometheus_client import REGISTRY

from infrastructure.jobs import DEAD_LETTERS_KEPT, Jobs
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.workers.scheduler import JobScheduler, Poll
from interfaces.workers.worker import InProcessJobs, JobWorker
from projections.rebuild_jobs import RebuildQueued
from tests.integration.support import wait_until

BROKERS = ["redis", "rabbitmq", "stub"]
WAIT_S = 30.0  # a bound for what should take well under a second


def _service_url(variable: str, what: str) -> str:
    url = os.environ.get(variable)
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{variable} is not set: run the suite with ops/test")
        pytest.skip(f"{what} not configured ({variable}); ops/test provides one")
    return url


@pytest.fixture(scope="module")
def redis_url() -> str:
    return _service_url("TEST_REDIS_URL", "Redis")


@pytest.fixture(scope="module")
def amqp_url() -> str:
    return _service_url("TEST_BROKER_AMQP_URL", "RabbitMQ")


@pytest.fixture
def make_jobs(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Jobs]]:
    """Jobs on a broker of the given kind, under a queue prefix of this test's own; their
    queues and keys are deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    made: list[Jobs] = []

    def make(kind: str) -> Jobs:
        values = {"APP_ENV": "test", "QUEUE_PREFIX": prefix}
        if kind == "redis":
            values["BROKER_URL"] = request.getfixturevalue("redis_url")
        elif kind == "rabbitmq":
            values["BROKER_URL"] = request.getfixturevalue("amqp_url")
            values["REDIS_URL"] = request.getfixturevalue("redis_url")  # the job keys
        made.append(Jobs(Settings(_env_file=None, **values)))  # type: ignore[call-arg]
        return made[-1]

    yield make
    for jobs in made:
        queues = {q for name in jobs.broker.get_declared_queues() for q in (name, f"{name}.DQ", f"{name}.XQ")}
        jobs.close()
        if jobs.settings.broker_kind == "rabbitmq":
            with pika.BlockingConnection(pika.URLParameters(jobs.settings.broker_url)) as conn:
                channel = conn.channel()
                for queue in queues:
                    channel.queue_delete(queue)
    if any(j.settings.job_keys_url for j in made):
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def start_worker() -> Iterator[Callable[[Jobs], JobWorker]]:
    workers: list[JobWorker] = []

    def start(jobs: Jobs) -> JobWorker:
        worker = JobWorker(jobs, threads=2)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def declare(jobs: Jobs, fn: Callable[..., None], **options: object) -> str:
    """Declare `fn` as an actor of `jobs` (retries quick, so tests need not wait)."""
    options = {"min_backoff": 20, "max_backoff": 100, **options}
    dramatiq.actor(broker=jobs.broker, actor_name=fn.__name__, queue_name=jobs.queue("test"), **options)(fn)
    return fn.__name__


@pytest.mark.parametrize("kind", BROKERS)
def test_a_job_sent_is_run_by_a_worker_of_this_process(
    kind: str, make_jobs: Callable[[str], Jobs], start_worker: Callable[[Jobs], JobWorker]
) -> None:
    jobs = make_jobs(kind)
    received: list[str] = []
    done = threading.Event()

    def echo(value: str) -> None:
        received.append(value)
        done.set()

    declare(jobs, echo)
    start_worker(jobs)
    jobs.send("echo", {"value": "hello"})
    assert done.wait(WAIT_S), "the job did not run"
    assert received == ["hello"]


@pytest.mark.parametrize("kind", BROKERS)
def test_a_job_that_fails_once_is_retried_and_holds_its_key_until_it_succeeds(
    kind: str, make_jobs: Callable[[str], Jobs], start_worker: Callable[[Jobs], JobWorker]
) -> None:
    jobs = make_jobs(kind)
    attempts: list[int] = []
    retried, proceed, done = threading.Event(), threading.Event(), threading.Event()

    def flaky() -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise ConnectionError("the peer went away for a moment")
        retried.set()
        assert proceed.wait(WAIT_S)
        done.set()

    declare(jobs, flaky, max_retries=3)
    start_worker(jobs)
    assert jobs.send_once("flaky", {}, key="flaky-poll")
    assert retried.wait(WAIT_S), "the job was not retried"
    assert not jobs.send_once("flaky", {}, key="flaky-poll"), "sent again while its retry runs"
    proceed.set()
    assert done.wait(WAIT_S)
    wait_until(lambda: jobs.hold("flaky-poll") is not None, WAIT_S, "the key let go of after success")
    assert attempts == [1, 2]


@pytest.mark.parametrize("kind", ["redis", "stub"])
def test_a_job_that_fails_for_good_lets_go_of_its_key(
    kind: str, make_jobs: Callable[[str], Jobs], start_worker: Callable[[Jobs], JobWorker]
) -> None:
    jobs = make_jobs(kind)
    attempts: list[int] = []

    def doomed() -> None:
        attempts.append(1)
        raise ValueError("this input can never be processed")

    declare(jobs, doomed, max_retries=1)
    start_worker(jobs)
    assert jobs.send_once("doomed", {}, key="doomed-poll")
    wait_until(lambda: jobs.hold("doomed-poll") is not None, WAIT_S, "the key let go of after the last try")
    assert len(attempts) == 2, "one try and one retry"


def test_an_in_process_broker_keeps_only_the_newest_failed_jobs(
    make_jobs: Callable[[str], Jobs], start_worker: Callable[[Jobs], JobWorker]
) -> None:
    jobs = make_jobs("stub")
    failed: list[int] = []

    def broken(n: int) -> None:
        failed.append(n)
        raise ValueError(f"job {n} cannot be done")

    declare(jobs, broken, max_retries=0)
    start_worker(jobs)
    for n in range(DEAD_LETTERS_KEPT + 20):
        jobs.send("broken", {"n": n})
    wait_until(lambda: len(failed) == DEAD_LETTERS_KEPT + 20, WAIT_S, "every job to fail")
    assert isinstance(jobs.broker, StubBroker)
    wait_until(lambda: len(jobs.broker.dead_letters) == DEAD_LETTERS_KEPT, WAIT_S, "the dead letters")
    kept = {m.kwargs["n"] for m in jobs.broker.dead_letters}
    # two threads fail them in about the order they were sent: the first ones are forgotten
    assert kept.isdisjoint(range(10)) and DEAD_LETTERS_KEPT + 19 in kept


def _polls(actor: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("a2a_job_polls_total", {"actor": actor, "outcome": outcome}) or 0.0


@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
def test_the_scheduler_sends_no_second_poll_while_the_first_is_pending_or_running(
    kind: str, make_jobs: Callable[[str], Jobs], start_worker: Callable[[Jobs], JobWorker]
) -> None:
    jobs = make_jobs(kind)
    runs: list[int] = []
    proceed = threading.Event()
    actor = f"slow_poll_{kind}"

    def slow_poll() -> None:
        runs.append(1)
        assert proceed.wait(WAIT_S)

    slow_poll.__name__ = actor
    declare(jobs, slow_poll)
    scheduler = JobScheduler(jobs, [Poll(actor, every_s=0.05, key="slow")])
    sent_before = _polls(actor, "sent")
    scheduler.start()
    try:
        # pending: no worker takes it yet, and the polls that come due are not sent
        wait_until(lambda: _polls(actor, "pending") >= 5, WAIT_S, "polls coming due")
        assert _polls(actor, "sent") - sent_before == 1
        # running: a worker with a free thread takes the one poll, and no other is sent
        start_worker(jobs)
        wait_until(lambda: len(runs) == 1, WAIT_S, "the poll to start")
        pending = _polls(actor, "pending")
        wait_until(lambda: _polls(actor, "pending") >= pending + 5, WAIT_S, "more polls coming due")
        assert len(runs) == 1 and _polls(actor, "sent") - sent_before == 1
        # once it has run, the next poll that comes due is sent and run
        proceed.set()
        wait_until(lambda: len(runs) >= 2, WAIT_S, "the next poll")
    finally:
        proceed.set()
        scheduler.stop()


def _rebuild_states(system: System) -> dict[str, str]:
    return {r["name"]: r["state"] for r in system.rebuilds.latest()}


def test_in_process_jobs_rebuild_read_models_one_rebuild_at_a_time(
    make_settings: Callable[..., Settings],
) -> None:
    system = build_system(make_settings(RUN_PROJECTIONS_IN_PROCESS="false", PROJECTION_WATCH_S="0"))
    jobs = InProcessJobs(system)
    try:
        assert system.jobs.in_process
        assert system.rebuilds.start("event_facts").state == "queued"
        # queued and not started yet (no worker runs): another one is refused at once
        with pytest.raises(RebuildQueued):
            system.rebuilds.start("goal_progress")
        jobs.start()
        wait_until(lambda: _rebuild_states(system) == {"event_facts": "done"}, WAIT_S, "the rebuild")
        system.rebuilds.start("all")  # the first let go of its key: the next may be asked for
        wait_until(lambda: _rebuild_states(system).get("all") == "done", WAIT_S, "the second rebuild")
    finally:
        jobs.stop()
        system.close()
