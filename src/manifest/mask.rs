//! Finds the secrets written in clear in a manifest, so that no snippet ever shows them.
//!
//! A literal secret is an error, but the line it stands on is also the neighbour of other
//! lines, and any diagnostic's snippet may show it: the one about the field next to it, an
//! unknown field it was misplaced under, a YAML syntax error two lines down. So the byte ranges
//! of secret values are found once per file and every snippet of that file draws them as
//! `********` (see [`super::diagnostic::SourceFile::with_masked`]).

use std::ops::Range;

use super::node::{Node, Value};

/// The keys whose values are secrets, wherever they stand in the document: a secret under the
/// wrong block is still a secret.
const SECRET_KEYS: [&str; 3] = ["secret", "shared_secret", "token"];

/// The byte ranges of every secret value of a parsed document that is not a sole `${NAME}`
/// reference, whatever its type and style (numbers, quoted and block scalars, lists and
/// mappings held by a secret key), with the anchored text that an alias to it reads.
pub(crate) fn secret_spans(root: &Node) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    walk(root, false, &mut spans);
    spans
}

fn walk(node: &Node, secret: bool, spans: &mut Vec<Range<usize>>) {
    match &node.value {
        Value::Mapping(entries) => {
            for (key, value) in entries {
                if secret {
                    spans.extend(key.span.clone());
                }
                let inner = secret || SECRET_KEYS.contains(&key.text.as_str());
                walk(value, inner, spans);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                walk(item, secret, spans);
            }
        }
        Value::Null => {}
        Value::String(text) if is_reference(text) => {}
        Value::Bool(_) | Value::Integer(_) | Value::Float(_) | Value::String(_) => {
            if secret {
                spans.extend(node.span.clone());
                spans.extend(node.defined.clone());
            }
        }
    }
}

/// Whether `text` is exactly one `${NAME}` reference: the one form of a secret that is not one.
fn is_reference(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The byte ranges of what may be secret values in a text that is not valid YAML, found line by
/// line: the rest of the line after a secret key (unless it is a `${NAME}` reference), and every
/// following line indented deeper than that key's line (a block scalar, a continued value).
/// Generous on purpose: a comment or a wrong match is masked too, a secret never shown.
pub(crate) fn textual_secret_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    // The indentation of the line holding the last secret key, while its value may continue.
    let mut open: Option<usize> = None;
    let mut start = 0;
    for line in text.split_inclusive(['\n', '\r']) {
        let content = line.trim_end_matches(['\n', '\r']);
        let indent = content.len() - content.trim_start_matches([' ', '\t']).len();
        let blank = content.trim().is_empty();
        match open {
            Some(key_indent) if blank || indent > key_indent => {
                if !blank {
                    spans.push(start + indent..start + content.len());
                }
                start += line.len();
                continue;
            }
            _ => open = None,
        }
        if let Some(value) = secret_value(content) {
            let shown = content[value.clone()]
                .trim()
                .trim_end_matches([',', '}', ']'])
                .trim()
                .trim_matches(['\'', '"']);
            if !is_reference(shown) {
                if !content[value.clone()].trim().is_empty() {
                    spans.push(start + value.start..start + value.end);
                }
                open = Some(indent);
            }
        }
        start += line.len();
    }
    spans
}

/// Where the value of the first secret key on `line` is: from after its colon to the line's end.
fn secret_value(line: &str) -> Option<Range<usize>> {
    for name in SECRET_KEYS {
        for (at, _) in line.match_indices(name) {
            let before = line[..at].chars().next_back();
            let starts_key =
                before.is_none_or(|c| matches!(c, ' ' | '\t' | '{' | ',' | '"' | '\'' | '-' | '?'));
            let after = line[at + name.len()..]
                .trim_start_matches(['"', '\''])
                .trim_start();
            let Some(rest) = after.strip_prefix(':') else {
                continue;
            };
            if starts_key && (rest.is_empty() || rest.starts_with([' ', '\t'])) {
                return Some(line.len() - rest.len()..line.len());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str, spans: &[Range<usize>]) -> String {
        let mut out = text.to_owned();
        let mut spans = spans.to_vec();
        spans.sort_by_key(|r| std::cmp::Reverse(r.start));
        spans.dedup();
        for r in spans {
            out.replace_range(r, "#");
        }
        out
    }

    fn tree(text: &str) -> Node {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn finds_secret_values_of_every_shape() {
        let text = "a:\n  secret: hunter2\n  token: 12345\n  shared_secret: |\n    block\n    text\n  key: ${K}\nb: {secret: 'q''uoted', x: 1}\nc: &x plain\nd: {token: *x}\ne:\n  secret: ${S}\n  token: [l1, {k2: v2}]\n";
        let out = masked(text, &secret_spans(&tree(text)));
        for leaked in [
            "hunter2", "12345", "block", "text", "uoted", "plain", "l1", "k2", "v2",
        ] {
            assert!(!out.contains(leaked), "{leaked}: {out}");
        }
        for kept in ["key: ${K}", "secret: ${S}", "x: 1", "d: {token: #}"] {
            assert!(out.contains(kept), "{kept}: {out}");
        }
    }

    #[test]
    fn finds_secrets_in_text_that_is_not_yaml() {
        let text = "a:\n  secret: hunter2\n  x: [\n  token: |\n    block\n  key: v\n  secret: '${S}'\n b: {token: abc}\n";
        let out = masked(text, &textual_secret_spans(text));
        for leaked in ["hunter2", "block", "abc"] {
            assert!(!out.contains(leaked), "{leaked}: {out}");
        }
        for kept in ["x: [", "key: v", "secret: '${S}'", "b: {token:#"] {
            assert!(out.contains(kept), "{kept}: {out}");
        }
    }
}
