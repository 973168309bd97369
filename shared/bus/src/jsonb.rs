//! A `jsonb` column read as its text and decoded straight into the type the code wants.
//!
//! Diesel reads `jsonb` into a `serde_json::Value`: a tree of maps, vectors and strings,
//! one allocation per node, which the code then clones and converts into its typed form.
//! For the rows a list endpoint reads by the hundred (a proposal's resources, a case's
//! members) that tree was about a tenth of the platform's CPU under `make bench`'s load.
//! [`JsonbText`] keeps the column's text as PostgreSQL sends it (`jsonb`'s binary format
//! is a version byte and the text) and parses it once, into the target type.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use serde::de::DeserializeOwned;
use std::io::Write;

/// The text of a `jsonb` value, as stored.
#[derive(Debug, Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Jsonb)]
pub struct JsonbText(String);

impl JsonbText {
    /// The JSON of `value`.
    pub fn encode<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::to_string(value).map(Self)
    }

    /// Decodes the text into `T`, in one pass.
    pub fn decode<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.0)
    }

    /// Decodes the text into `T`, or `T`'s default when it does not decode, logged as an
    /// error naming `what`: for readers that have always treated a value of another shape as
    /// absent, so that doing so is never silent.
    pub fn decode_or_default<T: DeserializeOwned + Default>(&self, what: &str) -> T {
        self.decode().unwrap_or_else(|e| {
            tracing::error!(column = what, error = %e, "a stored JSON value does not decode; read as absent");
            T::default()
        })
    }

    /// The value as a JSON tree, for code that needs one.
    pub fn value(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_str(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromSql<Jsonb, Pg> for JsonbText {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((1, text)) => Ok(Self(std::str::from_utf8(text)?.to_owned())),
            _ => Err("unsupported jsonb encoding version".into()),
        }
    }
}

impl ToSql<Jsonb, Pg> for JsonbText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[1])?;
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}
