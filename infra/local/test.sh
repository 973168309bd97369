#!/usr/bin/env bash
# `make test`: every test, against the real PostgreSQL and a real Kafka-protocol broker.
# Uses KAIP_TEST_KAFKA_BROKERS when set; otherwise starts a local Tansu for the run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$KAIP_ROOT"

require_postgres "${KAIP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"

use_test_broker

# graphql-js for the schema test (.ci/run installs it too); nothing downloads during the run.
if [ ! -f gateway/tests/graphql-js/node_modules/graphql/package.json ] && command -v npm >/dev/null 2>&1; then
  (cd gateway/tests/graphql-js && npm ci --no-audit --no-fund --silent)
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest not found; running cargo test (slower: one test binary at a time)"
  cargo test --workspace --no-fail-fast "$@"
fi
