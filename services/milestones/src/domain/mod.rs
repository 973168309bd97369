//! The milestones service's rules as plain functions: exact decimals ([`decimal`]) and the
//! stage gate ([`gate`]: weights, normalisation, the exact score, ranking, eliminations).
//! Handlers do the I/O around them.

pub mod decimal;
pub mod gate;

/// A rule an input broke: the field and the rule, turned into a `VALIDATION` error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub rule: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}
