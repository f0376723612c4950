"""The composition root: reads Settings and wires the concrete adapters together."""

from __future__ import annotations

from dataclasses import dataclass

from application.goals import GoalsApp
from application.ports import ReadStore
from infrastructure.eventstore import PostgresListener, eventsourcing_env, position_of
from infrastructure.readstore import TRANSIENT_ERRORS, PostgresReadStore, SQLiteReadStore
from infrastructure.schema import schema_lock
from infrastructure.settings import Settings
from projections.analytics import AnalyticsQueries
from projections.goal_history import GoalHistoryProjection, GoalHistoryQueries
from projections.goal_progress import GoalProgressProjection, GoalProgressQueries
from projections.runner import ProjectionRunner


@dataclass
class System:
    settings: Settings
    goals: GoalsApp
    store: ReadStore
    runner: ProjectionRunner
    progress: GoalProgressQueries
    history: GoalHistoryQueries
    analytics: AnalyticsQueries
    listener: PostgresListener | None = None

    def start_projections(self) -> None:
        """Run the projections in this process, woken by our own saves and by NOTIFY."""
        self.runner.start()
        if self.listener is not None:
            self.listener.start()

    def close(self) -> None:
        self.runner.stop()
        if self.listener is not None:
            self.listener.stop()
        self.store.close()
        self.goals.close()


def build_system(settings: Settings | None = None) -> System:
    settings = settings or Settings()
    store: ReadStore
    if settings.is_postgres:
        store = PostgresReadStore(settings.database_url, pool_size=settings.db_pool_size)
    else:
        store = SQLiteReadStore(settings.read_models_path)
    runner_ref: list[ProjectionRunner] = []
    with schema_lock(settings):
        goals = GoalsApp(
            eventsourcing_env(settings),
            snapshot_interval=settings.snapshot_interval,
            max_retries=settings.command_retries,
            position_of=position_of,
            on_saved=lambda position: runner_ref[0].wake(position) if runner_ref else None,
        )
        runner = ProjectionRunner(
            goals.read_log,
            store,
            [GoalProgressProjection(), GoalHistoryProjection()],
            page_size=settings.projection_page_size,
            poll_s=settings.projection_poll_s,
            transient=TRANSIENT_ERRORS,
        )
        runner_ref.append(runner)
        runner.setup()
    listener = None
    if settings.is_postgres:
        channel = getattr(goals.recorder, "channel_name", "a2a_events")
        listener = PostgresListener(settings.database_url, channel, runner.wake)
    return System(
        settings=settings,
        goals=goals,
        store=store,
        runner=runner,
        progress=GoalProgressQueries(store),
        history=GoalHistoryQueries(store),
        analytics=AnalyticsQueries(store),
        listener=listener,
    )
