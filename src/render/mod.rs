//! Renderings of plans and apply reports: text for terminals and logs, JSON for machines and
//! plan files, Markdown for pull-request comments. Pure: strings in, strings out.

pub(crate) mod export;
mod markdown;
mod report;
pub(crate) mod text;

pub use markdown::{Flavor, MARKDOWN_LIMIT, plan_markdown, plan_markdown_within};
pub use report::{report_json, report_text};
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
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::model::ids::{IntegrationId, ProjectId};
    use crate::model::live::{
        LiveIntegration, LiveLinks, LiveState, OrganizationLive, ProjectLive,
    };
    use crate::model::{Field, FieldValue, IntegrationType};
    use crate::plan::PlanOptions;

    /// Pieces of YAML, template, Markdown, HTML and terminal syntax, and line breaks of every
    /// kind.
    const NASTY: &[&str] = &[
        "\r",
        "\n",
        "\r\n",
        "\u{85}",
        "\u{2028}",
        "\u{2029}",
        "\u{1b}[31m",
        "\u{1b}]0;t\u{7}",
        "\u{1b}[2J",
        "\0",
        "\t",
        "\u{b}",
        "\u{7f}",
        "\u{9b}",
        "\u{feff}",
        "\u{fffe}",
        "\u{202e}",
        "\u{200b}",
        "#",
        " #",
        "# ",
        ": ",
        ":",
        "-",
        "- ",
        "?",
        "? ",
        "&a",
        "*a",
        "!",
        "!!str",
        "|",
        ">",
        "'",
        "\"",
        "%",
        "@",
        "`",
        "``",
        "```",
        " `",
        "` ",
        "${",
        "$${",
        "${A}",
        "$",
        "{",
        "}",
        "[",
        "]",
        ",",
        " ",
        "\\",
        "\\n",
        "\\|",
        "true",
        "null",
        "~",
        "1",
        "1. ",
        "0x1",
        "1e3",
        ".inf",
        "---",
        "...",
        "<<",
        "<b>",
        "<img src=x onerror=alert(1)>",
        "</code>",
        "</details>",
        "<!--",
        "*",
        "_",
        "~~",
        "&amp;",
        "[l](https://x)",
        "![i](https://x)",
        "> ",
        ":x:",
        "victim: {absent: true}",
        "\n  victim:\n    absent: true\n",
        "| :x: | `p` |",
    ];

    /// Arbitrary text, biased towards [`NASTY`] pieces.
    pub(crate) fn hostile() -> BoxedStrategy<String> {
        prop::collection::vec(
            prop_oneof![
                3 => any::<char>().prop_map(String::from),
                4 => prop::sample::select(NASTY).prop_map(str::to_owned),
                2 => "[a-zA-Z0-9_./:@-]{1,6}",
            ],
            0..8,
        )
        .prop_map(|pieces| pieces.concat())
        .boxed()
    }

    /// Live text a plan can carry to a rendering.
    #[derive(Debug, Clone)]
    pub(crate) struct Hostile {
        /// The live consumer key of a drifted integration (a field diff).
        pub key: String,
        /// The live repository of a deleted integration (the text renderer's description).
        pub repository: String,
        /// A read error (a reason).
        pub error: String,
        /// The IDs of duplicate integrations (a reason, in code spans).
        pub integration: String,
        /// An organization project that `prune` deletes.
        pub project: String,
        /// A warning and a plan-level error.
        pub warning: String,
    }

    impl Hostile {
        pub(crate) fn all(text: &str) -> Self {
            Self {
                key: text.to_owned(),
                repository: text.to_owned(),
                error: text.to_owned(),
                integration: text.to_owned(),
                project: text.to_owned(),
                warning: text.to_owned(),
            }
        }
    }

    pub(crate) fn arb_hostile() -> impl Strategy<Value = Hostile> {
        (
            hostile(),
            hostile(),
            hostile(),
            hostile(),
            hostile(),
            hostile(),
        )
            .prop_map(
                |(key, repository, error, integration, project, warning)| Hostile {
                    key,
                    repository,
                    error,
                    integration,
                    project,
                    warning,
                },
            )
    }

    /// A plan with every kind of action, each carrying one of `h`'s live texts.
    pub(crate) fn hostile_plan(h: &Hostile) -> Plan {
        let manifest = "version: 1\norganization: org\nprune: true\nprojects:\n  web:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: new-key, secret: \"${S}\"}\n  gone:\n    absent: true\n  unknown:\n    absent: true\n  double:\n    absent: true\n  later:\n    bitbucket:\n      repository: acme/later\n      app_credentials: {key: \"${UNSET}\", secret: \"${S}\"}\n";
        let file = crate::manifest::parse("m.yaml", manifest.as_bytes()).expect("a manifest");
        let built = crate::model::build(&[file], &crate::model::Env::new([("S", "s")]));
        let desired = built.state.expect("a state");
        let live = |id: &str, repository: &str, key: &str| LiveIntegration {
            id: IntegrationId::new(id),
            kind: IntegrationType::Bitbucket,
            fields: [
                (Field::Repository, FieldValue::Text(repository.into())),
                (Field::AppKey, FieldValue::Text(key.into())),
                (Field::FetchBranches, FieldValue::Bool(true)),
                (Field::PruneBranches, FieldValue::Bool(true)),
                (Field::BuildPullRequests, FieldValue::Bool(true)),
                (Field::ResyncPullRequests, FieldValue::Bool(false)),
            ]
            .into_iter()
            .collect(),
            links: LiveLinks::default(),
        };
        let known = |managed| ProjectLive::Known {
            managed,
            others: vec![],
        };
        let orphan = ProjectId::new(h.project.clone());
        let projects: BTreeMap<ProjectId, ProjectLive> = [
            (
                ProjectId::new("web"),
                known(vec![live("i1", "acme/web", &h.key)]),
            ),
            (
                ProjectId::new("gone"),
                known(vec![live("i2", &h.repository, "k")]),
            ),
            (
                ProjectId::new("unknown"),
                ProjectLive::Unknown {
                    error: h.error.clone(),
                },
            ),
            (
                ProjectId::new("double"),
                known(vec![
                    live(&h.integration, "a/b", "k"),
                    live(&format!("{}2", h.integration), "a/c", "k"),
                ]),
            ),
            (ProjectId::new("later"), known(vec![])),
            (orphan.clone(), known(vec![live("i3", &h.repository, "k")])),
        ]
        .into_iter()
        .collect();
        let listed: BTreeSet<ProjectId> = [orphan].into_iter().collect();
        let state = LiveState {
            titles: Default::default(),
            projects,
            organization: Some(OrganizationLive::Listed(listed)),
        };
        let mut plan = crate::plan::plan(
            &desired,
            &state,
            &PlanOptions {
                warnings: vec![h.warning.clone()],
                ..PlanOptions::default()
            },
        );
        plan.errors.push(h.warning.clone());
        plan
    }

    /// `text` without the SGR sequences (`ESC [ ... m`) a [`Painter`] writes.
    pub(crate) fn unpainted(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find("\u{1b}[") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after.find(|c: char| !c.is_ascii_digit() && c != ';');
            match end {
                Some(end) if after[end..].starts_with('m') => rest = &after[end + 1..],
                _ => {
                    out.push_str(&rest[i..i + 2]);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The characters of `text` that must not be there raw: everything unsafe but the line
    /// breaks the rendering itself writes.
    pub(crate) fn raw_unsafe(text: &str) -> Vec<char> {
        text.chars()
            .filter(|c| *c != '\n' && is_unsafe_char(*c))
            .collect()
    }

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
