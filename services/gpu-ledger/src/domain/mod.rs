//! The ledger's rules as plain functions: values in, values out, no I/O. The store locks the
//! rows a batch touches, loads them into a [`ledger::Book`], lets [`ledger::apply`] decide,
//! and writes back exactly what it decided; the same functions run in the unit and property
//! tests, so the rules are tested once, without a database.

pub mod catalogue;
pub mod ledger;
pub mod offers;
pub mod usage;
