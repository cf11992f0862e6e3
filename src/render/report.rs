//! The apply report as text.

use std::fmt::Write as _;

use super::Painter;
use crate::apply::{Outcome, Report};

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
            .map(|i| format!(" (integration {i})"))
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
            action.project
        );
        if let Some(message) = &action.message {
            let _ = writeln!(out, "            {message}");
        }
        if let Some(hook) = &action.hook_url {
            let _ = writeln!(
                out,
                "            the webhook could not be registered: add it in Bitbucket by hand (Repository settings > Webhooks, all events but comments and approvals):\n            {hook}"
            );
        }
    }
    for error in &report.errors {
        let _ = writeln!(out, "  error     {error}");
    }
    if report.interrupted {
        let _ = writeln!(
            out,
            "Interrupted: the actions not started were skipped; run `bbsync apply` again to finish."
        );
    }
    out
}
