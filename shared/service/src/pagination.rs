//! Keyset pagination: every list endpoint pages by an opaque cursor over a time-ordered
//! UUIDv7 key, so pages stay stable while rows are added.

use crate::error::CommonError;
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<Uuid>,
}

impl PageRequest {
    pub fn parse(limit: Option<i64>, after: Option<&str>) -> Result<Self, CommonError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(CommonError::validation(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = after
            .map(|c| {
                Uuid::parse_str(c).map_err(|_| {
                    CommonError::validation("after", "is not a cursor from a previous page")
                })
            })
            .transpose()?;
        Ok(Self { limit, after })
    }

    /// Trims a result fetched with `limit + 1` rows and computes the next cursor.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> Uuid,
    ) -> kaip_contracts::dto::Page<T> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| key(r).to_string())
        } else {
            None
        };
        kaip_contracts::dto::Page {
            items: rows,
            next_cursor,
        }
    }
}

/// A batch read's comma-separated ids (`?ids=a,b,c`): at least one, at most `max`, each a
/// UUID; duplicates are dropped. The error names the query parameter and the rule.
pub fn parse_ids(field: &str, raw: &str, max: usize) -> Result<Vec<Uuid>, CommonError> {
    let mut ids: Vec<Uuid> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id = Uuid::parse_str(part)
            .map_err(|_| CommonError::validation(field, format!("`{part}` is not a UUID")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > max {
            return Err(CommonError::validation(
                field,
                format!("at most {max} ids per call"),
            ));
        }
    }
    if ids.is_empty() {
        return Err(CommonError::validation(
            field,
            "at least one id is required",
        ));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_bounded_and_checked() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(
            parse_ids("ids", &format!("{a}, {b},{a}"), 2).unwrap(),
            vec![a, b]
        );
        assert!(parse_ids("ids", "", 2).is_err());
        assert!(parse_ids("ids", "nope", 2).is_err());
        let three = format!("{a},{b},{}", Uuid::now_v7());
        let err = parse_ids("ids", &three, 2).unwrap_err();
        assert!(err.to_string().contains("at most 2"), "{err}");
    }

    #[test]
    fn limits_are_checked_and_cursors_computed() {
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(101), None).is_err());
        assert!(PageRequest::parse(None, Some("nope")).is_err());
        let p = PageRequest::parse(Some(2), None).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = p.finish(ids.clone(), |u| *u);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor, Some(ids[1].to_string()));
        let page = p.finish(ids[..2].to_vec(), |u| *u);
        assert_eq!(page.next_cursor, None);
    }
}
