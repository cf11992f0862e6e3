//! The Markdown rendering of a plan, ready to post as a pull-request comment.

use std::fmt::Write as _;

use super::show;
use super::text::summary_line;
use crate::plan::{ActionKind, Plan};

/// The plan as Markdown: a summary, a table of actions (deletes flagged), and collapsible
/// details per project.
pub fn plan_markdown(plan: &Plan) -> String {
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
    let shown: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.action != ActionKind::Noop)
        .collect();
    if shown.is_empty() && plan.errors.is_empty() {
        let _ = writeln!(out, "No changes: the live integrations match the manifest.");
    } else if !shown.is_empty() {
        let _ = writeln!(out, "| | Project | Action | Type | Why |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for action in &shown {
            let flag = match action.action {
                ActionKind::Delete | ActionKind::Replace => ":warning:",
                ActionKind::Error => ":x:",
                ActionKind::Blocked => ":lock:",
                ActionKind::Create => ":heavy_plus_sign:",
                _ => ":pencil2:",
            };
            let kind = action.kind.map(|k| format!("`{k}`")).unwrap_or_default();
            let action_word = match action.action {
                ActionKind::Delete | ActionKind::Replace => {
                    format!("**{}**", action.action.as_str())
                }
                other => other.as_str().to_owned(),
            };
            let _ = writeln!(
                out,
                "| {flag} | `{}` | {action_word} | {kind} | {} |",
                action.project,
                escape(action.reason.as_deref().unwrap_or(""))
            );
        }
        out.push('\n');
        for action in shown.iter().filter(|a| !a.fields.is_empty()) {
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
        }
    }
    for error in &plan.errors {
        let _ = writeln!(out, "- :x: {}", escape(error));
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} warning(s)</summary>\n",
            plan.warnings.len()
        );
        for warning in &plan.warnings {
            let _ = writeln!(out, "- {}", escape(warning));
        }
        let _ = writeln!(out, "\n</details>");
    }
    let _ = writeln!(
        out,
        "\n<sub>bbsync {} · manifest `{}`</sub>",
        plan.bbsync_version,
        plan.manifest_digest
            .get(..19)
            .unwrap_or(&plan.manifest_digest)
    );
    out
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
