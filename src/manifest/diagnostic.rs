//! Located problems (errors and warnings) in manifest files, and their rendering.
//!
//! A [`Diagnostic`] is plain data, so the pure layers (`manifest`, `model`) can produce it. It is
//! rendered once, at the top, by miette's graphical handler: the file:line:column, the offending
//! line with a caret, and a `help:` line saying what to do.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceSpan};

use crate::manifest::node::Position;

/// One manifest file's text, shared by every diagnostic that points into it, with the tables
/// that make drawing a snippet cost the size of the snippet, not of the file: where each line
/// starts (in bytes and in characters), and a character-to-byte index for non-ASCII text.
#[derive(Debug)]
pub struct SourceFile {
    name: String,
    text: Arc<str>,
    /// The byte offset of each line's start. Lines end at `\n`, `\r\n` or a lone `\r`, as
    /// YAML counts them, so positions from the parser and lines here agree.
    line_starts: Vec<usize>,
    /// The character index of each line's start.
    line_chars: Vec<usize>,
    /// The number of characters in the text.
    chars: usize,
    /// The byte offset of every [`CHECKPOINT`]-th character; empty for ASCII text, where a
    /// character index is a byte offset.
    checkpoints: Vec<usize>,
    /// Byte ranges never shown in a snippet (secret values), sorted and disjoint.
    masked: Vec<Range<usize>>,
}

/// The character-to-byte index keeps the byte offset of one character in this many.
const CHECKPOINT: usize = 256;

/// What a masked range is shown as, whatever its length.
pub(crate) const MASK: &str = "********";

