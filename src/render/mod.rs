//! Renderings of plans and apply reports: text for terminals and logs, JSON for machines and
//! plan files, Markdown for pull-request comments. Pure: strings in, strings out.

pub(crate) mod export;
mod markdown;
mod report;
mod text;

pub use markdown::{MARKDOWN_LIMIT, plan_markdown, plan_markdown_within};
pub use report::report_text;
pub use text::{Painter, plan_text, summary_line};

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
