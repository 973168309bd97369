//! The talent service's rules as plain functions: matching ([`matching`]) and the
//! matching funds ([`funds`]). Handlers do the I/O around them.

pub mod funds;
pub mod matching;