impl SourceFile {
    /// A file named `name` (as the user gave its path) holding `text`.
    pub(crate) fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let ascii = text.is_ascii();
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        let mut line_chars = vec![0];
        let mut checkpoints = Vec::new();
        let mut chars = 0;
        for (i, c) in text.char_indices() {
            if !ascii && chars % CHECKPOINT == 0 {
                checkpoints.push(i);
            }
            chars += 1;
            let line_break = c == '\n' || (c == '\r' && bytes.get(i + 1) != Some(&b'\n'));
            if line_break {
                line_starts.push(i + 1);
                line_chars.push(chars);
            }
        }
        Self {
            name: name.into(),
            text,
            line_starts,
            line_chars,
            chars,
            checkpoints,
            masked: Vec::new(),
        }
    }

    /// The same file with the byte ranges `masked` never shown in a snippet: each (trimmed of
    /// surrounding whitespace, line by line) is drawn as `********`. A range is clamped to the
    /// text and widened to whole characters, never dropped.
    #[must_use]
    pub(crate) fn with_masked(mut self, mut masked: Vec<Range<usize>>) -> Self {
        let text = &self.text;
        for range in &mut masked {
            range.end = range.end.min(text.len());
            range.start = range.start.min(range.end);
            while !text.is_char_boundary(range.start) {
                range.start -= 1;
            }
            while !text.is_char_boundary(range.end) {
                range.end += 1;
            }
        }
        masked.retain(|r| r.start < r.end);
        masked.sort_by_key(|r| (r.start, r.end));
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(masked.len());
        for range in masked {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        self.masked = merged;
        self
    }

    /// Whether any byte of `range` is masked: a value a message must not quote either.
    pub(crate) fn is_masked(&self, range: &Range<usize>) -> bool {
        let first = self.masked.partition_point(|r| r.end <= range.start);
        self.masked
            .get(first)
            .is_some_and(|r| r.start < range.end.max(range.start + 1))
    }

    /// The file's name, as the user gave it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The file's text, as read: secrets unmasked. For parsing and saving, never for display.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// How many lines the file has (a final line break does not start one more, unless the
    /// file is empty).
    fn lines(&self) -> usize {
        let n = self.line_starts.len();
        if n > 1 && self.line_starts[n - 1] == self.text.len() {
            n - 1
        } else {
            n
        }
    }

    /// The 1-based position just past the last character.
    pub(crate) fn end_position(&self) -> Position {
        let line = self.line_starts.len();
        let column = self.chars - self.line_chars[line - 1] + 1;
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    /// The byte offset of the character with index `index` (the text's length past its end).
    fn char_to_byte(&self, index: usize) -> usize {
        if index >= self.chars {
            return self.text.len();
        }
        if self.checkpoints.is_empty() {
            return index;
        }
        let from = self.checkpoints[index / CHECKPOINT];
        self.text[from..]
            .char_indices()
            .nth(index % CHECKPOINT)
            .map_or(self.text.len(), |(i, _)| from + i)
    }

    /// Where the 0-based line `line` ends: its content's end, before the line break.
    fn line_end(&self, line: usize) -> usize {
        let Some(&next) = self.line_starts.get(line + 1) else {
            return self.text.len();
        };
        let bytes = self.text.as_bytes();
        if next >= 2 && bytes[next - 1] == b'\n' && bytes[next - 2] == b'\r' {
            next - 2
        } else {
            next - 1
        }
    }

    /// How many characters the 0-based line `line` holds (its line break excluded).
    fn line_length(&self, line: usize) -> usize {
        match self.line_chars.get(line + 1) {
            Some(&next) => {
                next - self.line_chars[line] - (self.line_starts[line + 1] - self.line_end(line))
            }
            None => self.chars - self.line_chars[line],
        }
    }

    /// The 0-based line and character column of `position`, clamped to the text.
    fn clamp(&self, position: Position) -> (usize, usize) {
        let line = (position.line.max(1) - 1) as usize;
        if line >= self.line_starts.len() {
            let last = self.line_starts.len() - 1;
            return (last, self.line_length(last));
        }
        let column = ((position.column.max(1) - 1) as usize).min(self.line_length(line));
        (line, column)
    }

    /// The byte offset of a 1-based line and character column, clamped to its line (the text's
    /// end past the last line).
    pub(crate) fn offset(&self, position: Position) -> usize {
        let line = (position.line.max(1) - 1) as usize;
        if line >= self.line_starts.len() {
            return self.text.len();
        }
        let (line, column) = self.clamp(position);
        self.char_to_byte(self.line_chars[line] + column)
    }

    /// The length in bytes of the token that starts at `position`: a key up to its colon, a
    /// scalar up to a comment or the end of its line; at least 1. Only the first
    /// [`TOKEN_SCAN`] bytes are looked at, so a huge line costs no more than a short one.
    pub(crate) fn token_length(&self, position: Position) -> usize {
        let start = self.offset(position);
        let (line, _) = self.clamp(position);
        let end = self.line_end(line).max(start);
        let line = prefix(&self.text[start..end], TOKEN_SCAN);
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

/// How far [`SourceFile::token_length`] looks.
const TOKEN_SCAN: usize = 1024;

/// At most the first `max` bytes of `text`, cut at a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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

    /// The diagnostic as JSON, for `validate --format json`: severity, place, message, help and
    /// the related place. No snippet: the source text is not repeated.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let place = |location: &Location| {
            serde_json::json!({
                "file": location.file.name(),
                "line": location.position.line,
                "column": location.position.column,
            })
        };
        let mut json = serde_json::json!({
            "severity": match self.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            "message": self.message,
        });
        if let Some(object) = json.as_object_mut() {
            if let Some(location) = &self.location
                && let serde_json::Value::Object(fields) = place(location)
            {
                object.extend(fields);
            }
            if let Some(help) = &self.help {
                object.insert("help".to_owned(), help.as_str().into());
            }
            if let Some((location, label)) = &self.related {
                let mut related = place(location);
                related["label"] = label.as_str().into();
                object.insert("related".to_owned(), related);
            }
        }
        json
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
        if let Some(location) = &self.location {
            let mut labels = vec![Label {
                location,
                text: self.label.clone(),
                primary: true,
            }];
            let mut apart = None;
            if let Some((related, text)) = &self.related {
                let label = Label {
                    location: related,
                    text: Some(text.clone()),
                    primary: false,
                };
                let near = related.file.name() == location.file.name()
                    && related.position.line.abs_diff(location.position.line) <= JOINED_LINES;
                if near {
                    labels.push(label);
                } else {
                    apart = Some(label);
                }
            }
            let view = MietteView {
                message: self.message.clone(),
                severity: match self.severity {
                    Severity::Error => miette::Severity::Error,
                    Severity::Warning => miette::Severity::Warning,
                },
                excerpt: Excerpt::new(&location.file, &labels),
                help: self.help.clone(),
            };
            out.push_str(&snippet(&handler, &view));
            if let Some(label) = apart {
                let label = Label {
                    primary: true,
                    ..label
                };
                let view = MietteView {
                    message: label.text.clone().unwrap_or_default(),
                    severity: miette::Severity::Advice,
                    excerpt: Excerpt::new(&label.location.file, std::slice::from_ref(&label)),
                    help: None,
                };
                out.push_str(&snippet(&handler, &view));
            }
        } else if let Some(help) = &self.help {
            out.push_str(&format!("  help: {help}\n"));
        }
        out
    }
}

/// A second place at most this many lines from the first is drawn in the same snippet, with
/// the lines between; one further away gets a snippet of its own.
const JOINED_LINES: u32 = 20;

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

/// One place to underline in a snippet.
struct Label<'a> {
    location: &'a Location,
    text: Option<String>,
    primary: bool,
}

/// Lines longer than this many characters are cut to a window around what they point at.
const LONG_LINE: usize = 160;
/// How many characters of a long line are shown.
const WINDOW: usize = 120;
/// Marks where a long line was cut.
const CUT: &str = "…";

