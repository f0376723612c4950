"""The composition root: reads Settings and wires the concrete adapters together."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from elasticsearch import Elasticsearch

from application.aggregate_changes import forget_aggregates
from application.anchoring import Anchoring
from application.audit import AuditProofs
from application.card_keys import CardKeysService
from application.clients import ClientsService
from application.collection import MetricsCollection
from application.federation import FederationService
from application.goals import GoalsApp
from application.ports import ReadStore
from application.reachability import ReachabilityService
from application.registry import RegistryService
from infrastructure.breaker import CircuitBreaker
from infrastructure.card_cache import CardCache
from infrastructure.card_checks import A2ACardChecks, GuardedCardFetcher
from infrastructure.card_probe import GuardedCardProbe
from infrastructure.card_publishing import CardServer, CardSigner
from infrastructure.connections import ConnectionLimits
from infrastructure.eventstore import PostgresListener, eventsourcing_env, guard_event_store, position_of
from infrastructure.jobs import Jobs
from infrastructure.outbound import OutboundClient, OutboundPolicy
from infrastructure.payload_cipher import TenantCipherMapper
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore
from infrastructure.schema import schema_lock
from infrastructure.security_log import SecurityLog
from infrastructure.settings import Settings
from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import TokenIssuer, TokenVerifier
from interfaces.http.auth import Authenticator
from interfaces.metrics import count_events, observe_command
from interfaces.webhook_system import Webhooks, build_webhooks, send_lanes
from interfaces.wiring.anchoring import build_anchoring
from interfaces.wiring.audit import audit_projection, audit_proofs
from interfaces.wiring.auth import external_verifier, key_ring, rate_limits, secret_scheme
from interfaces.wiring.database import STORE_ERRORS, database_breaker
from interfaces.wiring.encryption import encrypted_payloads
from interfaces.wiring.search import search_backend
from interfaces.wiring.shared_redis import build_card_cache, build_rate_limiter, redis_with_breaker
from interfaces.workers.actors import REBUILD_PROJECTION, SYNC_PEER, declare_actors, peer_sync_key
from interfaces.workers.collection import build_collection
from projections.agent_cards import AgentCardsProjection
from projections.agent_cards_queries import AgentCardsQueries
from projections.analytics import AnalyticsQueries
from projections.audit_anchors import AuditAnchorQueries, AuditAnchorsProjection
from projections.clients import ClientQueries, ClientsProjection
from projections.collection_targets import CollectionTargetQueries, CollectionTargetsProjection
from projections.event_facts import EventFactsProjection
from projections.event_facts_queries import EventFactsQueries
from projections.goal_progress import GoalProgressProjection, GoalProgressQueries
from projections.history_queries import GoalHistoryQueries
from projections.peers import PeerQueries, PeersProjection
from projections.projection import Projection
from projections.reachability import ReachabilityChecks
from projections.rebuild import Rebuilder
from projections.rebuild_jobs import RebuildJobs
from projections.retention import ReadSideRetention, RetentionPolicy
from projections.runner import ProjectionRunner
from projections.search.index import AgentSearch
from projections.webhook_outbox import WebhookOutboxProjection

# Collections of the oldest generation between two full collections (Python's default is 10).
FULL_COLLECTION_EVERY = 1000
log = logging.getLogger(__name__)
# Of the start-up analytics warm-up: "on demand" until warm_analytics starts (or when it is
# off, or the server stopped it), then "warming", and "warm" or "failed".
Warmth = Literal["on demand", "warming", "warm", "failed"]
# How long closing waits for the analytics warm-up to finish the tenant it is on.
WARM_UP_STOP_S = 5.0


@dataclass
class System:
    settings: Settings
    goals: GoalsApp
    store: ReadStore
    runner: ProjectionRunner
    progress: GoalProgressQueries
    history: GoalHistoryQueries
    analytics: AnalyticsQueries
    clients: ClientsService
    client_queries: ClientQueries
    keys: KeyRing
    issuer: TokenIssuer
    auth: Authenticator
    security: SecurityLog
    events: EventFactsQueries
    rebuilder: Rebuilder
    registry: RegistryService
    card_keys: CardKeysService
    federation: FederationService
    peers: PeerQueries
    agent_cards: AgentCardsQueries
    card_server: CardServer
    card_cache: CardCache
    # Every fetch from the network goes through it: AgentCards, JWKS, peers, health, webhooks.
    outbound: OutboundClient
    # The job broker, keys and records (set up once, here), and the rebuilds run as jobs.
    jobs: Jobs
    rebuilds: RebuildJobs
    search: AgentSearch
    search_model: str  # the read model `search` reads (read-your-writes waits for it)
    # Checks of registered agents' own card URLs (REACHABILITY_CHECK_S), and what they read.
    reachability: ReachabilityService
    reachability_reads: ReachabilityChecks
    webhooks: Webhooks
    # The metrics collector (docs/collector.md) and whom it polls.
    collection: MetricsCollection
    collection_targets: CollectionTargetQueries
    # The event log as a Merkle tree (docs/audit.md): roots and proofs; its anchors on a
    # chain, and what sends them (None: ANCHORING=off).
    audit: AuditProofs
    anchors: AuditAnchorQueries
    anchoring: Anchoring | None
    # Prunes read-side detail past each tenant's RETENTION_DAYS (the log is kept).
    retention: ReadSideRetention
    listener: PostgresListener | None = None
    # PostgreSQL's circuit breaker: open while the database is known to be down (None: SQLite).
    database: CircuitBreaker | None = None
    elasticsearch: Elasticsearch | None = None
    analytics_warmth: Warmth = "on demand"
    closing: threading.Event = field(default_factory=threading.Event)
    warming: threading.Thread | None = None

    def sync_peer_later(self, peer_id: str) -> bool:
        """Queue a sync of a peer; False if one is already pending or running."""
        return self.jobs.send_once(SYNC_PEER, {"peer_id": peer_id}, key=peer_sync_key(peer_id))

    def start_projections(self) -> None:
        """Run the projections in this process, woken by our own saves and by NOTIFY."""
        self.runner.start()
        if self.listener is not None:
            self.listener.start()

    def warm_analytics(self) -> threading.Thread | None:
        """Compute the system analytics of the busiest tenants (ANALYTICS_WARM_TENANTS) in the
        background, so that the first requests after start-up do not each read and fit a
        whole window of progress. A failure is logged and leaves requests to compute on demand."""
        limit = self.settings.analytics_warm_tenants
        if limit == 0:
            return None
        self.analytics_warmth = "warming"

        def warm() -> None:
            try:
                tenants = self.analytics.busiest_tenants(limit)
                self.analytics.warm(
                    tenants, stagnation_hours=self.settings.stagnation_hours, stop=self.closing
                )
            except Exception:
                if self.closing.is_set():
                    return  # the store closed under it: the process is stopping
                self.analytics_warmth = "failed"
                log.exception("warming the analytics failed; requests compute them on demand")
            else:
                self.analytics_warmth = "on demand" if self.closing.is_set() else "warm"

        self.warming = threading.Thread(target=warm, name="analytics-warm", daemon=True)
        self.warming.start()
        return self.warming

    def close(self) -> None:
        self.closing.set()
        if self.warming is not None:
            self.warming.join(WARM_UP_STOP_S)  # it stops before its next tenant
        self.runner.stop()
        if self.listener is not None:
            self.listener.stop()
        self.jobs.close()
        self.security.close()  # the denials recorded so far, before the store goes
        self.card_cache.close()
        self.auth.limiter.close()
        self.outbound.close()
        if self.database is not None:
            self.database.close()
        if self.elasticsearch is not None:
            self.elasticsearch.close()
        self.store.close()
        self.goals.close()


def build_system(settings: Settings | None = None) -> System:
    settings = settings or Settings()
    store: ReadStore
    if settings.is_postgres:
        limits = ConnectionLimits(settings.db_pool_timeout_s, settings.db_statement_timeout_s)
        store = PostgresReadStore(settings.database_url, pool_size=settings.db_pool_size, limits=limits)
    else:
        store = SQLiteReadStore(settings.read_models_path)
    security = SecurityLog(store)
    runner_ref: list[ProjectionRunner] = []
    shared_redis = redis_with_breaker(settings)
    card_cache = build_card_cache(shared_redis, settings)
    jobs_ref: list[Jobs] = []

    with schema_lock(settings):
        goals = GoalsApp(
            eventsourcing_env(settings),
            snapshot_interval=settings.snapshot_interval,
            max_retries=settings.command_retries,
            position_of=position_of,
            on_saved=lambda position: runner_ref[0].wake(position) if runner_ref else None,
            version_hint=EventFactsQueries(store).version_at,
            payload_mapper=encrypted_payloads(settings),
        )
        if isinstance(goals.mapper, TenantCipherMapper):
            # A key another process destroyed: what this one had opened under it goes too.
            goals.mapper.keys.on_forget = lambda tenants: forget_aggregates(goals)
        search_projection, search, elasticsearch = search_backend(settings, store)
        projections: list[Projection] = [
            GoalProgressProjection(),
            EventFactsProjection(),
            ClientsProjection(),
            # Served cards are built from the rows; what a page changed is evicted after it commits.
            AgentCardsProjection(evict=card_cache.evict),
            PeersProjection(),
            CollectionTargetsProjection(),
            search_projection,
            audit_projection(goals),
            AuditAnchorsProjection(),
        ]
        # An outbox, not a view: never rebuilt (a replay would send every event again).
        outbox = WebhookOutboxProjection(on_new=lambda lanes: send_lanes(jobs_ref[0], lanes) if jobs_ref else None)
        runner = ProjectionRunner(
            goals.read_log,
            store,
            [*projections, outbox],
            page_size=settings.projection_page_size,
            poll_s=settings.projection_poll_s,
            errors=STORE_ERRORS,
            stall_s=settings.projection_stall_s,
        )
        runner_ref.append(runner)
        goals.on_command, goals.on_events = observe_command, count_events
        runner.setup()
        security.setup()
        keys = key_ring(settings)
    card_server = CardServer(CardSigner(keys, jku=f"{_public_base(settings)}/.well-known/jwks.json"))
    listener = database = None
    if isinstance(store, PostgresReadStore):
        channel = getattr(goals.recorder, "channel_name", "a2a_events")
        listener = PostgresListener(settings.database_url, channel, runner.wake)
        database = database_breaker(settings)
        # After start-up, whose migrations may run long: statements are limited, and while
        # the database is known to be down both stores refuse at once.
        store.guard(database)
        guard_event_store(goals, database)
        store.limit_statements()
    client_queries = ClientQueries(store)
    outbound = OutboundClient(OutboundPolicy.from_settings(settings))
    verifier = TokenVerifier(
        keys,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        algorithms=settings.algorithm_list,
    )
    auth = Authenticator(
        verifier,
        client_queries,
        build_rate_limiter(settings, security, shared_redis),
        rate_limits(settings),
        security,
        external=external_verifier(settings, outbound),
    )
    agent_cards = AgentCardsQueries(store)
    card_keys = CardKeysService(goals)
    checks = A2ACardChecks(outbound, card_keys.keys)
    registry = RegistryService(
        goals,
        checks,
        GuardedCardFetcher(outbound),
        require_signed=settings.require_signed_cards,
        max_agents_per_client=settings.max_agents_per_client,
        registered_by=agent_cards.registered_by,
    )
    rebuilder = Rebuilder(
        goals.read_log,
        goals.log_position,
        store,
        projections,
        page_size=settings.projection_page_size,
        jobs=settings.rebuild_jobs,
        replay_elsewhere=partial(replay_share, settings),
        errors=STORE_ERRORS,
    )
    jobs = Jobs(settings)
    reachability_reads = ReachabilityChecks(store)
    jobs_ref.append(jobs)
    retention = ReadSideRetention(
        store,
        RetentionPolicy(settings.retention_days, settings.retention_days_by_tenant),
        batch=settings.retention_batch,
    )
    system = System(
        settings=settings,
        goals=goals,
        store=store,
        runner=runner,
        progress=GoalProgressQueries(store),
        history=GoalHistoryQueries(store),
        analytics=AnalyticsQueries(store),
        clients=ClientsService(goals, secret_scheme()),
        client_queries=client_queries,
        keys=keys,
        issuer=TokenIssuer(
            keys, issuer=settings.token_issuer, audience=settings.token_audience, ttl_s=settings.token_ttl_s
        ),
        auth=auth,
        security=security,
        events=EventFactsQueries(store),
        rebuilder=rebuilder,
        jobs=jobs,
        rebuilds=RebuildJobs(rebuilder, jobs, jobs.records("rebuilds"), actor=REBUILD_PROJECTION),
        registry=registry,
        card_keys=card_keys,
        agent_cards=agent_cards,
        federation=FederationService(
            goals,
            outbound,
            checks,
            enabled=settings.enable_federation,
            copies_of=agent_cards.copies_of,
        ),
        peers=PeerQueries(store),
        card_server=card_server,
        card_cache=card_cache,
        outbound=outbound,
        search=search,
        search_model=search_projection.name,
        reachability=ReachabilityService(goals, GuardedCardProbe(outbound), reachability_reads),
        reachability_reads=reachability_reads,
        webhooks=build_webhooks(settings, goals, store, outbound),
        collection=build_collection(settings, goals, outbound),
        collection_targets=CollectionTargetQueries(store),
        audit=audit_proofs(goals, store),
        anchors=AuditAnchorQueries(store),
        anchoring=build_anchoring(settings, goals, store) if settings.anchoring else None,
        retention=retention,
        listener=listener,
        database=database,
        elasticsearch=elasticsearch,
    )
    declare_actors(jobs, lambda: system)
    return system


def _public_base(settings: Settings) -> str:
    """The base of the links the registry publishes when no request says otherwise."""
    return (settings.registry_base_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def settle_heap() -> None:
    """Make full garbage collections rare in a long-running process, once it has started.

    A full collection walks every object the process holds: the modules, the read models'
    memory, the pages in flight. A projector allocates and keeps pages of events at such a
    rate that, with Python's defaults, a third of its time went to those walks, which found
    no cyclic garbage (measured: ops/bench/projections.py). What exists after start-up is
    frozen (never walked again), and a full collection waits for 1000 collections of the
    middle generation instead of 10. The young generations are collected as usual, so
    short-lived cycles are still freed at once.
    """
    gc.collect()  # start-up's own garbage is not frozen
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def replay_share(settings: Settings, names: Sequence[str]) -> int:
    """A rebuild's share, in a process of its own: replay `names` into the shadow store."""
    system = build_system(settings)
    settle_heap()
    try:
        return system.rebuilder.replay(names)
    finally:
        system.close()
