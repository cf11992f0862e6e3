//! The apply report as text, for a terminal: live text (project and integration IDs, the
//! API's messages) with its line breaks and control characters made visible.

use std::fmt::Write as _;

use super::{Painter, visible};
use crate::apply::{Outcome, Report};

/// The apply report's format version (`apply --format json`): `"1"`, raised only by a change
/// that is not an extension.
pub(crate) const REPORT_FORMAT_VERSION: &str = "1";

/// The apply report as `apply --format json` writes it: `format_version`, then the report's
/// own keys.
#[derive(serde::Serialize)]
struct ReportDocument<'a> {
    format_version: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

/// The apply report as pretty JSON with a final newline, versioned like the plan file.
pub fn report_json(report: &Report) -> String {
    let document = ReportDocument {
        format_version: REPORT_FORMAT_VERSION,
        report,
    };
    let mut json = serde_json::to_string_pretty(&document).expect("a report serialises to JSON");
    json.push('\n');
    json
}

/// The apply report as text.
pub fn report_text(report: &Report, painter: Painter, verbose: bool) -> String {
    let mut out = String::new();
    let counts = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Deleted,
        Outcome::Replaced,
        Outcome::Unchanged,
        Outcome::Failed,
        Outcome::Blocked,
        Outcome::Skipped,
    ]
    .map(|o| format!("{} {}", report.count(o), o.as_str()))
    .join(", ");
    let not_started = report.count(Outcome::NotStarted);
    let counts = if not_started > 0 {
        format!("{counts}, {not_started} not started")
    } else {
        counts
    };
    let _ = writeln!(
        out,
        "{}",
        painter.paint(anstyle::Style::new().bold(), &format!("Apply: {counts}"))
    );
    for action in &report.actions {
        if action.outcome == Outcome::Unchanged && !verbose {
            continue;
        }
        let id = action
            .integration_id
            .as_deref()
            .map(|i| format!(" (integration {})", visible(i)))
            .unwrap_or_default();
        let recovered = if action.recovered {
            " (its answer was lost; found by re-listing, not created twice)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:<9} {}{id}{recovered}",
            action.outcome.as_str(),
            visible(action.project.as_str())
        );
        if let Some(message) = &action.message {
            let _ = writeln!(out, "            {}", visible(message));
        }
        if let Some(hook) = &action.hook_url {
            let _ = writeln!(
                out,
                "            the webhook could not be registered: add it in Bitbucket by hand (Repository settings > Webhooks, all events but comments and approvals):\n            {}",
                visible(hook)
            );
        }
    }
    for error in &report.errors {
        let _ = writeln!(out, "  error     {}", visible(error));
    }
    if report.interrupted {
        let _ = writeln!(
            out,
            "Interrupted: the actions not started were skipped; run `bbsync apply` again to finish."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ActionReport;
    use crate::model::ids::ProjectId;
    use crate::plan::ActionKind;
    use crate::render::tests::{raw_unsafe, unpainted};

    /// The API's messages and live IDs in an apply report reach the terminal escaped.
    #[test]
    fn hostile_messages_reach_the_terminal_escaped() {
        let hostile = "boom\r  deleted   victim\n\u{1b}[2J\u{1b}]0;pwned\u{7}\u{2028}";
        let report = Report {
            actions: vec![ActionReport {
                project: ProjectId::new(hostile),
                action: ActionKind::Create,
                outcome: Outcome::Failed,
                message: Some(hostile.to_owned()),
                integration_id: Some(hostile.to_owned()),
                hook_url: Some(hostile.to_owned()),
                hook: None,
                activities: vec![],
                recovered: false,
            }],
            interrupted: false,
            errors: vec![hostile.to_owned()],
        };
        for color in [false, true] {
            let text = unpainted(&report_text(&report, Painter::new(color), true));
            assert!(raw_unsafe(&text).is_empty(), "{text:?}");
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with("deleted")),
                "{text}"
            );
        }
        let text = report_text(&report, Painter::new(false), true);
        let json: serde_json::Value = serde_json::from_str(&report_json(&report)).unwrap();
        assert_eq!(json["format_version"], "1", "{json}");
        assert_eq!(
            json.as_object().unwrap().keys().next().map(String::as_str),
            Some("format_version"),
            "first, as in the plan file"
        );
        assert_eq!(json["actions"][0]["outcome"], "failed", "{json}");
        assert!(
            text.contains(r"  failed    boom\r  deleted   victim\n\u{1b}[2J"),
            "{text}"
        );
    }
}
