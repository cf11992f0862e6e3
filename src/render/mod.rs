//! Renderings of plans and apply reports: text for terminals and logs, JSON for machines and
//! plan files, Markdown for pull-request comments. Pure: strings in, strings out.

pub(crate) mod export;
mod markdown;
mod report;
mod text;

pub use markdown::{MARKDOWN_LIMIT, plan_markdown, plan_markdown_within};
pub use report::report_text;
pub use text::{Painter, plan_text, summary_line};

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::plan::Plan;

/// The plan as pretty JSON with a final newline (the plan-file format).
pub fn plan_json(plan: &Plan) -> String {
    let mut out = serde_json::to_string_pretty(plan).expect("a plan serialises");
    out.push('\n');
    out
}

/// How a field value is shown: JSON-like scalars, `(unset)` when absent.
pub(crate) fn show(value: Option<&crate::model::FieldValue>) -> String {
    match value {
        Some(value) => value.to_string(),
        None => "(unset)".to_owned(),
    }
}

/// Whether `c` must not reach a terminal, a YAML comment or a Markdown line as it is: control
/// characters (C0, DEL and C1, NEL included), the Unicode line and paragraph separators,
/// invisible format characters that reorder or hide text (bidirectional overrides and
/// isolates, zero-width space, byte order mark), and the non-characters U+FFFE and U+FFFF
/// (which YAML does not allow).
pub(crate) fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200b}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{fffe}'
                | '\u{ffff}'
        )
}

/// `text` with every [unsafe character](is_unsafe_char) written as a visible escape (`\n`,
/// `\r`, `\t`, `\u{1b}`), so that a live value can neither end a line nor move a
/// terminal's cursor, change its colors or title, or hide what follows. Borrowed when there
/// is nothing to replace.
pub(crate) fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_escapes_what_could_end_a_line_or_drive_a_terminal() {
        assert!(matches!(visible("acme/web"), Cow::Borrowed("acme/web")));
        assert_eq!(
            visible("a\nb\rc\td\u{1b}[31me\u{85}f\u{2028}g\u{2029}h\u{202e}i\u{7f}\u{9b}\0"),
            "a\\nb\\rc\\td\\u{1b}[31me\\u{85}f\\u{2028}g\\u{2029}h\\u{202e}i\\u{7f}\\u{9b}\\u{0}"
        );
        // Text in other scripts, emoji sequences and `\` stay as they are.
        for text in [
            "Café ünïcode 日本語",
            "👨\u{200d}👩\u{200d}👧",
            "C:\\path",
            "a\u{a0}b",
        ] {
            assert_eq!(visible(text), text);
        }
    }
}