/// The few lines a snippet shows, cut out of the file and prepared for display: long lines cut
/// to a window (miette cannot draw a caret past column 65,535, and nobody can read one),
/// masked ranges drawn as `********`, every line break a `\n`. miette reads only this
/// excerpt, never the whole file, so drawing one diagnostic costs the size of its snippet:
/// miette's own reader scans the text from its start for every label.
struct Excerpt {
    name: String,
    text: String,
    /// The 0-based line of the file the excerpt starts at.
    first_line: usize,
    /// The labels, with their spans in `text`.
    labels: Vec<LabeledSpan>,
    /// For each label start in `text`: its 0-based line and column in the file.
    starts: Vec<(usize, usize, usize)>,
}

impl Excerpt {
    /// The lines of `file` that `labels` point at, one line of context around them (and the
    /// lines between), each prepared by [`ShownLine`].
    fn new(file: &SourceFile, labels: &[Label<'_>]) -> Self {
        // Each label's line, column and byte range in the file.
        let placed: Vec<(usize, usize, usize, usize)> = labels
            .iter()
            .map(|label| {
                let (line, column) = file.clamp(label.location.position);
                let start = file.offset(label.location.position);
                let end = start + file.token_length(label.location.position);
                (line, column, start, end)
            })
            .collect();
        let lowest = placed.iter().map(|p| p.0).min().unwrap_or(0);
        let highest = placed.iter().map(|p| p.0).max().unwrap_or(0);
        let first_line = lowest.saturating_sub(1);
        let last_line = (highest + 1)
            .min(file.lines().saturating_sub(1))
            .max(highest);
        let anchor = placed.first().map_or(0, |p| p.1);
        let mut text = String::new();
        let mut spans: Vec<Option<(usize, usize)>> = vec![None; labels.len()];
        for line in first_line..=last_line {
            if line > first_line {
                text.push('\n');
            }
            let here = placed.iter().find(|p| p.0 == line).map_or(anchor, |p| p.1);
            let shown = ShownLine::new(file, line, here);
            let base = text.len();
            text.push_str(&shown.text);
            for (i, p) in placed.iter().enumerate() {
                if p.0 == line {
                    let start = base + shown.start(p.2);
                    let end = (base + shown.end(p.3)).max(start + 1);
                    spans[i] = Some((start, end));
                }
            }
        }
        let mut spans_out = Vec::with_capacity(labels.len());
        let mut starts = Vec::with_capacity(labels.len());
        for ((label, place), span) in labels.iter().zip(&placed).zip(spans) {
            let (start, end) = span.unwrap_or((0, 1));
            let span = SourceSpan::new(start.into(), end - start);
            spans_out.push(if label.primary {
                LabeledSpan::new_primary_with_span(label.text.clone(), span)
            } else {
                LabeledSpan::new_with_span(label.text.clone(), span)
            });
            starts.push((start, place.0, place.1));
        }
        Self {
            name: file.name().to_owned(),
            text,
            first_line,
            labels: spans_out,
            starts,
        }
    }
}

impl miette::SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner =
            self.text
                .as_str()
                .read_span(span, context_lines_before, context_lines_after)?;
        // The position miette prints in a snippet's header is the file's, not the excerpt's.
        let start = self
            .starts
            .iter()
            .find(|s| s.0 == span.offset())
            .filter(|_| context_lines_before == 0 && context_lines_after == 0);
        let (line, column) = match start {
            Some(&(_, line, column)) => (line, column),
            None => (inner.line() + self.first_line, inner.column()),
        };
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            line,
            column,
            // miette counts lines from the start of the source, and decides from the count
            // whether two labels share a snippet.
            inner.line_count() + self.first_line,
        )))
    }
}

/// One line of a file as a snippet shows it, with the map from the file's byte offsets to the
/// shown text's.
struct ShownLine {
    text: String,
    /// `(from, to, at, masked)`: the file's bytes `from..to` are shown from `at`, as themselves
    /// or (masked) as [`MASK`].
    pieces: Vec<(usize, usize, usize, bool)>,
}

