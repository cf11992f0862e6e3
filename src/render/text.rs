//! The text rendering of a plan.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::show;
use crate::model::DesiredIntegration;
use crate::plan::{Action, ActionKind, Plan, Summary};

/// Applies ANSI styles when color is on, nothing otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Painter {
    color: bool,
}

impl Painter {
    /// A painter; `color` decides whether styles are emitted.
    pub fn new(color: bool) -> Self {
        Self { color }
    }

    /// `text` in `style`.
    pub(crate) fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }

    fn kind(&self, kind: ActionKind, text: &str) -> String {
        let color = match kind {
            ActionKind::Create => AnsiColor::Green,
            ActionKind::Update => AnsiColor::Yellow,
            ActionKind::Delete | ActionKind::Error => AnsiColor::Red,
            ActionKind::Replace | ActionKind::Blocked => AnsiColor::Magenta,
            ActionKind::Noop => AnsiColor::BrightBlack,
        };
        self.paint(Style::new().fg_color(Some(color.into())).bold(), text)
    }

    fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }
}

/// "Plan: 2 to create, 1 to update, 1 to delete, 1 to replace, 12 unchanged, 1 blocked, 0 errors".
pub fn summary_line(summary: &Summary) -> String {
    format!(
        "Plan: {} to create, {} to update, {} to delete, {} to replace, {} unchanged, {} blocked, {} error{}",
        summary.create,
        summary.update,
        summary.delete,
        summary.replace,
        summary.unchanged,
        summary.blocked,
        summary.errors,
        if summary.errors == 1 { "" } else { "s" }
    )
}

fn symbol(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Create => "+",
        ActionKind::Update => "~",
        ActionKind::Delete => "-",
        ActionKind::Replace => "-/+",
        ActionKind::Blocked => "!",
        ActionKind::Error => "x",
        ActionKind::Noop => "=",
    }
}

/// What the integration is, in a few words: `bitbucket acme/web`.
fn describe(action: &Action) -> String {
    let fields = action
        .after
        .as_ref()
        .map(|a| &a.fields)
        .or(action.before.as_ref().map(|b| &b.fields));
    let text = |f| match fields.and_then(|m| m.get(&f)) {
        Some(crate::model::FieldValue::Text(s)) => s.clone(),
        _ => String::new(),
    };
    use crate::model::{Field, IntegrationType};
    match action.kind {
        Some(IntegrationType::Bitbucket) => format!("bitbucket {}", text(Field::Repository)),
        Some(IntegrationType::BitbucketServer) => format!(
            "bitbucket_server {} {}/{}",
            text(Field::Url),
            text(Field::Project),
            text(Field::Repository)
        ),
        None => String::new(),
    }
}

/// The plan as text: the summary first, then each action (deletes and replaces first), the
/// changes of each, and the warnings. `verbose` also lists unchanged projects.
pub fn plan_text(plan: &Plan, painter: Painter, verbose: bool) -> String {
    let mut out = String::new();
    let bold = Style::new().bold();
    let _ = writeln!(out, "{}", painter.paint(bold, &summary_line(&plan.summary)));
    if plan.partial {
        let _ = writeln!(
            out,
            "{}",
            painter.dim("(partial plan: only the projects given with --project)")
        );
    }
    let mut first = true;
    for action in &plan.actions {
        if action.action == ActionKind::Noop && !verbose {
            continue;
        }
        if first {
            out.push('\n');
            first = false;
        }
        render_action(&mut out, action, painter);
    }
    for error in &plan.errors {
        let _ = writeln!(
            out,
            "\n{} {error}",
            painter.kind(ActionKind::Error, "error:")
        );
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for warning in &plan.warnings {
            let _ = writeln!(out, "  - {warning}");
        }
    }
    if !plan.has_changes() && !plan.has_errors() && plan.summary.blocked == 0 {
        let _ = writeln!(
            out,
            "\nNo changes: the live integrations match the manifest."
        );
    }
    out
}

fn render_action(out: &mut String, action: &Action, painter: Painter) {
    let head = format!("{:>3} {:<8}", symbol(action.action), action.action.as_str());
    let id = action
        .before
        .as_ref()
        .map(|b| format!(" (integration {})", b.id))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {}  {}{}",
        painter.kind(action.action, &head),
        painter.paint(Style::new().bold(), action.project.as_str()),
        describe(action),
        painter.dim(&id)
    );
    if let Some(reason) = &action.reason {
        let _ = writeln!(out, "      {}", painter.dim(reason));
    }
    match action.action {
        ActionKind::Create | ActionKind::Replace | ActionKind::Update => {
            let secret_name = action
                .after
                .as_ref()
                .map_or(0, |a| a.secret.field.name().len());
            let width = action
                .fields
                .iter()
                .map(|c| c.name.name().len())
                .chain(std::iter::once(secret_name))
                .max()
                .unwrap_or(0)
                + 1;
            for change in &action.fields {
                let after = change.after.to_string();
                let line = match action.action {
                    ActionKind::Update => {
                        let before = show(change.before.as_ref());
                        multiline_diff(&before, &after)
                            .unwrap_or_else(|| format!("{before} -> {after}"))
                    }
                    _ => after,
                };
                let _ = writeln!(out, "      {:<width$}  {line}", format!("{}:", change.name));
            }
            if let Some(after) = &action.after {
                render_deferred(out, after, width);
                let note = if action.send_credentials {
                    "sent (write-only, never compared)"
                } else {
                    "not sent (write-only, never compared)"
                };
                let _ = writeln!(
                    out,
                    "      {:<width$}  {} {}",
                    format!("{}:", after.secret.field.name()),
                    after.secret.reference(),
                    painter.dim(note)
                );
            }
        }
        _ => {}
    }
}

fn render_deferred(out: &mut String, after: &DesiredIntegration, width: usize) {
    for (field, template) in &after.deferred {
        let _ = writeln!(
            out,
            "      {:<width$}  {template} (its variable is not set; not compared)",
            format!("{}:", field.name())
        );
    }
}

/// A unified diff when a value spans lines.
fn multiline_diff(before: &str, after: &str) -> Option<String> {
    if !before.contains("\\n") && !after.contains("\\n") {
        return None;
    }
    let before = before.replace("\\n", "\n");
    let after = after.replace("\\n", "\n");
    let diff = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(2)
        .header("live", "manifest")
        .to_string();
    Some(format!(
        "\n{}",
        diff.lines()
            .map(|l| format!("        {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}
