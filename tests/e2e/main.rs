//! End-to-end tests: the platform in-process against real PostgreSQL and Kafka.

mod backbone;
mod competition;
mod relay_hardening;
mod slice;
mod validation;
