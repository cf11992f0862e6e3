//! The Markdown rendering of a plan, ready to post as a pull-request comment.

use std::fmt::Write as _;

use super::show;
use super::text::summary_line;
use crate::plan::{Action, ActionKind, Plan};

/// The default `--markdown-limit`: GitHub refuses a comment over 65,536 characters, and a CI
/// step may add a header of its own.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// The plan as Markdown: a summary, a table of actions (deletes flagged), and collapsible
/// details per project. Never shortened; see [`plan_markdown_within`].
pub fn plan_markdown(plan: &Plan) -> String {
    plan_markdown_within(plan, None)
}

/// The plan as Markdown in at most `limit` characters, so that it can still be posted as a
/// pull-request comment for a large organization. The summary, the alerts and the footer are
/// always kept; then, while they fit, the rows of the action table in plan order (errors,
/// blocked, deletes and replaces first), plan-level errors, the per-project field diffs, and the
/// warnings. A note under the summary says what was left out.
pub fn plan_markdown_within(plan: &Plan, limit: Option<usize>) -> String {
    let parts = Parts::of(plan);
    let full = parts.assemble(&Kept::all(&parts), None);
    let Some(limit) = limit.filter(|limit| chars(&full) > *limit) else {
        return full;
    };
    // What is always there, and room for the note about what is not.
    let fixed = chars(&parts.head) + chars(&parts.footer) + NOTE_ROOM + TABLE_HEADER.len();
    let mut room = limit.saturating_sub(fixed);
    let mut take = |items: &[String]| {
        items
            .iter()
            .take_while(|item| {
                let size = chars(item);
                let fits = size <= room;
                if fits {
                    room -= size;
                }
                fits
            })
            .count()
    };
    let rows = take(&parts.rows);
    let errors = take(&parts.errors);
    let details = take(&parts.details);
    let warnings = take(std::slice::from_ref(&parts.warnings)) == 1;
    let kept = Kept {
        rows,
        errors,
        details,
        warnings,
    };
    let note = shortened_note(limit, &parts, &kept);
    parts.assemble(&kept, Some(&note))
}

/// Characters kept free for the note about what was left out.
const NOTE_ROOM: usize = 400;

const TABLE_HEADER: &str = "| | Project | Action | Type | Why |\n|---|---|---|---|---|\n";

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// The Markdown in pieces, each piece whole (a row, a `<details>` block, an error line).
struct Parts {
    head: String,
    rows: Vec<String>,
    details: Vec<String>,
    errors: Vec<String>,
    warnings: String,
    footer: String,
    nothing_to_do: bool,
}

/// How many of each kind of piece go into the output.
struct Kept {
    rows: usize,
    errors: usize,
    details: usize,
    warnings: bool,
}

impl Kept {
    fn all(parts: &Parts) -> Self {
        Self {
            rows: parts.rows.len(),
            errors: parts.errors.len(),
            details: parts.details.len(),
            warnings: true,
        }
    }
}

impl Parts {
    fn of(plan: &Plan) -> Self {
        let shown: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| a.action != ActionKind::Noop)
            .collect();
        Self {
            head: head(plan),
            rows: shown.iter().map(|action| row(action)).collect(),
            details: shown
                .iter()
                .filter(|a| !a.fields.is_empty())
                .map(|action| details(action))
                .collect(),
            errors: plan
                .errors
                .iter()
                .map(|error| format!("- :x: {}\n", escape(error)))
                .collect(),
            warnings: warnings(&plan.warnings),
            footer: format!(
                "\n<sub>bbsync {} · manifest `{}`</sub>\n",
                plan.bbsync_version,
                plan.manifest_digest
                    .get(..19)
                    .unwrap_or(&plan.manifest_digest)
            ),
            nothing_to_do: shown.is_empty() && plan.errors.is_empty(),
        }
    }

    fn assemble(&self, kept: &Kept, note: Option<&str>) -> String {
        let mut out = self.head.clone();
        if let Some(note) = note {
            out.push_str(note);
        }
        if self.nothing_to_do {
            out.push_str("No changes: the live integrations match the manifest.\n");
        } else if !self.rows.is_empty() {
            out.push_str(TABLE_HEADER);
            self.rows[..kept.rows].iter().for_each(|r| out.push_str(r));
            out.push('\n');
            self.details[..kept.details]
                .iter()
                .for_each(|d| out.push_str(d));
        }
        self.errors[..kept.errors]
            .iter()
            .for_each(|e| out.push_str(e));
        if kept.warnings {
            out.push_str(&self.warnings);
        }
        out.push_str(&self.footer);
        out
    }
}

