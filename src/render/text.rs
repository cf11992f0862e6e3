//! The text rendering of a plan, for a terminal. Project IDs, integration IDs, field values,
//! reasons, errors and warnings can hold live text from the API: none of it reaches the
//! terminal with its line breaks or control characters ([`visible`]), so a live value can
//! neither forge a line of the plan nor drive the terminal (colors, cursor, title).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::{show, visible};
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
pub(crate) fn describe(action: &Action) -> String {
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
            "\n{} {}",
            painter.kind(ActionKind::Error, "error:"),
            visible(error)
        );
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for warning in &plan.warnings {
            let _ = writeln!(out, "  - {}", visible(warning));
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
        .map(|b| format!(" (integration {})", visible(b.id.as_str())))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {}  {}{}",
        painter.kind(action.action, &head),
        painter.paint(Style::new().bold(), &visible(action.project.as_str())),
        visible(&describe(action)),
        painter.dim(&id)
    );
    if let Some(reason) = &action.reason {
        let _ = writeln!(out, "      {}", painter.dim(&visible(reason)));
    }
    if let Some(line) = environment_line(action) {
        let warn = Style::new()
            .bold()
            .fg_color(Some(anstyle::AnsiColor::Red.into()));
        let _ = writeln!(out, "      {}", painter.paint(warn, &visible(&line)));
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
                // Text values are shown quoted and escaped already; `visible` is the backstop.
                let after = visible(&change.after.to_string()).into_owned();
                let line = match action.action {
                    ActionKind::Update => {
                        let before = visible(&show(change.before.as_ref())).into_owned();
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
                    visible(&after.secret.reference()),
                    painter.dim(note)
                );
            }
        }
        _ => {}
    }
}

/// The line that says which environments Platform.sh would delete at the first fetch this
/// action causes, if any (or that it is unknown).
pub(crate) fn environment_line(action: &Action) -> Option<String> {
    let deletions = action.environment_deletions.as_ref()?;
    let repository = describe(action);
    let repository = repository
        .split_once(' ')
        .map_or(repository.as_str(), |(_, r)| r);
    if !deletions.known {
        return Some(format!(
            "! Platform.sh may delete environments when it first fetches {repository}, and which is unknown: {}",
            deletions.reason.as_deref().unwrap_or("not read")
        ));
    }
    let names = deletions.names();
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "! Platform.sh will delete {} environment{} when it first fetches {repository}: {} (no branch of that name)",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ))
}

fn render_deferred(out: &mut String, after: &DesiredIntegration, width: usize) {
    for (field, template) in &after.deferred {
        let _ = writeln!(
            out,
            "      {:<width$}  {} (its variable is not set; not compared)",
            format!("{}:", field.name()),
            visible(&template.to_string())
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::render::tests::{Hostile, arb_hostile, hostile_plan, raw_unsafe, unpainted};

    /// What a line of the text plan starts with; a live value cannot begin a line of its own.
    const LINE_STARTS: [&str; 7] = [
        "Plan: ",
        "(partial",
        "  ",
        "-/+",
        "error: ",
        "Warnings:",
        "No changes:",
    ];

    fn assert_escaped(h: &Hostile) {
        let plan = hostile_plan(h);
        for color in [false, true] {
            let text = plan_text(&plan, Painter::new(color), true);
            let plain = unpainted(&text);
            assert!(raw_unsafe(&plain).is_empty(), "{text:?}");
            for line in plain.lines().filter(|l| !l.is_empty()) {
                assert!(
                    LINE_STARTS.iter().any(|start| line.starts_with(start)),
                    "a line the plan did not write: {line:?}\n{plain}"
                );
            }
        }
        let text = plan_text(&plan, Painter::new(false), true);
        let pruned = !["web", "gone", "unknown", "double", "later"].contains(&h.project.as_str());
        if pruned {
            let line = format!(
                "  - delete   {}  bitbucket {}",
                visible(&h.project),
                visible(&h.repository)
            );
            assert!(text.contains(&line), "{line:?} in\n{text}");
        }
    }

    /// ANSI sequences (colors, clearing the screen, the window title), carriage returns and
    /// line breaks in live values are shown as escapes, never sent to the terminal.
    #[test]
    fn hostile_live_values_reach_the_terminal_escaped() {
        for text in [
            "x\r  + create   victim\n\u{1b}[2J\u{1b}[H\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{9b}31m\u{85}\u{2028}\u{202e}|`",
            "\n\nNo changes: the live integrations match the manifest.",
            "\u{8}\u{8}\u{8}",
        ] {
            assert_escaped(&Hostile::all(text));
        }
    }

    proptest! {
        #[test]
        fn any_live_text_reaches_the_terminal_escaped(h in arb_hostile()) {
            assert_escaped(&h);
        }
    }
}
