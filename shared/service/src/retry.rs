//! Running a whole transaction again when PostgreSQL aborted it for a reason a repeat can
//! cure: a deadlock (40P01, which diesel reports as `Unknown`), a serialization failure
//! (40001) or, when the caller asks, a unique violation (two writers of one client-chosen
//! id: the repeat sees the winner's row and answers it, or a coded refusal).
//!
//! Every service's error type wraps database failures in [`CommonError::Internal`]; it
//! implements [`DatabaseFailure`] to say where, and gets [`retrying`] for free.

use crate::CommonError;
use diesel::result::{DatabaseErrorKind, Error};

/// How many times a request's transaction is run at most.
pub const ATTEMPTS: usize = 8;

/// An error that may carry the database's own error.
pub trait DatabaseFailure: std::fmt::Debug {
    fn database_error(&self) -> Option<&Error>;
}

impl DatabaseFailure for CommonError {
    fn database_error(&self) -> Option<&Error> {
        match self {
            CommonError::Internal(inner) => inner.downcast_ref::<Error>(),
            _ => None,
        }
    }
}

/// A deadlock or a serialization failure: the transaction rolled back whole.
pub fn is_transient(e: &impl DatabaseFailure) -> bool {
    match e.database_error() {
        Some(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => true,
        Some(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
            info.message().contains("deadlock detected")
        }
        _ => false,
    }
}

/// Two writers raced on one unique key.
pub fn is_unique_violation(e: &impl DatabaseFailure) -> bool {
    matches!(
        e.database_error(),
        Some(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
    )
}

/// Runs `f` (one whole transaction) again while it fails with a deadlock or serialization
/// failure, or a unique violation when `on_unique`, at most [`ATTEMPTS`] times in all,
/// backing off a little more each time.
pub fn retrying<T, E: DatabaseFailure>(
    on_unique: bool,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f() {
            Err(e)
                if attempt < ATTEMPTS
                    && (is_transient(&e) || (on_unique && is_unique_violation(&e))) =>
            {
                tracing::info!(attempt, error = ?e, "transaction retried");
                std::thread::sleep(std::time::Duration::from_millis(5 * attempt as u64));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::DatabaseErrorKind as K;

    fn db_error(kind: K, message: &str) -> CommonError {
        CommonError::internal(Error::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn deadlocks_and_serialization_failures_are_retried_a_bounded_number_of_times() {
        let deadlock = || db_error(K::Unknown, "deadlock detected");
        // Two deadlocks, then success: the third run's result.
        let mut runs = 0;
        let r = retrying(false, || {
            runs += 1;
            if runs < 3 {
                Err(deadlock())
            } else {
                Ok(runs)
            }
        });
        assert_eq!(r.ok(), Some(3));
        // Always failing: given up after ATTEMPTS runs, with the error.
        let mut runs = 0;
        let r: Result<(), _> = retrying(false, || {
            runs += 1;
            Err(db_error(
                K::SerializationFailure,
                "could not serialize access",
            ))
        });
        assert!(r.as_ref().is_err_and(is_transient), "{r:?}");
        assert_eq!(runs, ATTEMPTS);
        // A unique violation only when asked; anything else at once.
        for (on_unique, want) in [(false, 1), (true, ATTEMPTS)] {
            let mut runs = 0;
            let _ = retrying::<(), _>(on_unique, || {
                runs += 1;
                Err(db_error(K::UniqueViolation, "duplicate key"))
            });
            assert_eq!(runs, want, "on_unique {on_unique}");
        }
        let mut runs = 0;
        let _ = retrying::<(), _>(true, || {
            runs += 1;
            Err(db_error(
                K::CheckViolation,
                "debits_must_not_exceed_credits",
            ))
        });
        assert_eq!(runs, 1);
        assert!(!is_transient(&db_error(K::Unknown, "some other failure")));
        assert!(!is_transient(&CommonError::validation("x", "y")));
    }
}
