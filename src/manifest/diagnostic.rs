//! Located problems (errors and warnings) in manifest files, and their rendering.
//!
//! A [`Diagnostic`] is plain data, so the pure layers (`manifest`, `model`) can produce it. It is
//! rendered once, at the top, by miette's graphical handler: the file:line:column, the offending
//! line with a caret, and a `help:` line saying what to do.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use crate::manifest::node::Position;

/// One manifest file's text, shared by every diagnostic that points into it.
#[derive(Debug)]
pub struct SourceFile {
    name: String,
    text: Arc<str>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// A file named `name` (as the user gave its path) holding `text`.
    pub(crate) fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The file's name, as the user gave it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The file's text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The byte offset of a 1-based line and character column, clamped to the text.
    pub(crate) fn offset(&self, position: Position) -> usize {
        let line = (position.line.max(1) - 1) as usize;
        let Some(&start) = self.line_starts.get(line) else {
            return self.text.len();
        };
        let skip = (position.column.max(1) - 1) as usize;
        self.text[start..]
            .char_indices()
            .nth(skip)
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// The length in bytes of the token that starts at `position`: a key up to its colon, a
    /// scalar up to a comment or the end of its line; at least 1.
    pub(crate) fn token_length(&self, position: Position) -> usize {
        let start = self.offset(position);
        let rest = &self.text[start..];
        let line = rest.split('\n').next().unwrap_or("");
        let mut end = line.len();
        if let Some(i) = line.find(" #") {
            end = end.min(i);
        }
        if let Some(i) = line
            .find(": ")
            .or_else(|| line.strip_suffix(':').map(str::len))
        {
            end = end.min(i);
        }
        line[..end].trim_end().len().max(1)
    }
}

/// A place in a manifest file.
#[derive(Debug, Clone)]
pub struct Location {
    /// The file.
    pub file: Arc<SourceFile>,
    /// Where in the file.
    pub position: Position,
}

impl Location {
    /// A place in `file`.
    pub(crate) fn new(file: &Arc<SourceFile>, position: Position) -> Self {
        Self {
            file: Arc::clone(file),
            position,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.name(), self.position)
    }
}

impl PartialEq for Location {
    fn eq(&self, other: &Self) -> bool {
        self.file.name() == other.file.name() && self.position == other.position
    }
}

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The manifest cannot be used.
    Error,
    /// The manifest can be used, but something deserves a look.
    Warning,
}

/// A problem found in a manifest, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong: lowercase, no trailing period, values in backticks.
    pub message: String,
    /// Where, when known.
    pub location: Option<Location>,
    /// A short label under the caret.
    pub label: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
    /// A second place involved (for example the first definition of a duplicate).
    pub related: Option<(Location, String)>,
}

impl Diagnostic {
    /// An error at `location`.
    pub(crate) fn error(location: Option<Location>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            location,
            label: None,
            help: None,
            related: None,
        }
    }

    /// A warning at `location`.
    pub(crate) fn warning(location: Option<Location>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(location, message)
        }
    }

    /// Adds a `help:` line.
    #[must_use]
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error.
    pub(crate) fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic: a `file:line:column` header, the source line with a caret, and
    /// the help, as miette draws it. `color` picks ANSI styling.
    pub(crate) fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false)
            .with_wrap_lines(false)
            .with_context_lines(1);
        let mut out = String::new();
        let header = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.location {
            Some(location) => {
                out.push_str(&format!("{header}: {location}: {}\n", self.message));
            }
            None => out.push_str(&format!("{header}: {}\n", self.message)),
        }
        if self.location.is_some() {
            let view = MietteView::new(self);
            out.push_str(&snippet(&handler, &view));
        } else if let Some(help) = &self.help {
            out.push_str(&format!("  help: {help}\n"));
        }
        if let Some((location, label)) = &self.related
            && self.location.as_ref().map(|l| &l.file.name) != Some(&location.file.name)
        {
            let view = MietteView::related(location, label);
            out.push_str(&snippet(&handler, &view));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// miette's drawing without its first line, which repeats the message the header already gave.
fn snippet(handler: &GraphicalReportHandler, view: &MietteView) -> String {
    let mut drawn = String::new();
    if handler.render_report(&mut drawn, view).is_err() {
        return "  (the source snippet could not be drawn)\n".to_owned();
    }
    match drawn.split_once('\n') {
        Some((_, rest)) => rest.to_owned(),
        None => drawn,
    }
}

/// Adapts a [`Diagnostic`] to miette's report trait, for drawing only.
struct MietteView {
    message: String,
    severity: miette::Severity,
    source: NamedSource<Arc<str>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl MietteView {
    fn new(diagnostic: &Diagnostic) -> Self {
        let location = diagnostic.location.as_ref().expect("checked by caller");
        let mut labels = vec![span(location, diagnostic.label.clone(), true)];
        if let Some((related, label)) = &diagnostic.related
            && related.file.name() == location.file.name()
        {
            labels.push(span(related, Some(label.clone()), false));
        }
        Self {
            message: diagnostic.message.clone(),
            severity: match diagnostic.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            source: named(location),
            labels,
            help: diagnostic.help.clone(),
        }
    }

    fn related(location: &Location, label: &str) -> Self {
        Self {
            message: format!("{location}: {label}"),
            severity: miette::Severity::Advice,
            source: named(location),
            labels: vec![span(location, Some(label.to_owned()), true)],
            help: None,
        }
    }
}

fn named(location: &Location) -> NamedSource<Arc<str>> {
    NamedSource::new(location.file.name(), Arc::clone(&location.file.text))
}

fn span(location: &Location, label: Option<String>, primary: bool) -> LabeledSpan {
    let offset = location.file.offset(location.position);
    let length = location.file.token_length(location.position);
    let span = SourceSpan::new(offset.into(), length);
    if primary {
        LabeledSpan::new_primary_with_span(label, span)
    } else {
        LabeledSpan::new_with_span(label, span)
    }
}

impl fmt::Debug for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteView {}

impl miette::Diagnostic for MietteView {
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters_not_bytes() {
        let file = SourceFile::new("f.yaml", "a: 1\nné: x\n");
        assert_eq!(file.offset(Position { line: 2, column: 1 }), 5);
        assert_eq!(file.offset(Position { line: 2, column: 3 }), 8);
        assert_eq!(
            file.offset(Position { line: 9, column: 1 }),
            file.text().len()
        );
    }

    #[test]
    fn token_length_stops_at_colon_and_comment() {
        let file = SourceFile::new("f.yaml", "fetch_branch: true # c\nkey: value # c\n");
        assert_eq!(file.token_length(Position { line: 1, column: 1 }), 12);
        assert_eq!(file.token_length(Position { line: 2, column: 6 }), 5);
    }

    #[test]
    fn render_names_file_line_and_column() {
        let file = Arc::new(SourceFile::new("m.yaml", "version: 1\nfoo: 2\n"));
        let d = Diagnostic::error(
            Some(Location::new(&file, Position { line: 2, column: 1 })),
            "unknown field `foo`",
        )
        .with_help("remove it");
        let text = d.render(false);
        assert!(
            text.starts_with("error: m.yaml:2:1: unknown field `foo`"),
            "{text}"
        );
        assert!(text.contains("help: remove it"), "{text}");
        assert!(text.contains("foo: 2"), "{text}");
    }
}
