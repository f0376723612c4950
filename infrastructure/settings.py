"""All configuration, from the environment, in one typed class."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from infrastructure import settings_rules as rules
from infrastructure.data_keys import MasterKeys
from infrastructure.outbound_addresses import IPNetwork
from infrastructure.ratelimit import Rate
from infrastructure.secret_box import parse_key
from infrastructure.settings_rules import ANVIL_DEV_KEY, CHAIN_KEY

BROKER_SCHEMES = frozenset({"redis", "rediss", "amqp", "amqps"})
# The time limit of one poll of an agent's metrics (its actor's), in seconds.
POLL_TIME_LIMIT_S = 60


def _own_version() -> str:
    """The installed package's version (a checkout run without installing it has none)."""
    try:
        return package_version("a2a-goals")
    except PackageNotFoundError:
        return "unknown"


class Settings(BaseSettings):
    """Every setting has a safe embedded default; production refuses insecure ones."""

    # hide_input_in_errors: a refusal must name the problem without echoing secrets.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    env: Literal["dev", "test", "prod"] = Field("dev", alias="APP_ENV")
    # The seeds' names: the API's title and version in /openapi.json and /docs.
    app_name: str = Field("a2a-goals", alias="APP_NAME", min_length=1, max_length=100)
    app_version: str = Field(default_factory=_own_version, alias="APP_VERSION", max_length=50)
    database_url: str = Field("", alias="DATABASE_URL")
    data_dir: Path = Field(Path("data"), alias="DATA_DIR")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT", ge=1, le=65535)
    debug: bool = Field(False, alias="DEBUG")
    # Log lines as JSON objects or as text; unset: json when APP_ENV=prod, text otherwise.
    log_format_choice: Literal["json", "text"] | None = Field(None, alias="LOG_FORMAT")
    # One line per API request (route template, status, duration, caller); probes at debug.
    access_log: bool = Field(True, alias="ACCESS_LOG")

    run_projections: bool = Field(True, alias="RUN_PROJECTIONS_IN_PROCESS")
    # Events per projection transaction while catching up (a page holds what has arrived,
    # at most this). Bigger pages fold more events of an agent into one row write: on the
    # 1M-event bench, 5,000 gave 22.6k events/s, 20,000 31.8k (peak RSS 457 MB) and 40,000
    # 34.3k (570 MB); 60,000 was no faster than 40,000.
    projection_page_size: int = Field(40_000, alias="PROJECTION_PAGE_SIZE", ge=1, le=100_000)
    projection_poll_s: float = Field(0.5, alias="PROJECTION_POLL_S", gt=0)
    # A read model behind the log by more than this (plus a poll) whose tracking row did not
    # move in that time is not advancing: health answers 503, whichever process runs it.
    projection_stall_s: float = Field(30.0, alias="PROJECTION_STALL_S", gt=0, le=3600)
    # /health/ready: a read model whose oldest unapplied event is older than this is "behind";
    # each check of a dependency gives up after READY_CHECK_TIMEOUT_S ("timeout").
    ready_max_lag_s: float = Field(30.0, alias="READY_MAX_LAG_S", gt=0, le=86_400)
    ready_check_timeout_s: float = Field(1.0, alias="READY_CHECK_TIMEOUT_S", gt=0, le=30)
    # Processes a rebuild of several read models replays in, each a share of them (PostgreSQL).
    rebuild_jobs: int = Field(2, alias="REBUILD_JOBS", ge=1, le=16)
    min_position_timeout_s: float = Field(5.0, alias="MIN_POSITION_TIMEOUT_S", ge=0, le=60)
    stagnation_hours: float = Field(24, alias="STAGNATION_HOURS", gt=0)
    analytics_warm_tenants: int = Field(
        16,
        alias="ANALYTICS_WARM_TENANTS",
        ge=0,
        le=16,  # what the analytics memory keeps
        description="tenants whose system analytics a server computes at start-up, busiest first (0: none)",
    )

    snapshot_interval: int = Field(100, alias="SNAPSHOT_INTERVAL", ge=0)
    command_retries: int = Field(8, alias="COMMAND_RETRIES", ge=1, le=100)
    aggregate_cache_size: int = Field(10_000, alias="AGGREGATE_CACHE_SIZE", ge=0)
    db_pool_size: int = Field(10, alias="DB_POOL_SIZE", ge=1)
    # Failing fast while PostgreSQL is away: how long a request may wait for a pooled
    # connection and a statement may run (0: no limit), how many connection failures in a
    # row mark the database down, and how often it is probed then.
    db_pool_timeout_s: float = Field(2.0, alias="DB_POOL_TIMEOUT_S", gt=0, le=60)
    db_statement_timeout_s: float = Field(10.0, alias="DB_STATEMENT_TIMEOUT_S", ge=0, le=3600)
    db_breaker_failures: int = Field(3, alias="DB_BREAKER_FAILURES", ge=1, le=1000)
    db_probe_interval_s: float = Field(0.5, alias="DB_PROBE_INTERVAL_S", gt=0, le=60)

    max_body_bytes: int = Field(1_048_576, alias="MAX_BODY_BYTES", ge=1024)
    default_tenant: str = Field("default", alias="DEFAULT_TENANT", description="tenant of the dev client")
    operator_tenant: str = Field(
        "default", alias="OPERATOR_TENANT", description="tenant whose admins may rebuild or skip read models"
    )

    token_issuer: str = Field("a2a-goals", alias="TOKEN_ISSUER")
    token_audience: str = Field("a2a-goals-api", alias="TOKEN_AUDIENCE")
    token_ttl_s: int = Field(900, alias="TOKEN_TTL_S", ge=60, le=86_400)
    # The seeds' name for the same (in minutes); it sets TOKEN_TTL_S, and both set must agree.
    access_token_expire_minutes: int | None = Field(None, alias="ACCESS_TOKEN_EXPIRE_MINUTES", ge=1, le=1440)
    # The seeds' shared-secret HS256 tokens, refused: tokens here are ES256, signed by SIGNING_KEYS.
    secret_key: SecretStr | None = Field(None, alias="SECRET_KEY")
    algorithm: str | None = Field(None, alias="ALGORITHM")
    jwt_algorithms: str = Field("ES256", alias="JWT_ALGORITHMS", description="comma-separated allow-list")
    signing_keys: SecretStr | None = Field(
        None, alias="SIGNING_KEYS", description="PEM EC P-256 private keys, newest last; required in prod"
    )
    key_rotate_days: float = Field(30, alias="KEY_ROTATE_DAYS", gt=0)
    external_jwks_url: str = Field("", alias="EXTERNAL_JWKS_URL")
    external_issuer: str = Field("", alias="EXTERNAL_ISSUER")
    external_algorithms: str = Field("RS256,ES256", alias="EXTERNAL_ALGORITHMS")

    # The registry
    registry_base_url: str = Field(
        "",
        alias="REGISTRY_BASE_URL",
        # The A2A seeds' names for the service's public base URL.
        validation_alias=AliasChoices("REGISTRY_BASE_URL", "A2A_BASE_URL", "A2A_SERVICE_URL"),
        description="base of every link the registry publishes (behind a proxy); the request's own base if empty",
    )
    require_signed_cards: bool = Field(False, alias="REQUIRE_SIGNED_CARDS")
    max_agents_per_client: int = Field(1000, alias="MAX_AGENTS_PER_CLIENT", ge=0, description="0: no limit")
    enable_federation: bool = Field(True, alias="ENABLE_FEDERATION")
    # How many server processes `serve` started (set by it): with more than one and no
    # REDIS_URL, hot cards are not cached (no process could evict another's cache).
    serve_workers: int = Field(1, alias="SERVE_WORKERS", ge=1)
    peer_sync_s: float = Field(300, alias="PEER_SYNC_S", ge=0, le=86_400, description="0: only on demand")
    # How often each registered agent's own card URL is checked (docs/registry.md). 0: never.
    reachability_check_s: float = Field(900, alias="REACHABILITY_CHECK_S", ge=0, le=86_400)
    redis_url: str = Field("", alias="REDIS_URL")

    # Background jobs (Dramatiq). Empty: an in-memory broker and a worker inside the API
    # process (prod takes REDIS_URL instead); redis:// or amqp://: `a2a-goals worker` runs them.
    broker_url: str = Field("", alias="BROKER_URL")
    # Every queue and Redis key of the jobs is named under it, so that deployments (or test
    # runs) sharing one Redis or RabbitMQ never take each other's messages.
    queue_prefix: str = Field("a2a_goals", alias="QUEUE_PREFIX", pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
    worker_threads: int = Field(4, alias="WORKER_THREADS", ge=1, le=64)
    job_time_limit_s: float = Field(600, alias="JOB_TIME_LIMIT_S", gt=0, le=86_400)
    job_max_retries: int = Field(5, alias="JOB_MAX_RETRIES", ge=0, le=100)
    # How long a job sent under a key (a poll) holds it before it starts; while it runs, it
    # holds it for its time limit. Meanwhile the same key is not sent again.
    job_pending_ttl_s: float = Field(600, alias="JOB_PENDING_TTL_S", gt=0, le=86_400)
    projection_watch_s: float = Field(15, alias="PROJECTION_WATCH_S", ge=0, le=3600)
    # The metrics collector (docs/collector.md): progress is recorded when an objective moved
    # by at least this many points; due polls are looked for this often (0: never); stalls
    # are looked for this often (0: never); a fetch is retried this often after a backoff.
    auto_update_min_delta: float = Field(0.5, alias="AUTO_UPDATE_MIN_DELTA", ge=0, le=100)
    collect_sweep_s: float = Field(1.0, alias="COLLECT_SWEEP_S", ge=0, le=60)
    stagnation_check_s: float = Field(60, alias="STAGNATION_CHECK_S", ge=0, le=86_400)
    collect_retries: int = Field(2, alias="COLLECT_RETRIES", ge=0, le=10)
    collect_backoff_s: float = Field(0.2, alias="COLLECT_BACKOFF_S", ge=0, le=30)
    rate_limit_reads: str = Field("600/minute", alias="RATE_LIMIT_READS")
    rate_limit_writes: str = Field("120/minute", alias="RATE_LIMIT_WRITES")
    rate_limit_token: str = Field("30/minute", alias="RATE_LIMIT_TOKEN")
    rate_limit_search: str = Field("300/minute", alias="RATE_LIMIT_SEARCH")
    # Per caller address: bearer tokens that failed their signature check. Past it, the
    # address's tokens not verified yet are refused unchecked; garbage that needs no check
    # and valid tokens are not counted.
    rate_limit_bad_tokens: str = Field("600/minute", alias="RATE_LIMIT_BAD_TOKENS")
    rate_limit_fail_open: bool = Field(True, alias="RATE_LIMIT_FAIL_OPEN")
    # Failing fast while Redis is away: how many failures in a row to reach it mark it down
    # (requests are then let through or refused at once), and how often it is probed then.
    redis_breaker_failures: int = Field(3, alias="REDIS_BREAKER_FAILURES", ge=1, le=1000)
    redis_probe_interval_s: float = Field(0.5, alias="REDIS_PROBE_INTERVAL_S", gt=0, le=60)

    # Peers whose X-Forwarded-For names the caller (the reverse proxy in front of the API);
    # from anyone else the header is ignored. Empty: the peer itself is the caller.
    trusted_proxies: str = Field(
        "", alias="TRUSTED_PROXIES", description="comma-separated addresses or networks of reverse proxies"
    )

    # Outbound fetches (AgentCards, JWKS, peers, health and metrics, webhooks) reach public
    # addresses only, and those of these networks: a comma-separated or JSON list of CIDRs.
    outbound_allow_nets: Annotated[tuple[IPNetwork, ...], NoDecode] = Field((), alias="OUTBOUND_ALLOW_NETS")
    # The longest an outbound fetch may take, redirects and body included (connecting: 2 s at most).
    outbound_timeout_s: float = Field(5.0, alias="OUTBOUND_TIMEOUT_S", gt=0, le=60)
    outbound_max_bytes: int = Field(1_048_576, alias="OUTBOUND_MAX_BYTES", ge=1024, le=64 * 1_048_576)
    # The registry's search in Elasticsearch (its official client) instead of the read store's
    # full-text search; empty: the read store's. Indices are ELASTICSEARCH_INDEX-<stamp>, read
    # through the alias ELASTICSEARCH_INDEX.
    elasticsearch_url: str = Field("", alias="ELASTICSEARCH_URL")
    elasticsearch_index: str = Field(
        "a2a-agents", alias="ELASTICSEARCH_INDEX", pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$"
    )
    elasticsearch_timeout_s: float = Field(2.0, alias="ELASTICSEARCH_TIMEOUT_S", gt=0, le=60)

    # Webhooks: signing secrets are kept sealed under SECRETS_KEY (base64 of 32 bytes; required
    # in prod, generated into DATA_DIR otherwise). A failed delivery is tried again with
    # backoff from WEBHOOK_RETRY_FIRST_S, for at most WEBHOOK_RETRY_FOR_S and
    # WEBHOOK_MAX_ATTEMPTS; the scheduler looks for due deliveries every WEBHOOK_DISPATCH_S.
    secrets_key: SecretStr | None = Field(None, alias="SECRETS_KEY")
    # Event payloads encrypted per tenant (docs/security.md#encryption-at-rest): ENCRYPTION is
    # on by default in prod, off otherwise. MASTER_KEYS (base64 32-byte keys, comma-separated,
    # newest first) wrap the tenants' data keys: required in prod, generated into DATA_DIR
    # (mode 0600) otherwise. Never logged; errors name key ids, not keys.
    encryption: bool | None = Field(None, alias="ENCRYPTION")
    master_keys: SecretStr | None = Field(None, alias="MASTER_KEYS")
    # Every erasure, kept apart from the database so that a restored backup from before one
    # has it applied again (docs/security.md#erasure): keep it where the master keys are kept,
    # never rolled back. Unset: DATA_DIR/erasures.jsonl.
    erasure_register: Path | None = Field(None, alias="ERASURE_REGISTER")
    webhook_retry_for_s: float = Field(86_400, alias="WEBHOOK_RETRY_FOR_S", gt=0, le=30 * 86_400)
    webhook_retry_first_s: float = Field(5.0, alias="WEBHOOK_RETRY_FIRST_S", gt=0, le=3600)
    webhook_max_attempts: int = Field(30, alias="WEBHOOK_MAX_ATTEMPTS", ge=1, le=100)
    webhook_dispatch_s: float = Field(5.0, alias="WEBHOOK_DISPATCH_S", ge=0, le=3600, description="0: never")

    # The audit trail's anchors (docs/audit.md#anchors): the log's Merkle root written to the
    # AuditAnchor contract every ANCHOR_EVERY_EVENTS leaves or ANCHOR_EVERY_SECONDS, whichever
    # first (looked at every ANCHOR_CHECK_S), confirmed after CONFIRMATIONS blocks, sent again
    # when not mined after ANCHOR_RESEND_S. A2A_RPC_URL names the node (JSON-RPC over http);
    # unset, an in-process chain is used (dev only: worth nothing outside the process).
    # A2A_PRIVATE_KEY signs the transactions (required with A2A_RPC_URL in prod; never logged).
    anchoring: bool = Field(True, alias="ANCHORING")
    rpc_url: str = Field("", alias="A2A_RPC_URL")
    private_key: SecretStr | None = Field(None, alias="A2A_PRIVATE_KEY")
    contract_address: str = Field("", alias="A2A_CONTRACT_ADDRESS", pattern=r"^(0x[0-9a-fA-F]{40})?$")
    anchor_every_events: int = Field(1000, alias="ANCHOR_EVERY_EVENTS", ge=1, le=100_000_000)
    anchor_every_seconds: float = Field(60, alias="ANCHOR_EVERY_SECONDS", gt=0, le=7 * 86_400)
    anchor_check_s: float = Field(5, alias="ANCHOR_CHECK_S", ge=0, le=3600, description="0: never")
    anchor_resend_s: float = Field(120, alias="ANCHOR_RESEND_S", gt=0, le=86_400)
    confirmations: int = Field(1, alias="CONFIRMATIONS", ge=1, le=1000)
    chain_timeout_s: float = Field(5, alias="CHAIN_TIMEOUT_S", gt=0, le=60)

    # Retention of read-side detail (docs/security.md#retention): event facts, their hourly
    # rollup and finished webhook deliveries older than RETENTION_DAYS are pruned every
    # RETENTION_CHECK_S, RETENTION_BATCH rows per transaction; the event log is kept.
    # RETENTION_DAYS_BY_TENANT overrides it per tenant (`tenant=days,other=0`; 0: kept for ever).
    retention_days: int = Field(0, alias="RETENTION_DAYS", ge=0, le=36_500, description="0: kept for ever")
    retention_days_by_tenant: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict, alias="RETENTION_DAYS_BY_TENANT"
    )
    retention_check_s: float = Field(3600, alias="RETENTION_CHECK_S", ge=0, le=86_400, description="0: never")
    retention_batch: int = Field(5000, alias="RETENTION_BATCH", ge=1, le=100_000)

    cors_origins: str = Field("", alias="CORS_ORIGINS", description="comma-separated allowed origins")
    cors_allow_credentials: bool = Field(False, alias="CORS_ALLOW_CREDENTIALS")

    @field_validator(
        "rate_limit_reads", "rate_limit_writes", "rate_limit_token", "rate_limit_search", "rate_limit_bad_tokens"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        Rate.parse(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        return rules.trusted_proxies(value)

    @field_validator("retention_days_by_tenant", mode="before")
    @classmethod
    def _retention_by_tenant(cls, value: Any) -> dict[str, int]:
        return rules.retention_by_tenant(value)

    @field_validator("erasure_register", mode="before")
    @classmethod
    def _erasure_register(cls, value: Any) -> Any:
        """Empty is unset (not the working directory); a directory is refused at start."""
        if isinstance(value, str) and not value.strip():
            return None
        if value is not None and Path(value).is_dir():
            raise ValueError("ERASURE_REGISTER names a directory: name the file (e.g. DIR/erasures.jsonl)")
        return value

    @field_validator("outbound_allow_nets", mode="before")
    @classmethod
    def _outbound_nets(cls, value: Any) -> tuple[IPNetwork, ...]:
        return rules.outbound_nets(value)

    def chain_key(self) -> str:
        """The key anchors are signed with: A2A_PRIVATE_KEY, or in dev the first funded account
        of a local anvil node (a published key: refused in prod)."""
        if self.private_key is not None and self.private_key.get_secret_value().strip():
            return self.private_key.get_secret_value().strip()
        return ANVIL_DEV_KEY

    @property
    def poll_worst_case_s(self) -> float:
        """The longest one poll can take: both endpoints, each tried 1 + COLLECT_RETRIES
        times for up to OUTBOUND_TIMEOUT_S, with the largest jittered backoffs between."""
        backoffs = sum(self.collect_backoff_s * (1 << attempt) * 1.5 for attempt in range(self.collect_retries))
        return 2 * ((self.collect_retries + 1) * self.outbound_timeout_s + backoffs)

    @model_validator(mode="after")
    def _refuse_a_poll_past_its_time_limit(self) -> Settings:
        if self.poll_worst_case_s > POLL_TIME_LIMIT_S:
            raise ValueError(
                f"COLLECT_RETRIES={self.collect_retries}, OUTBOUND_TIMEOUT_S={self.outbound_timeout_s:g} and"
                f" COLLECT_BACKOFF_S={self.collect_backoff_s:g} let one poll of two endpoints take up to"
                f" {self.poll_worst_case_s:.1f} s, past its time limit of {POLL_TIME_LIMIT_S} s: lower"
                " COLLECT_RETRIES or OUTBOUND_TIMEOUT_S (2 x (1 + retries) x timeout + backoffs must fit)"
            )
        return self

    @model_validator(mode="after")
    def _seed_token_settings(self) -> Settings:
        if self.secret_key is not None or (self.algorithm or "").upper().startswith("HS"):
            raise ValueError(
                "SECRET_KEY/ALGORITHM=HS256 (a shared secret that signs tokens) is not supported: tokens"
                " are signed with ES256 private keys and checked with their public keys (JWKS). Unset"
                " SECRET_KEY and ALGORITHM; set SIGNING_KEYS (PEM EC P-256 private keys, required in"
                " prod, generated into DATA_DIR otherwise) and JWT_ALGORITHMS=ES256"
            )
        if self.algorithm is not None and self.algorithm not in self.algorithm_list:
            raise ValueError(f"ALGORITHM={self.algorithm} is not in JWT_ALGORITHMS ({self.jwt_algorithms})")
        minutes = self.access_token_expire_minutes
        if minutes is not None:
            if "token_ttl_s" in self.model_fields_set and self.token_ttl_s != minutes * 60:
                raise ValueError(
                    f"ACCESS_TOKEN_EXPIRE_MINUTES={minutes} and TOKEN_TTL_S={self.token_ttl_s} disagree: set one"
                )
            self.token_ttl_s = minutes * 60
        return self

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.external_jwks_url and not self.external_issuer:
            raise ValueError("EXTERNAL_JWKS_URL needs EXTERNAL_ISSUER (the `iss` its tokens carry)")
        if "*" in self.cors_origin_list and self.cors_allow_credentials:
            raise ValueError("CORS_ORIGINS=* cannot be combined with CORS_ALLOW_CREDENTIALS")
        if self.env == "prod":
            rules.refuse_insecure_production(self)
        if self.secrets_key is not None and self.secrets_key.get_secret_value().strip():
            parse_key(self.secrets_key.get_secret_value())
        if self.master_keys is not None and self.master_keys.get_secret_value().strip():
            MasterKeys.parse(self.master_keys.get_secret_value())
        if self.private_key is not None and not CHAIN_KEY.match(self.private_key.get_secret_value().strip()):
            raise ValueError("A2A_PRIVATE_KEY must be 64 hex digits (0x optional); its value is not shown")
        if self.rpc_url and urlsplit(self.rpc_url).scheme not in {"http", "https"}:
            raise ValueError("A2A_RPC_URL must be an http:// or https:// URL (or unset for an in-process chain)")
        if self.elasticsearch_url and urlsplit(self.elasticsearch_url).scheme not in {"http", "https"}:
            raise ValueError("ELASTICSEARCH_URL must be an http:// or https:// URL (or unset)")
        if self.database_url and not self.is_postgres:
            raise ValueError("DATABASE_URL must be a postgresql:// URL (or unset for SQLite)")
        if self.broker_url and urlsplit(self.broker_url).scheme not in BROKER_SCHEMES:
            raise ValueError("BROKER_URL must be a redis:// or amqp:// URL (or unset for in-process jobs)")
        if self.broker_kind == "rabbitmq" and not self.redis_url:
            raise ValueError(
                "BROKER_URL=amqp:// needs REDIS_URL: the keys that keep a job from being sent twice"
                " are held in Redis"
            )
        return self

    @property
    def broker_kind(self) -> Literal["stub", "redis", "rabbitmq"]:
        """Where jobs are queued: in this process's memory, on Redis or on RabbitMQ."""
        scheme = urlsplit(self.broker_url).scheme
        if not scheme:
            return "stub"
        return "rabbitmq" if scheme.startswith("amqp") else "redis"

    @property
    def job_keys_url(self) -> str:
        """The Redis that holds job keys and rebuild states: the broker's when it is Redis,
        else REDIS_URL; empty for in-process jobs."""
        if self.broker_kind == "redis":
            return self.broker_url
        return self.redis_url if self.broker_kind == "rabbitmq" else ""

    @property
    def log_format(self) -> Literal["json", "text"]:
        if self.log_format_choice is not None:
            return self.log_format_choice
        return "json" if self.env == "prod" else "text"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    @property
    def algorithm_list(self) -> list[str]:
        return [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]

    @property
    def external_algorithm_list(self) -> list[str]:
        return [a.strip() for a in self.external_algorithms.split(",") if a.strip()]

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "signing-keys.json"

    @property
    def secrets_key_path(self) -> Path:
        return self.data_dir / "secrets-key"

    @property
    def erasure_register_path(self) -> Path:
        return self.erasure_register or self.data_dir / "erasures.jsonl"

    @property
    def master_keys_path(self) -> Path:
        return self.data_dir / "master-keys"

    @property
    def encryption_on(self) -> bool:
        return self.encryption if self.encryption is not None else self.env == "prod"

    @property
    def is_postgres(self) -> bool:
        return urlsplit(self.database_url).scheme in {"postgres", "postgresql"}

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events.sqlite"

    @property
    def read_models_path(self) -> Path:
        return self.data_dir / "read_models.sqlite"

    def redacted_database_url(self) -> str:
        if not self.database_url:
            return f"sqlite:{self.events_path}"
        parts = urlsplit(self.database_url)
        netloc = parts.netloc
        if parts.password:
            netloc = netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
