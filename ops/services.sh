# shellcheck shell=bash
# PostgreSQL, Redis, RabbitMQ and an EVM node for the test suite; sourced by ops/test after
# ops/lib.sh. use_postgres / use_redis / use_rabbitmq export TEST_DATABASE_URL / TEST_REDIS_URL /
# TEST_BROKER_AMQP_URL, preferring:
#   1. the URL already in the environment,
#   2. a server already running on the standard port (skipped with OPS_TEST_PRIVATE_SERVICES=1),
#   3. a private throwaway server under .cache/, stopped and deleted on exit.
# use_anvil exports TEST_RPC_URL: the URL in the environment, else a private anvil (never one
# already running: tests rely on a fresh chain's funded accounts).

# Cleanup commands, run last-in-first-out by the EXIT trap that ops/test installs.
CLEANUP=()
cleanup() {
  local i
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" >/dev/null 2>&1 || true; done
}

# Never show passwords: user:secret@ and ?password=secret become ***.
mask() { sed -E 's#^([^:/]+://[^:/@]*):[^@/]*@#\1:***@#; s#([?&]password=)[^&]*#\1***#' <<<"$1"; }

# Root installs packages directly, anyone else through sudo.
as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# First free TCP port on 127.0.0.1 from $1 up, so a leftover or parallel run can't clash.
free_port() {
  .venv/bin/python - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1])
while True:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            break
        except OSError:
            port += 1
print(port)
PY
}

# Can we log in and run a query? psql if installed, else psycopg from the venv.
pg_ok() {
  if command -v psql >/dev/null; then
    PGCONNECT_TIMEOUT=3 psql -w -Atq -c 'select 1' "$1" >/dev/null 2>&1
  else
    .venv/bin/python -c 'import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=3).close()' "$1" 2>/dev/null
  fi
}

# Does a Redis answer PING on host $1 port $2? (plain socket, no redis-cli needed)
redis_ok() {
  .venv/bin/python -c 'import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
s.sendall(b"PING\r\n")
sys.exit(not s.recv(64).startswith(b"+PONG"))' "$1" "$2" 2>/dev/null
}

# --- PostgreSQL --------------------------------------------------------------

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
# PostgreSQL refuses to run as root, so root runs it as the postgres system user.
as_pg() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }

use_postgres() {
  local user url
  if [[ -n ${TEST_DATABASE_URL:-} ]]; then PG_SOURCE="from TEST_DATABASE_URL"; return; fi
  # Local servers here use trust auth; the superuser is postgres or root depending on setup.
  if [[ ${OPS_TEST_PRIVATE_SERVICES:-0} != 1 ]]; then
    for user in postgres root; do
      url="postgresql://$user@127.0.0.1:5432/postgres"
      if pg_ok "$url"; then export TEST_DATABASE_URL=$url; PG_SOURCE="already running"; return; fi
    done
  fi
  start_private_pg
}

start_private_pg() {
  local bin dir port
  [[ -n $(pg_bindir) ]] || apt_install postgresql
  bin=$(pg_bindir)
  if ((EUID == 0)) && ! id -u postgres >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
  fi
  # A fresh cluster per run: no stale state, and parallel runs don't collide.
  mkdir -p .cache/pg
  dir=$(mktemp -d "$ROOT/.cache/pg/run.XXXXXX")
  CLEANUP+=("rm -rf '$dir'")
  if ((EUID == 0)); then chown postgres: "$dir"; fi
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >/dev/null
  port=$(free_port 54329)
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -s start \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
  CLEANUP+=("as_pg '$bin/pg_ctl' -D '$dir/data' -m fast -w -s stop")
  export TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  PG_SOURCE="private, $($bin/postgres --version | awk '{print $3}'), stopped on exit"
}

# --- Redis -------------------------------------------------------------------

use_redis() {
  if [[ -n ${TEST_REDIS_URL:-} ]]; then REDIS_SOURCE="from TEST_REDIS_URL"; return; fi
  if [[ ${OPS_TEST_PRIVATE_SERVICES:-0} != 1 ]] && redis_ok 127.0.0.1 6379; then
    export TEST_REDIS_URL=redis://127.0.0.1:6379/0; REDIS_SOURCE="already running"; return
  fi
  start_private_redis
}

start_private_redis() {
  local dir port i
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p .cache/redis
  dir=$(mktemp -d "$ROOT/.cache/redis/run.XXXXXX")
  CLEANUP+=("rm -rf '$dir'")
  port=$(free_port 63799)
  # In-memory only: nothing to persist for tests.
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  CLEANUP+=("kill \$(cat '$dir/redis.pid')")
  for ((i = 0; i < 50; i++)); do redis_ok 127.0.0.1 "$port" && break; sleep 0.1; done
  redis_ok 127.0.0.1 "$port" || { cat "$dir/redis.log" >&2; return 1; }
  export TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  REDIS_SOURCE="private, $(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2), stopped on exit"
}

# --- RabbitMQ ----------------------------------------------------------------

