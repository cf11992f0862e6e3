//! The Markdown rendering of a plan, ready to post as a pull-request comment.
//!
//! Project IDs, field values, reasons and errors can hold live text from the API, so none of
//! it is written as it is: a value is one code span fenced longer than any backtick run in it
//! ([`code`]), prose keeps its code spans but has everything else that Markdown or HTML would
//! read escaped ([`prose`]), text inside HTML is entity-escaped ([`html`]), a table cell has
//! its `|` escaped ([`cell`]), and line breaks and control characters are made visible
//! everywhere ([`visible`]).
//!
//! Two flavours ([`Flavor`]). The default, [`Flavor::Bitbucket`], is plain CommonMark plus pipe
//! tables, which Bitbucket Cloud and Data Center render in pull-request comments: no HTML
//! (Data Center escapes every HTML tag and Cloud runs Markdown in safe mode: Atlassian's
//! "Markdown syntax guide" for Bitbucket Data Center, and bitbucket.org/tutorials/markdowndemo),
//! no GitHub alerts (`[!WARNING]` is GitHub's alone), and emoji as Unicode characters rather
//! than `:shortcodes:` (inferred: neither guide documents shortcodes; a character needs no
//! support). Pipe tables: inferred from both products' guides, which build on CommonMark "with a
//! few extensions"; the test renders the output through pulldown-cmark with tables on, and
//! checks that no HTML and no alert syntax is left. [`Flavor::Github`] keeps collapsible
//! `<details>` blocks, `<sub>` and alerts for GitHub.

use std::fmt::Write as _;

use super::text::summary_line;
use super::{show, visible};
use crate::plan::{Action, ActionKind, Plan};

/// The default `--markdown-limit`: GitHub refuses a comment over 65,536 characters, and a CI
/// step may add a header of its own.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// Which Markdown to write (`--markdown-flavor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// CommonMark with pipe tables and Unicode emoji: renders in Bitbucket Cloud and Data
    /// Center comments (and on GitHub, plainly).
    #[default]
    #[value(alias = "commonmark")]
    Bitbucket,
    /// GitHub's richer form: alerts, collapsible details, `<sub>`.
    Github,
}

impl Flavor {
    fn github(self) -> bool {
        self == Flavor::Github
    }

