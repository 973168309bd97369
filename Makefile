# K-AIP. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: run test bench lint fmt snapshots seed seed-programme seed-scores seed-ranking seed-gpu seed-data seed-talent seed-gate seed-replacement verify-decision token build mutants help

run: ## Build and start the whole platform on local defaults; prints the console URL and tokens (Ctrl-C stops it)
	@bash infra/local/run.sh

test: ## Run every test against real PostgreSQL and Kafka (starts a broker unless KAIP_TEST_KAFKA_BROKERS is set)
	@bash infra/local/test.sh

bench: ## Backbone throughput and event latency, and the gateway under 64 concurrent officers (release build)
	@bash infra/local/bench.sh

lint: ## cargo fmt --check, clippy -D warnings, and the contracts crate free of infrastructure
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@if cargo tree -p kaip-contracts -e normal | grep -qE 'diesel|rdkafka|actix|tokio'; then \
		echo "kaip-contracts must not depend on infrastructure crates"; exit 1; fi

fmt: ## Format the code
	cargo fmt --all

snapshots: ## Accept the current published contracts: GraphQL SDL, event JSON Schemas, AsyncAPI
	UPDATE_SNAPSHOTS=1 cargo test -p kaip-gateway --test api the_published_schema_matches_the_checked_in_snapshot
	UPDATE_SNAPSHOTS=1 cargo test -p kaip-contracts --test catalogue

seed: ## With `make run` up: the whole seeded programme through the gateway (15 consortia apply, both review stages, 5 selected and published, GPU offers accepted, a joint data purchase, a talent round hiring two, plans, evidence and verdicts, gate 1 published with a reallocation, a replacement call for the freed place and its award), printing each step
	@cargo run -q -p kaip-e2e --bin kaip-seed -- run

seed-programme: ## With `make run` up: only the programme, call, 15 applications and 6 reviewers, to run the review by hand in the console
	@cargo run -q -p kaip-e2e --bin kaip-seed -- programme

seed-scores: ## With `make run` up: the seeded reviewers score a stage (CALL=<id> STAGE=<n>)
	@cargo run -q -p kaip-e2e --bin kaip-seed -- scores --call $(CALL) --stage $(or $(STAGE),0)

seed-ranking: ## With `make run` up: a closed stage's ranking as scoring recorded it (CALL=<id> STAGE=<n>)
	@cargo run -q -p kaip-e2e --bin kaip-seed -- ranking --call $(CALL) --stage $(or $(STAGE),0)

seed-gpu: ## With `make run` up and CALL's selection published by hand: GPU offers to its teams, accepted (CALL=<id>)
	@test -n "$(CALL)" || { echo "usage: make seed-gpu CALL=<call id>"; exit 2; }
	@cargo run -q -p kaip-e2e --bin kaip-seed -- gpu --call $(CALL)

seed-data: ## With `make run` up and a selection published by hand: a dataset bought jointly by CALL's teams (CALL=<id>; without it, every team with a budget this year)
	@cargo run -q -p kaip-e2e --bin kaip-seed -- data $(if $(CALL),--call $(CALL))

seed-talent: ## With `make run` up and a selection published by hand: a round that hires two researchers for CALL's first team (CALL=<id>; without it, the first selected team)
	@cargo run -q -p kaip-e2e --bin kaip-seed -- talent $(if $(CALL),--call $(CALL))

seed-gate: ## With `make run` up and a selection published by hand: plans, evidence, verdicts and gate 1 through its publication for CALL's teams (CALL=<id>)
	@test -n "$(CALL)" || { echo "usage: make seed-gate CALL=<call id>"; exit 2; }
	@cargo run -q -p kaip-e2e --bin kaip-seed -- gate --call $(CALL)

seed-replacement: ## With `make run` up and a gate published: a replacement call for one place it freed, two applicants, review, the committee's vote and the ledger's award accepted (GATE=<key>, default gate-1)
	@cargo run -q -p kaip-e2e --bin kaip-seed -- replacement --gate $(or $(GATE),gate-1)

verify-decision: ## Recompute a published selection from its recorded inputs and report agreement or every difference (CALL=<id>; exit 1 when they differ)
	@test -n "$(CALL)" || { echo "usage: make verify-decision CALL=<call id>"; exit 2; }
	@cargo run -q -p kaip-scoring --bin kaip-verify-decision -- --call $(CALL)

token: ## Mint a development token for every role
	@cargo run -q -p kaip-auth --bin kaip-dev-token -- --all

build: ## Build every binary
	cargo build --bins

mutants: ## Mutation-test the domain rules (scoring, intake) against their unit tests with cargo-mutants; missed mutants fail
	@command -v cargo-mutants >/dev/null 2>&1 || { echo "cargo-mutants is not installed: cargo install --locked cargo-mutants"; exit 1; }
	@# One job, unit tests only (.cargo/mutants.toml); a copy of the tree per crate, results in
	@# target/mutants/<crate>/mutants.out (missed.txt lists what no test noticed). The copies
	@# build in CARGO_TARGET_DIR when it is set (dependencies already built are reused).
	@status=0; \
	cargo mutants -j 1 $(addprefix --file ,$(wildcard services/scoring/src/domain/*.rs)) --output target/mutants/scoring || status=$$?; \
	cargo mutants -j 1 --file services/intake/src/domain.rs --output target/mutants/intake || status=$$?; \
	exit $$status

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'
