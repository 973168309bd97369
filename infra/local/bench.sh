#!/usr/bin/env bash
# `make bench`: the backbone's throughput and its commit-to-inbox latency (p50/p99/max) against the real PostgreSQL and a broker
# (KAIP_TEST_KAFKA_BROKERS, or a local Tansu started for the run). Release build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$KAIP_ROOT"
require_postgres "${KAIP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
use_test_broker
# The benches mint development tokens: their processes run in development mode, as `make run`.
export KAIP_AUTH__DEV_MODE=true
cargo bench -p kaip-e2e --bench backbone
cargo bench -p kaip-e2e --bench gateway
cargo bench -p kaip-e2e --bench talent
cargo bench -p kaip-e2e --bench ledger
