#!/usr/bin/env bash
# The services of the cluster profile (PostgreSQL and Redis) on one machine, for CI and for trying
# the profile on a laptop. Never binds anything but 127.0.0.1.
#
#   scripts/ci_services.sh install       apt-get install postgresql + redis-server when missing (root)
#   scripts/ci_services.sh start DIR     a throw-away PostgreSQL cluster and Redis under DIR on free
#                                        ports; writes DIR/services.env (export lines, see below)
#   scripts/ci_services.sh stop DIR      stops both and leaves DIR to delete
#
# services.env exports MLOPS_PG_DSN (libpq key=value), MLOPS_PG_URL (postgresql://), MLOPS_PG_HOST,
# MLOPS_PG_PORT, MLOPS_PG_USER, MLOPS_PG_PASSWORD and MLOPS_REDIS_URL; the databases `dagster`,
# `mlflow` and `ducklake` exist. The cluster tests (mlops_assets_tests/cluster/) call start/stop
# themselves: CI only needs `install`.
set -euo pipefail

pg_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

free_port() {  # below the ephemeral range, as mlops_assets/devtools/ports.py (no client connection takes it)
  python3 - <<'PY'
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
for port in random.sample(range(10000, low), 50) if low > 11000 else []:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
else:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
PY
}

# PostgreSQL refuses to run as root: as root, run its binaries as the `postgres` user.
as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd_install() {
  local missing=()
  pg_bindir >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ci_services.sh: ${missing[*]} missing and this is not a root Debian shell: install them with your package manager" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start their own services on the default ports: the tests start private ones.
  command -v pg_ctlcluster >/dev/null 2>&1 && { pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
    pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true; done; }
  command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 shutdown nosave >/dev/null 2>&1 || true
}

cmd_start() {
  local dir="$1" bindir pg_port redis_port password="mlops-ci"
  bindir="$(pg_bindir)" || { echo "ci_services.sh: PostgreSQL binaries not found (run: $0 install)" >&2; return 1; }
  command -v redis-server >/dev/null 2>&1 || { echo "ci_services.sh: redis-server not found (run: $0 install)" >&2; return 1; }
  mkdir -p "$dir/redis"
  dir="$(cd "$dir" && pwd)"
  # The server runs as `postgres` when we are root, and pytest's temp dirs are private to root:
  # the cluster then lives in its own /tmp folder, recorded in DIR/pg.path for `stop`.
  local pgdir="$dir/pg"
  if [ "$(id -u)" = "0" ]; then
    pgdir="$(mktemp -d /tmp/mlops-pg.XXXXXX)"
    chown postgres: "$pgdir"
  else
    mkdir -p "$pgdir"
  fi
  echo "$pgdir" > "$dir/pg.path"
  pg_port="$(free_port)"
  redis_port="$(free_port)"
  as_pg sh -c "printf '%s\n' '$password' > '$pgdir/.pwfile'"
  as_pg "$bindir/initdb" -D "$pgdir/data" -U mlops --pwfile="$pgdir/.pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  as_pg "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pgdir -c max_connections=200 -c fsync=off" \
    start >/dev/null || { cat "$pgdir/server.log" >&2; return 1; }
  for db in dagster mlflow ducklake; do
    as_pg "$bindir/psql" -q -h "$pgdir" -p "$pg_port" -U mlops -d postgres -c "CREATE DATABASE $db" >/dev/null
  done
  redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize yes --save '' --appendonly no \
    --dir "$dir/redis" --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log"
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  cat > "$dir/services.env" <<EOF
export MLOPS_PG_HOST=127.0.0.1
export MLOPS_PG_PORT=$pg_port
export MLOPS_PG_USER=mlops
export MLOPS_PG_PASSWORD=$password
export MLOPS_PG_DSN='host=127.0.0.1 port=$pg_port user=mlops password=$password'
export MLOPS_PG_URL=postgresql://mlops:$password@127.0.0.1:$pg_port
export MLOPS_REDIS_URL=redis://127.0.0.1:$redis_port/0
EOF
  echo "$dir/services.env"
}

cmd_stop() {
  local dir="$1" bindir pgdir
  if [ -f "$dir/redis/redis.pid" ]; then kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true; fi
  pgdir="$(cat "$dir/pg.path" 2>/dev/null || echo "$dir/pg")"
  if bindir="$(pg_bindir)" && [ -f "$pgdir/data/postmaster.pid" ]; then
    as_pg "$bindir/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  case "$pgdir" in /tmp/mlops-pg.*) rm -rf "$pgdir" ;; esac
}

case "${1:-}" in
  install) cmd_install ;;
  start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; cmd_start "$2" ;;
  stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; cmd_stop "$2" ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
