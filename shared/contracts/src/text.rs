//! Text hygiene for every request body: one rule, said once, applied to every text field.
//!
//! A control character in a title is never what a person meant, and some of them break
//! things downstream: PostgreSQL refuses NUL in `text`, C1 and DEL confuse terminals and
//! CSV exports, and a line break in a single-line field forges log lines and headers. So
//! every `String` a service accepts is checked here, before anything is written:
//!
//! - single-line fields (titles, names, keys, identifiers) accept no control character;
//! - multi-line fields (summaries, descriptions, reasons, comments) accept `\n`, `\r` and
//!   `\t` and no other;
//! - "control character" means Unicode's `Cc` category: C0 (U+0000..U+001F), DEL (U+007F)
//!   and C1 (U+0080..U+009F);
//! - no field accepts the bidirectional embeddings, overrides and isolates (U+202A..U+202E,
//!   U+2066..U+2069): they make `invoice\u{202E}fdp.exe` display as `invoiceexe.pdf`, and a
//!   reviewer or an officer must read what was stored; single-line fields also refuse the
//!   Unicode line and paragraph separators (U+2028, U+2029), which are line breaks.
//!
//! Each request DTO implements [`CheckText`] by naming each of its text fields and whether
//! it is single- or multi-line; the services' JSON extractor calls it, so no handler can
//! forget it.

use std::fmt;

/// Which control characters a field tolerates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    /// A title, name, key or identifier: no control character at all.
    Single,
    /// Free text: line breaks (`\n`, `\r`) and tabs, and no other control character.
    Multi,
}

/// A text field that broke the rule: which field (`members[1].name`), and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextViolation {
    pub field: String,
    pub rule: String,
}

impl fmt::Display for TextViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for TextViolation {}

/// The first character `value` may not hold under `lines`, with its position (in
/// characters, from 0).
pub fn forbidden_char(value: &str, lines: Lines) -> Option<(usize, char)> {
    value
        .chars()
        .enumerate()
        .find(|(_, c)| is_forbidden(*c, lines))
}

fn is_forbidden(c: char, lines: Lines) -> bool {
    let multi = lines == Lines::Multi;
    (c.is_control() && !(multi && matches!(c, '\n' | '\r' | '\t')))
        || is_bidi_control(c)
        || (!multi && matches!(c, '\u{2028}' | '\u{2029}'))
}

/// The embeddings, overrides and isolates that reorder how the text around them displays.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks one field's value.
pub fn check(field: &str, value: &str, lines: Lines) -> Result<(), TextViolation> {
    match forbidden_char(value, lines) {
        None => Ok(()),
        Some((at, c)) if is_bidi_control(c) => Err(TextViolation {
            field: field.to_owned(),
            rule: format!(
                "must not contain bidirectional override characters (found U+{:04X} at character {at}): they change how the text displays",
                c as u32
            ),
        }),
        Some((at, c)) if matches!(c, '\u{2028}' | '\u{2029}') => Err(TextViolation {
            field: field.to_owned(),
            rule: format!(
                "must not contain line or paragraph separators (found U+{:04X} at character {at}); it is a single-line field",
                c as u32
            ),
        }),
        Some((at, c)) => Err(TextViolation {
            field: field.to_owned(),
            rule: match lines {
                Lines::Single => format!(
                    "must not contain control characters (found U+{:04X} at character {at}); it is a single-line field",
                    c as u32
                ),
                Lines::Multi => format!(
                    "must not contain control characters other than line breaks and tabs (found U+{:04X} at character {at})",
                    c as u32
                ),
            },
        }),
    }
}

/// `prefix.name`, or `name` at the top level.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A request body whose every text field is checked by [`check`].
pub trait CheckText {
    /// Checks every text field, naming each as `prefix.field` (or `field` at the top).
    fn check_text_at(&self, prefix: &str) -> Result<(), TextViolation>;

    /// Checks every text field; the first violation names its field.
    fn check_text(&self) -> Result<(), TextViolation> {
        self.check_text_at("")
    }
}

