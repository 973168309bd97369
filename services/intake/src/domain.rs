//! Intake's rules as plain functions: values in, values (or a named violation) out.

use chrono::{DateTime, Utc};
use kaip_contracts::dto::intake::{OpenCall, SubmitProposal};

/// A rule a request broke: which field, and what the rule is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub field: &'static str,
    pub rule: String,
}

fn violation(field: &'static str, rule: impl Into<String>) -> Violation {
    Violation {
        field,
        rule: rule.into(),
    }
}

pub const MAX_TITLE: usize = 200;
pub const MAX_SUMMARY: usize = 20_000;

fn check_title(title: &str) -> Result<(), Violation> {
    let len = title.trim().chars().count();
    if len == 0 {
        return Err(violation("title", "must not be empty"));
    }
    if len > MAX_TITLE {
        return Err(violation(
            "title",
            format!("must be at most {MAX_TITLE} characters"),
        ));
    }
    Ok(())
}

pub fn validate_open_call(req: &OpenCall, now: DateTime<Utc>) -> Result<(), Violation> {
    check_title(&req.title)?;
    if req.closes_at <= req.opens_at {
        return Err(violation("closes_at", "must be after opens_at"));
    }
    if req.closes_at <= now {
        return Err(violation("closes_at", "must be in the future"));
    }
    Ok(())
}

pub fn validate_submission(req: &SubmitProposal) -> Result<(), Violation> {
    check_title(&req.title)?;
    if req.summary.chars().count() > MAX_SUMMARY {
        return Err(violation(
            "summary",
            format!("must be at most {MAX_SUMMARY} characters"),
        ));
    }
    Ok(())
}

/// Where `now` falls relative to a call's submission window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    NotYetOpen,
    Open,
    Closed,
}

pub fn window(opens_at: DateTime<Utc>, closes_at: DateTime<Utc>, now: DateTime<Utc>) -> Window {
    if now < opens_at {
        Window::NotYetOpen
    } else if now < closes_at {
        Window::Open
    } else {
        Window::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use kaip_contracts::CallId;

    fn call(title: &str, hours: i64) -> OpenCall {
        let now = Utc::now();
        OpenCall {
            title: title.into(),
            opens_at: now,
            closes_at: now + Duration::hours(hours),
        }
    }

    #[test]
    fn calls_need_a_title_and_a_window() {
        let now = Utc::now();
        assert!(validate_open_call(&call("Sovereign AI 2026", 24), now).is_ok());
        assert_eq!(
            validate_open_call(&call("  ", 24), now).unwrap_err().field,
            "title"
        );
        assert_eq!(
            validate_open_call(&call(&"x".repeat(201), 24), now)
                .unwrap_err()
                .field,
            "title"
        );
        assert_eq!(
            validate_open_call(&call("ok", 0), now).unwrap_err().field,
            "closes_at"
        );
        assert_eq!(
            validate_open_call(&call("ok", -1), now).unwrap_err().field,
            "closes_at"
        );
    }

    #[test]
    fn a_call_cannot_close_in_the_past() {
        let now = Utc::now();
        let past = OpenCall {
            title: "t".into(),
            opens_at: now - Duration::hours(3),
            closes_at: now - Duration::hours(1),
        };
        let v = validate_open_call(&past, now).unwrap_err();
        assert_eq!(
            (v.field, v.rule.as_str()),
            ("closes_at", "must be in the future")
        );
    }

    #[test]
    fn submissions_are_checked() {
        let ok = SubmitProposal {
            call_id: CallId::new(),
            title: "LLM".into(),
            summary: "s".into(),
        };
        assert!(validate_submission(&ok).is_ok());
        let long = SubmitProposal {
            summary: "x".repeat(MAX_SUMMARY + 1),
            ..ok.clone()
        };
        assert_eq!(validate_submission(&long).unwrap_err().field, "summary");
    }

    #[test]
    fn the_window_is_half_open() {
        let t = Utc::now();
        let h = Duration::hours(1);
        assert_eq!(window(t, t + h, t - h), Window::NotYetOpen);
        assert_eq!(window(t, t + h, t), Window::Open);
        assert_eq!(window(t, t + h, t + h), Window::Closed);
    }
}