    /// An emoji: a GitHub shortcode, or the Unicode character.
    fn emoji(self, name: &'static str) -> &'static str {
        if self.github() {
            return match name {
                "siren" => ":rotating_light:",
                "warning" => ":warning:",
                "x" => ":x:",
                "lock" => ":lock:",
                "plus" => ":heavy_plus_sign:",
                "info" => ":information_source:",
                _ => ":pencil2:",
            };
        }
        match name {
            "siren" => "\u{1f6a8}",
            "warning" => "\u{26a0}\u{fe0f}",
            "x" => "\u{274c}",
            "lock" => "\u{1f512}",
            "plus" => "\u{2795}",
            "info" => "\u{2139}\u{fe0f}",
            _ => "\u{270f}\u{fe0f}",
        }
    }

    /// A call-out: a GitHub alert, or a quoted paragraph led by an emoji and a bold word.
    fn alert(self, kind: &'static str, text: &str) -> String {
        if self.github() {
            let tag = match kind {
                "warning" | "siren" => "WARNING",
                "x" => "CAUTION",
                "lock" => "IMPORTANT",
                _ => "NOTE",
            };
            return format!("> [!{tag}]\n> {text}\n\n");
        }
        let word = match kind {
            "warning" => "Warning",
            "siren" => "Environments",
            "x" => "Caution",
            "lock" => "Blocked",
            _ => "Note",
        };
        format!("> {} **{word}:** {text}\n\n", self.emoji(kind))
    }
}

/// The plan as Markdown: a summary, a table of actions (deletes flagged), and details per
/// project. Never shortened; see [`plan_markdown_within`].
pub fn plan_markdown(plan: &Plan, flavor: Flavor) -> String {
    plan_markdown_within(plan, None, flavor)
}

/// The plan as Markdown in at most `limit` characters, so that it can still be posted as a
/// pull-request comment for a large organization. The summary, the alerts and the footer are
/// always kept; then, while they fit, the rows of the action table in plan order (errors,
/// blocked, deletes and replaces first), plan-level errors, the per-project field diffs, and the
/// warnings. A note under the summary says what was left out.
pub fn plan_markdown_within(plan: &Plan, limit: Option<usize>, flavor: Flavor) -> String {
    let parts = Parts::of(plan, flavor);
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
    let note = shortened_note(limit, &parts, &kept, flavor);
    parts.assemble(&kept, Some(&note))
}

/// Characters kept free for the note about what was left out.
const NOTE_ROOM: usize = 400;

const TABLE_HEADER: &str =
    "| | Project | Repository | Action | Type | Why |\n|---|---|---|---|---|---|\n";

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
    fn of(plan: &Plan, flavor: Flavor) -> Self {
        let shown: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| a.action != ActionKind::Noop)
            .collect();
        Self {
            head: head(plan, flavor),
            rows: shown.iter().map(|action| row(action, flavor)).collect(),
            details: shown
                .iter()
                .filter(|a| !a.fields.is_empty() || a.action == ActionKind::Delete)
                .map(|action| details(action, flavor))
                .collect(),
            errors: plan
                .errors
                .iter()
                .map(|error| format!("- {} {}\n", flavor.emoji("x"), prose(error)))
                .collect(),
            warnings: warnings(&plan.warnings, flavor),
            footer: footer(plan, flavor),
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

fn footer(plan: &Plan, flavor: Flavor) -> String {
    let version = escape_text(&visible(&plan.bbsync_version), false);
    let digest = code(
        plan.manifest_digest
            .get(..19)
            .unwrap_or(&plan.manifest_digest),
    );
    if flavor.github() {
        format!("\n<sub>bbsync {version} · manifest {digest}</sub>\n")
    } else {
        format!("\n_bbsync {version} · manifest {digest}_\n")
    }
}

fn head(plan: &Plan, flavor: Flavor) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### bbsync plan\n");
    let _ = writeln!(out, "**{}**\n", summary_line(&plan.summary));
    let deletions = plan.summary.delete + plan.summary.replace;
    let environments = plan
        .actions
        .iter()
        .filter(|a| crate::render::text::environment_line(a).is_some())
        .count();
    if environments > 0 {
        out.push_str(&flavor.alert(
            "siren",
            &format!(
                "Platform.sh **may delete environments, with their data,** in {environments} project(s): see the rows marked {}.",
                flavor.emoji("siren")
            ),
        ));
    }
    if deletions > 0 {
        out.push_str(&flavor.alert(
            "warning",
            &format!("This plan **deletes {deletions} integration(s)** (replaces included). Review them before applying."),
        ));
    }
    if plan.summary.blocked > 0 {
        out.push_str(&flavor.alert(
            "lock",
            &format!(
                "**{} action(s) are blocked** (`protect`, a guard): bbsync will not make them, and `apply` exits 3 until the block is lifted.",
                plan.summary.blocked
            ),
        ));
    }
    if plan.has_errors() {
        out.push_str(&flavor.alert(
            "x",
            "Some projects could not be planned; `apply` will not touch them.",
        ));
    }
    if plan.partial {
        let _ = writeln!(
            out,
            "_Partial plan: only the projects given with `--project`._\n"
        );
    }
    out
}

/// The repository an action is about: `workspace/slug`, or `URL PROJECT/slug` on a Server.
fn repository(action: &Action) -> String {
    let described = crate::render::text::describe(action);
    described
        .split_once(' ')
        .map_or(String::new(), |(_, repository)| repository.to_owned())
}

fn row(action: &Action, flavor: Flavor) -> String {
    let environments = crate::render::text::environment_line(action);
    let flag = flavor.emoji(match action.action {
        _ if environments.is_some() => "siren",
        ActionKind::Delete | ActionKind::Replace => "warning",
        ActionKind::Error => "x",
        ActionKind::Blocked => "lock",
        ActionKind::Create => "plus",
        _ => "pencil",
    });
    let kind = action.kind.map(|k| format!("`{k}`")).unwrap_or_default();
    let action_word = match action.action {
        ActionKind::Delete | ActionKind::Replace | ActionKind::Blocked => {
            format!("**{}**", action.action.as_str())
        }
        other => other.as_str().to_owned(),
    };
    let repository = repository(action);
    let repository = if repository.is_empty() {
        String::new()
    } else {
        cell(&code(&repository))
    };
    let mut reason = cell(&prose(action.reason.as_deref().unwrap_or("")));
    if let Some(line) = environments {
        if !reason.is_empty() {
            reason.push(' ');
        }
        reason.push_str(&format!(
            "**{}**",
            cell(&prose(line.trim_start_matches("! ")))
        ));
    }
    let mut project = cell(&code(action.project.as_str()));
    if let Some(title) = &action.title {
        // Live text: escaped as prose is, never markup.
        project.push_str(&format!(
            " ({})",
            cell(&escape_text(&visible(title), false))
        ));
    }
    format!("| {flag} | {project} | {repository} | {action_word} | {kind} | {reason} |\n")
}

fn details(action: &Action, flavor: Flavor) -> String {
    let mut out = String::new();
    let live = action.before.as_ref().map(|b| &b.fields);
    let count = if action.action == ActionKind::Delete {
        live.map_or(0, |l| l.len())
    } else {
        action.fields.len()
    };
    let plural = if count == 1 { "" } else { "s" };
    if flavor.github() {
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code>: {} ({count} field{plural})</summary>\n",
            html(action.project.as_str()),
            action.action.as_str(),
        );
    } else {
        let _ = writeln!(
            out,
            "**{}**: {} ({count} field{plural})\n",
            code(action.project.as_str()),
            action.action.as_str(),
        );
    }
    let _ = writeln!(out, "| Field | Live | Manifest |");
    let _ = writeln!(out, "|---|---|---|");
    if action.action == ActionKind::Delete {
        // What is going away: the live integration, field by field.
        for (field, value) in live.into_iter().flatten() {
            let _ = writeln!(
                out,
                "| {} | {} | _deleted_ |",
                cell(&code(field.name())),
                cell(&code(&value.to_string())),
            );
        }
    }
    for change in &action.fields {
        // A replace plans from scratch; its live side is the integration it replaces.
        let before = change
            .before
            .as_ref()
            .or_else(|| live.and_then(|l| l.get(&change.name)));
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(&code(change.name.name())),
            cell(&code(&show(before))),
            cell(&code(&change.after.to_string()))
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
            "| {} | _write-only_ | {} ({sent}) |",
            cell(&code(after.secret.field.name())),
            cell(&code(&after.secret.reference()))
        );
    }
    if flavor.github() {
        let _ = writeln!(out, "\n</details>\n");
    } else {
        out.push('\n');
    }
    out
}

