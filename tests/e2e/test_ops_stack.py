"""docker-compose.yml and .env.example: the stack validates with every setting filled in,
refuses to start while a secret is empty, and is shaped as docs/operations.md says (health
checks, limits, named volumes, nginx the only trusted proxy, internal services unpublished)."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infrastructure.settings import Settings
from tests.e2e.ops_tools import ROOT, run, tool

LONG_RUNNING = {
    "postgres", "redis", "elasticsearch", "anvil", "api", "projector", "worker", "scheduler",
    "nginx", "prometheus", "grafana",
}  # fmt: skip
SECRETS = {
    "POSTGRES_PASSWORD", "REDIS_PASSWORD", "ELASTIC_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
    "GRAFANA_DB_PASSWORD", "SECRETS_KEY", "MASTER_KEYS", "SIGNING_KEYS", "ANVIL_MNEMONIC", "A2A_PRIVATE_KEY",
}  # fmt: skip
# Read by the anchoring settings being added alongside (A2A_RPC_URL, A2A_PRIVATE_KEY).
ANCHORING = {"A2A_RPC_URL", "A2A_PRIVATE_KEY"}


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def compose_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))


def project(tmp_path: Path, env: dict[str, str]) -> Path:
    """A copy of the stack's files with `env` as its .env (docker-compose reads ./.env)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "ops", tmp_path / "ops", ignore=shutil.ignore_patterns("__pycache__", "bench"))
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items() if k != "SIGNING_KEYS"))
    return tmp_path


def compose(directory: Path, *args: str, signing_keys: str = "") -> subprocess.CompletedProcess[str]:
    # Only what a shell would pass: the PEM key cannot live in .env (it spans lines).
    env = {"PATH": os.environ["PATH"], "HOME": str(directory), "SIGNING_KEYS": signing_keys}
    return run([tool("docker-compose"), *args], cwd=directory, env=env)


def filled(tmp_path: Path) -> dict[str, str]:
    env = env_example()
    for name in SECRETS:
        env[name] = f"test-{name.lower()}-value"
    env["TLS_CERT_DIR"] = str(tmp_path / "tls")
    return env


def port(entry: str | dict[str, Any]) -> tuple[str | None, int]:
    """(host address or None, container port) of a published port, short or long syntax."""
    if isinstance(entry, dict):
        return entry.get("host_ip"), int(entry["target"])
    parts = entry.split("/")[0].split(":")
    return (parts[0] if len(parts) == 3 else None), int(parts[-1])


def named_volumes(service: dict[str, Any]) -> set[str]:
    sources = (v["source"] if isinstance(v, dict) else v.split(":")[0] for v in service.get("volumes", []))
    return {source for source in sources if "/" not in source}


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    """The stack as docker-compose resolves it from .env.example with every secret filled in."""
    directory = project(tmp_path, filled(tmp_path))
    assert compose(directory, "config", "-q", signing_keys="-----BEGIN EC PRIVATE KEY-----").returncode == 0
    done = compose(directory, "config", signing_keys="-----BEGIN EC PRIVATE KEY-----")
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def test_the_stack_validates_with_env_example_filled_in(tmp_path: Path) -> None:
    directory = project(tmp_path, filled(tmp_path))
    done = compose(directory, "config", "-q", signing_keys="-----BEGIN EC PRIVATE KEY-----")
    assert done.returncode == 0, done.stderr


def test_the_stack_refuses_to_start_with_a_secret_left_empty(tmp_path: Path) -> None:
    as_shipped = compose(project(tmp_path / "shipped", env_example()), "config", "-q")
    assert as_shipped.returncode != 0
    assert re.search(r"set [A-Z_]+", as_shipped.stderr), as_shipped.stderr
    for name in sorted(SECRETS - {"SIGNING_KEYS"}):
        env = {**filled(tmp_path), name: ""}
        done = compose(project(tmp_path / name, env), "config", "-q", signing_keys="key")
        assert done.returncode != 0 and f"set {name}" in done.stderr, (name, done.stderr)
    no_key = compose(project(tmp_path / "no-key", filled(tmp_path)), "config", "-q")
    assert no_key.returncode != 0 and "set SIGNING_KEYS" in no_key.stderr


def test_no_secret_has_a_value_in_env_example() -> None:
    env = env_example()
    assert set(env) >= SECRETS
    assert {name: env[name] for name in SECRETS if env[name]} == {}


def test_env_example_lists_every_variable_the_stack_reads() -> None:
    env = set(env_example())
    assert compose_variables() - env == set(), "read by docker-compose.yml, missing from .env.example"
    settings = {field.alias for field in Settings.model_fields.values() if field.alias}
    assert env - compose_variables() - settings == set(), ".env.example names something nothing reads"


def test_the_app_settings_the_stack_sets_are_settings_of_the_app(config: dict[str, Any]) -> None:
    settings = {field.alias for field in Settings.model_fields.values() if field.alias}
    for name in ("api", "projector", "worker", "scheduler"):
        unknown = set(config["services"][name]["environment"]) - settings - ANCHORING
        assert unknown == set(), (name, unknown)
    api = config["services"]["api"]["environment"]
    assert api["APP_ENV"] == "prod" and api["RUN_PROJECTIONS_IN_PROCESS"] == "false"
    assert api["A2A_RPC_URL"] == "http://anvil:8545"


def test_every_long_running_service_has_a_health_check_and_limits(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) == LONG_RUNNING
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("mem_limit") and service.get("cpus"), f"{name} has no resource limits"
        assert service.get("restart") == "unless-stopped", name


def test_state_lives_in_named_volumes(config: dict[str, Any]) -> None:
    wanted = {"postgres": "pgdata", "redis": "redisdata", "elasticsearch": "esdata", "anvil": "anvilstate",
              "prometheus": "prometheusdata", "grafana": "grafanadata"}  # fmt: skip
    assert set(config["volumes"]) == {*wanted.values(), "erasures"}
    for service, volume in wanted.items():
        assert volume in named_volumes(config["services"][service]), service
    for service in ("api", "projector", "worker", "scheduler"):  # the erasure register, wherever erased
        assert "erasures" in named_volumes(config["services"][service]), service
        assert config["services"][service]["environment"]["ERASURE_REGISTER"].startswith("/app/erasures/")


def test_only_nginx_is_trusted_and_only_the_edge_is_public(config: dict[str, Any]) -> None:
    services = config["services"]
    nginx_address = services["nginx"]["networks"]["default"]["ipv4_address"]
    assert services["api"]["environment"]["TRUSTED_PROXIES"] == nginx_address
    ipam = config["networks"]["default"]["ipam"]["config"][0]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(ipam["subnet"])
    # no other container can be given nginx's address
    assert ipaddress.ip_address(nginx_address) not in ipaddress.ip_network(ipam["ip_range"])
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert set(published) == {"nginx", "prometheus", "grafana"}
    assert {port(p)[1] for p in published["nginx"]} == {80, 443}
    for name in ("prometheus", "grafana"):
        assert all(port(p)[0] == "127.0.0.1" for p in published[name]), name


def test_elasticsearch_runs_one_node_with_security_on(config: dict[str, Any]) -> None:
    service = config["services"]["elasticsearch"]
    assert service["image"].split(":")[-1].startswith("9.")
    env = service["environment"]
    assert env["discovery.type"] == "single-node" and env["xpack.security.enabled"] == "true"
    assert env["ELASTIC_PASSWORD"] == "test-elastic_password-value"
    api = config["services"]["api"]["environment"]
    assert api["ELASTICSEARCH_URL"] == "http://elastic:test-elastic_password-value@elasticsearch:9200"