# Does a RabbitMQ at this amqp:// URL accept the login? (pika from the venv)
amqp_ok() {
  .venv/bin/python -c 'import sys, pika
params = pika.URLParameters(sys.argv[1])
params.socket_timeout = params.blocked_connection_timeout = 3
params.connection_attempts = 1
pika.BlockingConnection(params).close()' "$1" 2>/dev/null
}

use_rabbitmq() {
  local url=amqp://guest:guest@127.0.0.1:5672/
  if [[ -n ${TEST_BROKER_AMQP_URL:-} ]]; then RABBITMQ_SOURCE="from TEST_BROKER_AMQP_URL"; return; fi
  if [[ ${OPS_TEST_PRIVATE_SERVICES:-0} != 1 ]] && amqp_ok "$url"; then
    export TEST_BROKER_AMQP_URL=$url; RABBITMQ_SOURCE="already running"; return
  fi
  start_private_rabbitmq
}

start_private_rabbitmq() {
  local dir port dist i pid
  local bin=/usr/lib/rabbitmq/bin/rabbitmq-server
  [[ -x $bin ]] || apt_install rabbitmq-server
  mkdir -p .cache/rabbitmq
  dir=$(mktemp -d "$ROOT/.cache/rabbitmq/run.XXXXXX")
  CLEANUP+=("rm -rf '$dir'")
  port=$(free_port 56729)
  dist=$(free_port $((port + 1)))
  # A node of its own: its name, ports, files, no plugins, and none of /etc/rabbitmq's
  # settings (the machine's node may be running); its Erlang cookie goes to HOME.
  : >"$dir/rabbitmq-env.conf"
  echo '[].' >"$dir/enabled_plugins"
  # RabbitMQ refuses to run as root, so root runs it as the package's rabbitmq user.
  if ((EUID == 0)); then chown -R rabbitmq: "$dir"; fi
  as_rabbitmq env HOME="$dir" RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_NODENAME="a2a-test-$port@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/pid" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" "$bin" >"$dir/server.log" 2>&1 &
  pid=$!
  # SIGTERM to the Erlang VM (its pid file) stops the node; the launcher's pid if it never wrote one.
  CLEANUP+=("kill \$(cat '$dir/pid' 2>/dev/null || echo $pid); sleep 2")
  for ((i = 0; i < 120; i++)); do amqp_ok "amqp://guest:guest@127.0.0.1:$port/" && break; sleep 0.5; done
  amqp_ok "amqp://guest:guest@127.0.0.1:$port/" || { cat "$dir/server.log" >&2; return 1; }
  export TEST_BROKER_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/"
  RABBITMQ_SOURCE="private, node a2a-test-$port, stopped on exit"
}

as_rabbitmq() { if ((EUID == 0)); then runuser -u rabbitmq -- "$@"; else "$@"; fi; }

# --- anvil (EVM chain) -------------------------------------------------------

# The pinned npm packages of ops/chain (anvil, solc): installed from package-lock.json when
# node_modules is missing or older than the lockfile, which a checkout or pull may have changed.
ensure_chain_packages() {
  local dir=ops/chain
  if [[ -x $dir/node_modules/.bin/anvil && $dir/node_modules/.package-lock.json -nt $dir/package-lock.json ]]; then
    return
  fi
  command -v npm >/dev/null || apt_install nodejs npm
  (cd "$dir" && npm ci --silent --no-audit --no-fund)
}

# Hosted nodes carry their API key in the path (/v3/KEY): show scheme, host and port only.
mask_rpc() { mask "$(sed -E 's#^([^:/]+://[^/?]+)[/?].+$#\1/***#' <<<"$1")"; }

# Does a JSON-RPC node at URL $1 answer eth_chainId?
rpc_ok() {
  .venv/bin/python -c 'import json, sys, urllib.request
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
request = urllib.request.Request(sys.argv[1], body, {"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=2) as answer:
    sys.exit("result" not in json.load(answer))' "$1" 2>/dev/null
}

use_anvil() {
  ensure_chain_packages
  if [[ -n ${TEST_RPC_URL:-} ]]; then ANVIL_SOURCE="from TEST_RPC_URL"; return; fi
  start_private_anvil
}

start_private_anvil() {
  local dir port pid i
  local bin=ops/chain/node_modules/.bin/anvil
  mkdir -p .cache/anvil
  dir=$(mktemp -d "$ROOT/.cache/anvil/run.XXXXXX")
  CLEANUP+=("rm -rf '$dir'")
  port=$(free_port 18545)
  # In memory only; SIGTERM to the npm wrapper stops the node too.
  "$bin" --host 127.0.0.1 --port "$port" --silent >"$dir/anvil.log" 2>&1 &
  pid=$!
  CLEANUP+=("kill $pid")
  for ((i = 0; i < 100; i++)); do rpc_ok "http://127.0.0.1:$port" && break; sleep 0.1; done
  rpc_ok "http://127.0.0.1:$port" || { cat "$dir/anvil.log" >&2; return 1; }
  export TEST_RPC_URL="http://127.0.0.1:$port"
  ANVIL_SOURCE="private, anvil $("$bin" --version | awk 'NR == 1 {print $3}'), stopped on exit"
}