fn head(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### bbsync plan\n");
    let _ = writeln!(out, "**{}**\n", summary_line(&plan.summary));
    let deletions = plan.summary.delete + plan.summary.replace;
    if deletions > 0 {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> This plan **deletes {deletions} integration(s)** (replaces included). Review them before applying.\n"
        );
    }
    if plan.has_errors() {
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> Some projects could not be planned; `apply` will not touch them.\n"
        );
    }
    if plan.partial {
        let _ = writeln!(
            out,
            "_Partial plan: only the projects given with `--project`._\n"
        );
    }
    out
}

fn row(action: &Action) -> String {
    let flag = match action.action {
        ActionKind::Delete | ActionKind::Replace => ":warning:",
        ActionKind::Error => ":x:",
        ActionKind::Blocked => ":lock:",
        ActionKind::Create => ":heavy_plus_sign:",
        _ => ":pencil2:",
    };
    let kind = action.kind.map(|k| format!("`{k}`")).unwrap_or_default();
    let action_word = match action.action {
        ActionKind::Delete | ActionKind::Replace => format!("**{}**", action.action.as_str()),
        other => other.as_str().to_owned(),
    };
    format!(
        "| {flag} | `{}` | {action_word} | {kind} | {} |\n",
        action.project,
        escape(action.reason.as_deref().unwrap_or(""))
    )
}

fn details(action: &Action) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code>: {} ({} field{})</summary>\n",
        action.project,
        action.action.as_str(),
        action.fields.len(),
        if action.fields.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "| Field | Live | Manifest |");
    let _ = writeln!(out, "|---|---|---|");
    for change in &action.fields {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | `{}` |",
            change.name,
            escape(&show(change.before.as_ref())),
            escape(&change.after.to_string())
        );
    }
    if let Some(after) = &action.after {
        let sent = if action.send_credentials {
            "sent"
        } else {
            "not sent"
        };
        let _ = writeln!(
            out,
            "| `{}` | _write-only_ | `{}` ({sent}) |",
            after.secret.field.name(),
            after.secret.reference()
        );
    }
    let _ = writeln!(out, "\n</details>\n");
    out
}

fn warnings(warnings: &[String]) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n<details><summary>{} warning(s)</summary>\n",
        warnings.len()
    );
    for warning in warnings {
        let _ = writeln!(out, "- {}", escape(warning));
    }
    let _ = writeln!(out, "\n</details>");
    out
}

/// What a shortened rendering left out, and where to see everything.
fn shortened_note(limit: usize, parts: &Parts, kept: &Kept) -> String {
    let mut left_out = Vec::new();
    let mut count = |kept: usize, all: usize, what: &str| {
        if kept < all {
            left_out.push(format!("{} of {all} {what}", all - kept));
        }
    };
    count(kept.rows, parts.rows.len(), "action rows");
    count(kept.errors, parts.errors.len(), "errors");
    count(kept.details, parts.details.len(), "field diffs");
    if !kept.warnings {
        left_out.push("the warnings".to_owned());
    }
    format!(
        "> [!NOTE]\n> Shortened to fit {limit} characters: {} not shown. `bbsync plan` (text or `--format json`) shows the whole plan.\n\n",
        left_out.join(", ")
    )
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