/// Checks `name` (a single text field) of the body at `prefix`.
pub fn field(prefix: &str, name: &str, value: &str, lines: Lines) -> Result<(), TextViolation> {
    if forbidden_char(value, lines).is_none() {
        return Ok(());
    }
    check(&join(prefix, name), value, lines)
}

/// Checks every string of a list field, naming them `name[i]`.
pub fn list(
    prefix: &str,
    name: &str,
    values: &[String],
    lines: Lines,
) -> Result<(), TextViolation> {
    for (i, v) in values.iter().enumerate() {
        field(prefix, &format!("{name}[{i}]"), v, lines)?;
    }
    Ok(())
}

/// Checks every element of a list of bodies, naming them `name[i].…`.
pub fn nested<T: CheckText>(prefix: &str, name: &str, items: &[T]) -> Result<(), TextViolation> {
    for (i, item) in items.iter().enumerate() {
        item.check_text_at(&join(prefix, &format!("{name}[{i}]")))?;
    }
    Ok(())
}

/// Bodies with no text of their own.
impl CheckText for () {
    fn check_text_at(&self, _: &str) -> Result<(), TextViolation> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_fields_refuse_every_control_character() {
        for c in [
            '\0', '\u{1}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{80}', '\u{9f}',
        ] {
            let v = check("title", &format!("a{c}b"), Lines::Single).unwrap_err();
            assert_eq!(v.field, "title");
            assert!(v.rule.contains(&format!("U+{:04X}", c as u32)), "{v}");
            assert!(v.rule.contains("at character 1"), "{v}");
        }
    }

    #[test]
    fn multi_line_fields_allow_line_breaks_and_tabs_only() {
        assert!(check("summary", "line 1\r\n\tline 2\n", Lines::Multi).is_ok());
        for c in ['\0', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{85}'] {
            assert!(
                check("summary", &format!("x{c}"), Lines::Multi).is_err(),
                "{c:?}"
            );
        }
    }

    #[test]
    fn bidirectional_overrides_are_refused_everywhere_and_separators_in_single_lines() {
        for c in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            for lines in [Lines::Single, Lines::Multi] {
                let v = check("filename", &format!("invoice{c}fdp.exe"), lines).unwrap_err();
                assert!(v.rule.starts_with("must not contain bidirectional"), "{v}");
                assert!(v.rule.contains("at character 7"), "{v}");
            }
        }
        for c in ['\u{2028}', '\u{2029}'] {
            let v = check("title", &format!("a{c}"), Lines::Single).unwrap_err();
            assert!(v.rule.contains("separators"), "{v}");
            assert!(check("summary", &format!("a{c}b"), Lines::Multi).is_ok());
        }
        // The marks that only hint a direction stay allowed (mixed-script names use them).
        assert!(check("title", "a\u{200E}b\u{200F}", Lines::Single).is_ok());
        assert!(check("title", "a\u{2029}", Lines::Multi).is_ok());
    }

    #[test]
    fn ordinary_text_passes_including_korean_and_emoji() {
        let text = "한국어 제목 — “quoted” 🚀 \u{a0}non-breaking";
        assert!(check("title", text, Lines::Single).is_ok());
        assert!(check("title", "", Lines::Single).is_ok());
        // The first character after C1 (U+00A0) is printable.
        assert_eq!(
            forbidden_char("\u{a0}\u{9f}", Lines::Single),
            Some((1, '\u{9f}'))
        );
    }

    #[test]
    fn nested_fields_are_named_by_their_path() {
        struct Inner(String);
        impl CheckText for Inner {
            fn check_text_at(&self, prefix: &str) -> Result<(), TextViolation> {
                field(prefix, "name", &self.0, Lines::Single)
            }
        }
        let items = [Inner("ok".into()), Inner("bad\0".into())];
        let v = nested("", "members", &items).unwrap_err();
        assert_eq!(v.field, "members[1].name");
        let v = nested("body", "members", &items).unwrap_err();
        assert_eq!(v.field, "body.members[1].name");
        let v = list(
            "",
            "expertise",
            &["a".into(), "\u{7f}".into()],
            Lines::Single,
        )
        .unwrap_err();
        assert_eq!(v.field, "expertise[1]");
    }
}
