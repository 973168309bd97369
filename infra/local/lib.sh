# Shared by run.sh, test.sh and bench.sh. Source it; do not run it.

KAIP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KAIP_STATE="$KAIP_ROOT/.run"

# Says exactly what to do when no PostgreSQL answers.
require_postgres() {
  local url=${1:-postgres://postgres@127.0.0.1:5432}
  local hostport=${url#*@}
  hostport=${hostport%%/*}
  hostport=${hostport%%\?*}
  local host=${hostport%%:*} port=${hostport##*:}
  [ "$host" = "$hostport" ] && port=5432
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    return 0
  fi
  cat >&2 <<MSG
PostgreSQL does not answer at $host:$port.

  On this machine, start the local server:
      pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start
  (or install one: apt-get install postgresql, then the command above).

  Or point K-AIP at another server (it needs CREATEDB to create its databases):
      export KAIP_DATABASE__URL=postgres://user:password@host:5432
MSG
  return 1
}

# Prints host:port of a usable broker: KAIP_KAFKA__BROKERS if set, else a local Tansu
# started in $1 (a state directory).
ensure_broker() {
  local dir=$1
  if [ -n "${KAIP_KAFKA__BROKERS:-}" ]; then
    echo "$KAIP_KAFKA__BROKERS"
  else
    bash "$KAIP_ROOT/infra/local/broker.sh" start "$dir"
  fi
}

# True when GET $1 answers 2xx.
http_ok() {
  python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' "$1" >/dev/null 2>&1
}

# Exports KAIP_TEST_KAFKA_BROKERS, starting a Tansu for this run (stopped on exit) when it is
# not set already.
use_test_broker() {
  if [ -n "${KAIP_TEST_KAFKA_BROKERS:-}" ]; then return 0; fi
  KAIP_TEST_BROKER_DIR="$KAIP_STATE/test-broker-$$"
  KAIP_TEST_KAFKA_BROKERS=$(bash "$KAIP_ROOT/infra/local/broker.sh" start "$KAIP_TEST_BROKER_DIR")
  export KAIP_TEST_KAFKA_BROKERS
  trap 'bash "$KAIP_ROOT/infra/local/broker.sh" stop "$KAIP_TEST_BROKER_DIR"; rm -rf "$KAIP_TEST_BROKER_DIR"' EXIT
  echo "test broker: Tansu at $KAIP_TEST_KAFKA_BROKERS"
}