impl ShownLine {
    /// Line `line` (0-based) of `file`; cut, when long, to a window around the character
    /// column `anchor`.
    fn new(file: &SourceFile, line: usize, anchor: usize) -> Self {
        let length = file.line_length(line);
        let line_start = file.line_starts[line];
        let line_end = file.line_end(line).max(line_start);
        let (from, to) = if length > LONG_LINE {
            let first = anchor.saturating_sub(WINDOW / 3).min(length - WINDOW);
            let first_char = file.line_chars[line];
            (
                file.char_to_byte(first_char + first),
                file.char_to_byte(first_char + first + WINDOW),
            )
        } else {
            (line_start, line_end)
        };
        let mut shown = Self {
            text: String::new(),
            pieces: Vec::new(),
        };
        if from > line_start {
            shown.text.push_str(CUT);
        }
        let text = file.text();
        let mut at = from;
        let first = file.masked.partition_point(|r| r.end <= from);
        for range in file.masked[first..].iter().take_while(|r| r.start < to) {
            let start = range.start.max(from);
            let end = range.end.min(to);
            let part = &text[start..end];
            let start = start + (part.len() - part.trim_start().len());
            let end = end - (part.len() - part.trim_end().len());
            if start >= end {
                continue;
            }
            shown.copy(text, at, start);
            shown.pieces.push((start, end, shown.text.len(), true));
            shown.text.push_str(MASK);
            at = end;
        }
        shown.copy(text, at, to);
        if to < line_end {
            shown.text.push_str(CUT);
        }
        shown
    }

    /// Appends the file's bytes `from..to` as they are.
    fn copy(&mut self, text: &str, from: usize, to: usize) {
        if from < to {
            self.pieces.push((from, to, self.text.len(), false));
            self.text.push_str(&text[from..to]);
        }
    }

    /// Where the file's byte `offset` starts in the shown text.
    fn start(&self, offset: usize) -> usize {
        for &(from, to, at, masked) in &self.pieces {
            if offset < from {
                return at;
            }
            if offset < to {
                return if masked { at } else { at + (offset - from) };
            }
        }
        self.text.len()
    }

    /// Where the file's byte `offset`, the end of a span, ends in the shown text.
    fn end(&self, offset: usize) -> usize {
        for &(from, to, at, masked) in &self.pieces {
            if offset <= from {
                return at;
            }
            if offset <= to {
                return if masked {
                    at + MASK.len()
                } else {
                    at + (offset - from)
                };
            }
        }
        self.text.len()
    }
}

/// Adapts a [`Diagnostic`] to miette's report trait, for drawing only.
struct MietteView {
    message: String,
    severity: miette::Severity,
    excerpt: Excerpt,
    help: Option<String>,
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
        Some(&self.excerpt)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.excerpt.labels.iter().cloned()))
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

    fn at(file: &Arc<SourceFile>, line: u32, column: u32) -> Option<Location> {
        Some(Location::new(file, Position { line, column }))
    }

    #[test]
    fn masked_ranges_are_stars_in_every_snippet() {
        let text = "a: 1\nsecret: hunter2 # c\nb: 2\nc: |\n  hunter3\n";
        let start = text.find("hunter2").unwrap();
        let block = text.find("hunter3").unwrap();
        let masked = vec![start..start + 7, block - 3..text.len()];
        let file = Arc::new(SourceFile::new("m.yaml", text).with_masked(masked));
        for line in 1..=5 {
            let drawn = Diagnostic::error(at(&file, line, 1), "x").render(false);
            assert!(!drawn.contains("hunter"), "{drawn}");
        }
        let drawn = Diagnostic::error(at(&file, 3, 1), "x").render(false);
        assert!(drawn.contains("secret: ******** # c\n"), "{drawn}");
        let drawn = Diagnostic::error(at(&file, 5, 3), "x").render(false);
        assert!(drawn.contains(" 5 │   ********\n"), "{drawn}");
    }

    #[test]
    fn a_long_line_is_drawn_as_a_window_around_the_column() {
        let text = format!("a: 1\nb: [{}x]\n", "0, ".repeat(50_000));
        let file = Arc::new(SourceFile::new("m.yaml", text));
        let column = 4 + 3 * 50_000;
        let drawn = Diagnostic::warning(at(&file, 2, column), "far out").render(false);
        assert!(
            drawn.starts_with(&format!("warning: m.yaml:2:{column}: far out\n")),
            "{drawn}"
        );
        assert!(drawn.contains(&format!("[m.yaml:2:{column}]")), "{drawn}");
        assert!(drawn.contains(" 2 │ …"), "{drawn}");
        assert!(drawn.contains("0, 0, x]\n"), "{drawn}");
        assert!(drawn.len() < 1_000, "{drawn}");
    }

    #[test]
    fn a_lone_cr_ends_a_line() {
        let file = Arc::new(SourceFile::new("m.yaml", "a: 1\rb: 2\r\nc: 3\n"));
        assert_eq!(file.offset(Position { line: 2, column: 1 }), 5);
        assert_eq!(file.offset(Position { line: 3, column: 1 }), 11);
        let drawn = Diagnostic::error(at(&file, 2, 1), "x").render(false);
        assert!(drawn.contains(" 1 │ a: 1\n 2 │ b: 2\n"), "{drawn:?}");
        assert!(drawn.contains(" 3 │ c: 3\n"), "{drawn:?}");
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
