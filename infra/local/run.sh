#!/usr/bin/env bash
# `make run`: the whole platform on local defaults. Builds, starts a broker (unless
# KAIP_KAFKA__BROKERS points at one), creates the databases (each service does, at start),
# starts the six services and the gateway, and prints the console URL and a development
# token per role. Ctrl-C stops everything it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$KAIP_ROOT"

require_postgres "${KAIP_DATABASE__URL:-postgres://postgres@127.0.0.1:5432}"

echo "==> building (the first build takes a few minutes)"
cargo build --bins

base=${KAIP_RUN_BASE_PORT:-8080}
services=(intake scoring gpu-ledger data-budget talent milestones)
for i in $(seq 0 6); do
  port=$((base + i))
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: stop what holds it, or set KAIP_RUN_BASE_PORT (ports BASE..BASE+6)" >&2
    exit 1
  fi
done

mkdir -p "$KAIP_STATE/logs"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Each process drains and flushes; give them 30 s, then stop whatever is left.
  for _ in $(seq 1 60); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "process $pid did not stop in 30 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  bash infra/local/broker.sh stop "$KAIP_STATE/broker"
  echo "stopped"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# Development mode: the processes accept the public development secret (HS256) that
# `kaip-dev-token` signs with. Without it they refuse to start, as a deployment must.
export KAIP_AUTH__DEV_MODE=true

brokers=$(ensure_broker "$KAIP_STATE/broker")
export KAIP_KAFKA__BROKERS="$brokers"
# One local broker: cap the topics' counts (production leaves both unset: infra/topics.yaml's).
export KAIP_KAFKA__REPLICATION_FACTOR="${KAIP_KAFKA__REPLICATION_FACTOR:-1}"
export KAIP_KAFKA__PARTITIONS="${KAIP_KAFKA__PARTITIONS:-3}"
echo "==> broker at $brokers"

declare -A url
for i in "${!services[@]}"; do
  svc=${services[$i]}
  port=$((base + 1 + i))
  url[$svc]="http://127.0.0.1:$port"
  KAIP_SERVER__PORT=$port "target/debug/kaip-$svc" >"$KAIP_STATE/logs/$svc.log" 2>&1 &
  pids+=($!)
  echo "    $svc on :$port (log: .run/logs/$svc.log)"
done

KAIP_SERVER__PORT=$base \
KAIP_SERVICES__INTAKE=${url[intake]} \
KAIP_SERVICES__SCORING=${url[scoring]} \
KAIP_SERVICES__GPU_LEDGER=${url[gpu-ledger]} \
KAIP_SERVICES__DATA_BUDGET=${url[data-budget]} \
KAIP_SERVICES__TALENT=${url[talent]} \
KAIP_SERVICES__MILESTONES=${url[milestones]} \
  target/debug/kaip-gateway >"$KAIP_STATE/logs/gateway.log" 2>&1 &
pids+=($!)

echo "==> waiting for every service to be ready"
ready=""
for _ in $(seq 1 240); do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "a process exited during start-up; the end of each log:" >&2
      tail -n 5 "$KAIP_STATE"/logs/*.log >&2
      exit 1
    fi
  done
  if http_ok "http://127.0.0.1:$base/health/ready"; then ready=1; break; fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "the platform did not become ready in 2 minutes; see .run/logs/" >&2
  python3 -c 'import sys,urllib.request
try: urllib.request.urlopen(sys.argv[1], timeout=5)
except Exception as e: print(getattr(e, "read", lambda: str(e).encode())().decode())' "http://127.0.0.1:$base/health/ready" >&2 || true
  exit 1
fi

cat <<MSG

K-AIP is up.

  GraphQL console:  http://127.0.0.1:$base/
  GraphQL endpoint: http://127.0.0.1:$base/graphql   (WebSocket subscriptions on the same path)
  Schema (SDL):     http://127.0.0.1:$base/schema.graphql

Development tokens (valid 7 days; paste one into the console's Token field):
MSG
target/debug/kaip-dev-token --all | sed 's/^/  /'
echo
echo "Logs in .run/logs/. Press Ctrl-C to stop everything."
set +e
wait -n "${pids[@]}"
status=$?
set -e
# A Ctrl-C reaches the services and this script together; give its trap a moment to run.
sleep 1
# Above 128 the wait was interrupted by Ctrl-C (the trap stops everything); otherwise a
# process ended on its own, which is worth saying.
if [ "$status" -lt 128 ]; then
  echo "a process exited (status $status); see .run/logs/" >&2
fi
