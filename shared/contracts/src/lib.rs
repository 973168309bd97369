//! The contracts every K-AIP process agrees on: identifiers, the event envelope and its
//! payloads, topic names, and the JSON bodies of the services' HTTP APIs.
//!
//! This crate carries no infrastructure on purpose (no diesel, no Kafka, no HTTP server):
//! integrators can depend on it to read our events without pulling in our stack, and
//! `cargo tree -p kaip-contracts -i diesel` printing nothing is part of CI's lint.

pub mod audit;
pub mod brn;
pub mod catalogue;
pub mod dto;
pub mod error;
pub mod events;
pub mod gpu_rules;
pub mod ids;
pub mod role;
pub mod text;
pub mod topics;

pub use error::ErrorBody;
pub use events::{Actor, DomainEvent, EventEnvelope};
pub use ids::*;
pub use role::Role;
