//! End-to-end tests: the platform in-process against real PostgreSQL and Kafka.

mod audit;
mod audit_hardening;
mod auth_hardening;
mod backbone;
mod broker_at_start;
mod competition;
mod consumer_hardening;
mod data_budget;
mod decisions;
mod gate_inputs;
mod gateway_hardening;
mod gpu_gateway;
mod inputs_hardening;
mod milestones;
mod operators_usage;
mod panels;
mod phase;
mod relay_hardening;
mod replacement;
mod rules;
mod rules_fixes;
mod seed;
mod slice;
mod talent;
mod talent_gateway;
mod validation;
