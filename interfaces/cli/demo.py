"""A realistic demo fleet, so a newcomer sees real data at once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import Progress

from application.goals import ProgressUpdate
from domain.meta import Meta
from domain.objectives import GoalDefinition, Kpi, Objective
from interfaces.bootstrap import System

FLEET: list[tuple[str, str, list[tuple[str, Kpi | None]]]] = [
    (
        "data_product",
        "Publish clean, documented data products for analysts",
        [
            ("Dataset freshness under 1 hour", Kpi("dataset_lag_minutes", 60, 240, "min", "decrease")),
            ("Schema coverage", Kpi("documented_columns_ratio", 95, 40, "%")),
        ],
    ),
    (
        "support_triage",
        "Route every support ticket to the right team in minutes",
        [
            ("Median triage time", Kpi("triage_seconds_p50", 120, 900, "s", "decrease")),
            ("Routing accuracy", Kpi("routing_accuracy", 97, 80, "%")),
        ],
    ),
    (
        "code_review",
        "Review pull requests for correctness and security",
        [("Reviews per day", Kpi("reviews_per_day", 60, 10, "reviews")), ("False positive rate", None)],
    ),
    (
        "invoice_matcher",
        "Match supplier invoices to purchase orders",
        [("Auto-match rate", Kpi("auto_match_ratio", 90, 55, "%")), ("Exceptions cleared", None)],
    ),
    (
        "incident_scribe",
        "Write incident timelines while incidents are open",
        [
            ("Timeline completeness", None),
            ("Time to first summary", Kpi("first_summary_s", 300, 1800, "s", "decrease")),
        ],
    ),
    (
        "sales_research",
        "Brief account executives before every call",
        [
            ("Briefs delivered", Kpi("briefs_per_week", 150, 20, "briefs")),
            ("Brief rating", Kpi("brief_rating", 4.5, 3.0, "stars")),
        ],
    ),
    (
        "translation",
        "Translate product docs into eight languages",
        [("Languages shipped", Kpi("languages_live", 8, 1, "languages")), ("Glossary adherence", None)],
    ),
    (
        "forecasting",
        "Forecast weekly demand per region",
        [
            ("Forecast error (MAPE)", Kpi("mape_percent", 8, 25, "%", "decrease")),
            ("Regions covered", Kpi("regions", 12, 3, "regions")),
        ],
    ),
    (
        "security_scanner",
        "Find vulnerable dependencies before release",
        [
            ("Repos scanned", Kpi("repos_scanned", 400, 50, "repos")),
            ("Critical findings open", Kpi("critical_open", 0, 30, "findings", "decrease")),
        ],
    ),
    (
        "onboarding_guide",
        "Guide new hires through their first two weeks",
        [("Checklist completion", None), ("New-hire satisfaction", Kpi("nps", 60, 10, "nps"))],
    ),
    (
        "cost_optimizer",
        "Cut idle cloud spend without touching production",
        [("Idle spend", Kpi("idle_spend_usd", 2000, 15000, "USD", "decrease")), ("Savings verified", None)],
    ),
    (
        "qa_tester",
        "Exercise every release candidate end to end",
        [
            ("Scenario coverage", Kpi("scenarios_passing", 500, 120, "scenarios")),
            ("Flaky tests quarantined", None),
        ],
    ),
]


def load_demo(system: System, *, tenant: str, agents: int, weeks: int, seed: int, console: Console) -> str:
    """Set goals for `agents` agents and record `weeks` of daily progress, seeded."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    meta = Meta(actor="demo-loader", request_id="demo")
    start = datetime.now(UTC) - timedelta(weeks=weeks)
    events_before = system.goals.log_position()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading demo fleet", total=agents)
        for n in range(agents):
            key, purpose, objectives = FLEET[n % len(FLEET)]
            agent_id = f"agent{n}_{key}"
            definition = GoalDefinition(
                purpose_statement=purpose,
                objectives=tuple(
                    Objective(f"o{i + 1}", title, weight=float(rng.choice([1, 1, 2, 3])), kpi=kpi)
                    for i, (title, kpi) in enumerate(objectives)
                ),
                success_criteria=(f"{objectives[0][0]} reaches its target",),
                label="1.0",
                target_date=(start + timedelta(weeks=weeks + rng.randint(1, 8))).date().isoformat(),
            )
            system.goals.set_goals(tenant, agent_id, definition, meta)
            _history(system, tenant, agent_id, definition, start, weeks, rng, meta)
            bar.advance(task)
    written = system.goals.log_position() - events_before
    return f"demo fleet loaded: {agents} agents, {weeks} weeks, {written} events in tenant {tenant!r}"


def _history(
    system: System,
    tenant: str,
    agent_id: str,
    definition: GoalDefinition,
    start: datetime,
    weeks: int,
    rng: random.Random,
    meta: Meta,
) -> None:
    pace = rng.uniform(0.4, 1.3)
    progress = {o.id: 0.0 for o in definition.objectives}
    for day in range(weeks * 7):
        for objective in definition.objectives:
            progress[objective.id] = min(100.0, progress[objective.id] + rng.uniform(0, 3.5) * pace)
        kpi_values = {
            o.id: round(o.kpi.baseline + (o.kpi.target - o.kpi.baseline) * progress[o.id] / 100, 2)
            for o in definition.objectives
            if o.kpi
        }
        manual = {o.id: round(progress[o.id], 2) for o in definition.objectives if not o.kpi}
        observed = start + timedelta(days=day, hours=rng.randint(8, 18))
        system.goals.record_progress(
            tenant, ProgressUpdate(agent_id, manual, kpi_values, None, observed), meta
        )
    if pace < 0.6:
        system.goals.change_status(tenant, agent_id, "paused", "waiting on upstream data", meta)