fn warnings(warnings: &[String], flavor: Flavor) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    if flavor.github() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} warning(s)</summary>\n",
            warnings.len()
        );
    } else {
        let _ = writeln!(out, "\n**{} warning(s)**\n", warnings.len());
    }
    for warning in warnings {
        let _ = writeln!(out, "- {}", prose(warning));
    }
    if flavor.github() {
        let _ = writeln!(out, "\n</details>");
    }
    out
}

/// What a shortened rendering left out, and where to see everything.
fn shortened_note(limit: usize, parts: &Parts, kept: &Kept, flavor: Flavor) -> String {
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
    flavor.alert(
        "info",
        &format!(
            "Shortened to fit {limit} characters: {} not shown. `bbsync plan` (text or `--format json`) shows the whole plan.",
            left_out.join(", ")
        ),
    )
}

/// `text` as one inline code span that nothing in it can end: fenced by one backtick more than
/// its longest run of backticks, padded with a space where CommonMark would otherwise strip one
/// or read a backtick as part of the fence, with line breaks and control characters made
/// visible (a code span cannot hold a line break, and a table row ends at one).
fn code(text: &str) -> String {
    let text = visible(text);
    if text.is_empty() {
        return "` `".to_owned();
    }
    let fence = "`".repeat(longest_run(&text, '`') + 1);
    let pad = text.starts_with('`')
        || text.ends_with('`')
        || (text.starts_with(' ') && text.ends_with(' ') && text.contains(|c| c != ' '));
    let pad = if pad { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn longest_run(text: &str, c: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for ch in text.chars() {
        run = if ch == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// Text for inside HTML (the `<summary>` of a details block): entities for `&`, `<`, `>` and
/// quotes, line breaks and control characters made visible (a blank line would end the HTML
/// block and let the rest be read as Markdown).
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in visible(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Inline Markdown in a table cell: every `|` escaped, since GitHub splits a row at any
/// unescaped `|`, inside a code span too (where `\|` shows as `|`).
fn cell(markdown: &str) -> String {
    markdown.replace('|', "\\|")
}

/// A sentence of the planner's (a reason, an error, a warning) as inline Markdown. Its code
/// spans, read as CommonMark reads them, stay code spans, each rewritten by [`code`]; the text
/// between them has everything escaped that Markdown or HTML could read as markup (emphasis,
/// links, images, HTML, entities, math, a leading block marker). Live values quoted in the
/// sentence may hold backticks, so which words end up in code can differ from the planner's
/// intent; what is written is still only text and code spans.
fn prose(text: &str) -> String {
    let text = visible(text);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut plain = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            plain.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        match closing_run(&chars, i + run, run) {
            Some(end) => {
                out.push_str(&escape_text(&plain, out.is_empty()));
                plain.clear();
                let content: String = chars[i + run..end].iter().collect();
                out.push_str(&code(code_content(&content)));
                i = end + run;
            }
            None => {
                plain.extend(std::iter::repeat_n('`', run));
                i += run;
            }
        }
    }
    out.push_str(&escape_text(&plain, out.is_empty()));
    out
}

/// Where the run of exactly `run` backticks that closes a code span opened before `from`
/// starts, if there is one.
fn closing_run(chars: &[char], from: usize, run: usize) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        if chars[j] == '`' {
            let length = chars[j..].iter().take_while(|c| **c == '`').count();
            if length == run {
                return Some(j);
            }
            j += length;
        } else {
            j += 1;
        }
    }
    None
}

/// What a code span shows: CommonMark strips one space from each end when both are spaces and
/// the content is not only spaces.
fn code_content(content: &str) -> &str {
    if content.len() >= 2
        && content.starts_with(' ')
        && content.ends_with(' ')
        && content.contains(|c| c != ' ')
    {
        &content[1..content.len() - 1]
    } else {
        content
    }
}

/// Plain text with Markdown's markup characters backslash-escaped. `leading`: the text starts
/// a list item or a cell, where `#`, `>`, `-`, `+`, `=` or `1.` would begin a block.
fn escape_text(text: &str, leading: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '<' | '>' | '&' | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    if leading {
        if out.starts_with(['#', '-', '+', '=']) {
            out.insert(0, '\\');
        } else if let Some(digits) = out.find(|c: char| !c.is_ascii_digit())
            && digits > 0
            && out[digits..].starts_with(['.', ')'])
        {
            out.insert(digits, '\\');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::FieldValue;
    use crate::render::tests::{Hostile, arb_hostile, hostile_plan, raw_unsafe};

    #[test]
    fn code_spans_outlast_the_backticks_inside() {
        assert_eq!(code("acme/web"), "`acme/web`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("a``b`"), "``` a``b` ```");
        assert_eq!(code("`"), "`` ` ``");
        assert_eq!(code(" a "), "`  a  `");
        assert_eq!(code("  "), "`  `");
        assert_eq!(code(""), "` `");
        assert_eq!(code("a\nb\u{1b}[31m"), r"`a\nb\u{1b}[31m`");
        assert_eq!(cell(&code("a|b")), r"`a\|b`");
        assert_eq!(html("<b>&\"'\n"), r"&lt;b&gt;&amp;&quot;&#39;\n");
    }

    #[test]
    fn prose_keeps_its_code_spans_and_escapes_the_rest() {
        // The planner's sentences render as before.
        for text in [
            "`absent: true`",
            "not in the manifest, and `prune: true` for organization `org1`",
            "3 field(s) differ; credentials are sent because `app_credentials.key` changed",
        ] {
            assert_eq!(prose(text), text);
        }
        assert_eq!(prose("a `b` c ` d"), r"a `b` c \` d");
        assert_eq!(prose("x ``a`b`` y"), "x ``a`b`` y");
        assert_eq!(prose("`` `a` ``"), "`` `a` ``");
        assert_eq!(
            prose("<img src=x> *b* _i_ [l](u) &amp; $m$ ~~s~~ \\"),
            r"\<img src=x\> \*b\* \_i\_ \[l\](u) \&amp; \$m\$ \~\~s\~\~ \\"
        );
        assert_eq!(prose("# h"), r"\# h");
        assert_eq!(prose("- x"), r"\- x");
        assert_eq!(prose("12. x"), r"12\. x");
        assert_eq!(prose("a\nb\r\u{1b}[2J"), r"a\\nb\\r\\u{1b}\[2J");
    }

    /// Splits a table row into its cells at the unescaped `|`, and unescapes `\|` in them, as
    /// GitHub (cmark-gfm) does before reading a cell's inline content: only `\|` is an escape
    /// there, a `\\` before it is not.
    fn cells(row: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut chars = row.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'|') => {
                    cells.last_mut().unwrap().push('|');
                    chars.next();
                }
                '|' => cells.push(String::new()),
                c => cells.last_mut().unwrap().push(c),
            }
        }
        assert!(
            cells.first().is_some_and(String::is_empty)
                && cells.last().is_some_and(|c| c.trim().is_empty()),
            "{row}"
        );
        cells[1..cells.len() - 1]
            .iter()
            .map(|c| c.trim().to_owned())
            .collect()
    }

    /// The code spans of `inline`, after checking that it holds only text and code spans: each
    /// backtick run opens a span that a run of the same length closes, and outside them every
    /// markup character is escaped.
    fn code_spans(inline: &str) -> Vec<String> {
        let chars: Vec<char> = inline.chars().collect();
        let mut spans = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\\' => i += 2,
                '`' => {
                    let run = chars[i..].iter().take_while(|c| **c == '`').count();
                    let end = closing_run(&chars, i + run, run)
                        .unwrap_or_else(|| panic!("a backtick run with no end: {inline}"));
                    let content: String = chars[i + run..end].iter().collect();
                    spans.push(code_content(&content).to_owned());
                    i = end + run;
                }
                c @ ('*' | '_' | '~' | '[' | ']' | '<' | '>' | '&' | '$') => {
                    panic!("an unescaped `{c}` outside code: {inline}")
                }
                _ => i += 1,
            }
        }
        spans
    }

    /// The shown form of `text` in a code span.
    fn shown(text: &str) -> String {
        let text = visible(text);
        if text.is_empty() {
            " ".to_owned()
        } else {
            text.into_owned()
        }
    }

    /// Every row keeps its cells, every live value stays inside its code span (or is escaped
    /// text), and nothing leaves the `<summary>`.
    fn assert_contained(h: &Hostile) {
        let plan = hostile_plan(h);
        let markdown = plan_markdown(&plan, Flavor::Github);
        assert!(raw_unsafe(&markdown).is_empty(), "{markdown:?}");
        let mut project_cells = 0;
        let mut key_rows = 0;
        for line in markdown.lines() {
            if line.starts_with("| :") {
                let cells = cells(line);
                assert_eq!(cells.len(), 6, "{line}\n{markdown}");
                let projects = code_spans(&cells[1]);
                assert_eq!(projects.len(), 1, "{line}");
                code_spans(&cells[2]);
                code_spans(&cells[5]);
                if projects[0] == shown(&h.project) {
                    project_cells += 1;
                }
            } else if line.starts_with("| `") {
                let cells = cells(line);
                assert_eq!(cells.len(), 3, "{line}\n{markdown}");
                for cell in cells
                    .iter()
                    .filter(|c| !["_write-only_", "_deleted_"].contains(&c.as_str()))
                {
                    code_spans(
                        cell.trim_end_matches(" (sent)")
                            .trim_end_matches(" (not sent)"),
                    );
                }
                if cells[0] == "`app_credentials.key`" && cells[2] != "_deleted_" {
                    let live = show(Some(&FieldValue::Text(h.key.clone())));
                    assert_eq!(code_spans(&cells[1]), [shown(&live)], "{line}");
                    key_rows += 1;
                }
            } else if let Some(summary) = line.strip_prefix("<details><summary><code>") {
                let (project, rest) = summary.split_once("</code>").expect("one code element");
                assert!(!project.contains(['<', '>', '"']), "{line}");
                assert!(
                    !rest.contains(['<', '>']) || rest.ends_with("</summary>"),
                    "{line}"
                );
            } else if let Some(item) = line.strip_prefix("- ") {
                code_spans(item.strip_prefix(":x: ").unwrap_or(item));
            } else if line.starts_with('|') {
                assert!(
                    [
                        "| | Project | Repository | Action | Type | Why |",
                        "|---|---|---|---|---|---|",
                        "| Field | Live | Manifest |",
                        "|---|---|---|"
                    ]
                    .contains(&line),
                    "{line}\n{markdown}"
                );
            }
        }
        let pruned = !["web", "gone", "unknown", "double", "later"].contains(&h.project.as_str());
        assert_eq!(project_cells, usize::from(pruned), "{markdown}");
        assert_eq!(key_rows, usize::from(h.key != "new-key"), "{markdown}");
    }

    /// Backticks, `|`, line breaks, ANSI sequences and HTML in live values.
    #[test]
    fn hostile_live_values_stay_in_their_code_spans_and_cells() {
        for text in [
            "x`y``z|w\n# h\r\u{1b}[31mred\u{1b}]0;t\u{7}<img src=x>*b*_i_[l](u)&amp;$m$\u{2028}\u{85}\u{202e}|",
            "`",
            "``",
            " ` ",
            "| :x: | `p` | error |  | pwned |\n| :x: | `q`",
            "</code></summary>\n\n# Approved\n\n<details><summary>",
            "\u{1b}[2J\u{1b}[H No changes",
        ] {
            assert_contained(&Hostile::all(text));
        }
    }

    proptest! {
        #[test]
        fn any_live_text_stays_in_its_code_spans_and_cells(h in arb_hostile()) {
            assert_contained(&h);
        }
    }
}
