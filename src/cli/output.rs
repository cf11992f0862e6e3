//! Where bbsync's output goes: stdout, stderr and the log, each with the values of secret
//! variables redacted ([`Env::redact`]).
//!
//! This is defence in depth. No code formats a secret on purpose, and the manifest rules keep
//! secret variables out of public fields; but an echoing API, a future bug or a value that
//! happens to equal a secret must still not publish it. The command's [`Env`] is installed
//! once, when settings are resolved ([`install`]); every write after that is redacted, one
//! write (or one `write!`) at a time.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::sync::OnceLock;

use crate::model::Env;

/// The environment whose secret values are redacted.
static SECRETS: OnceLock<Env> = OnceLock::new();

/// Redacts every later write with `env`'s secrets (the first call wins).
pub(crate) fn install(env: &Env) {
    let _ = SECRETS.set(env.clone());
}

/// `text` with every secret value redacted.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    match SECRETS.get() {
        Some(env) => env.redact(text),
        None => Cow::Borrowed(text),
    }
}

/// A writer that redacts what passes through it. A `write!` is formatted whole before it is
/// redacted, so that a secret is never split between two writes.
pub(crate) struct Redacting<W: Write>(pub W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(redact(text).as_bytes())?,
            Err(_) => self
                .0
                .write_all(redact(&String::from_utf8_lossy(buf)).as_bytes())?,
        }
        Ok(buf.len())
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        let text = args.to_string();
        self.write_all(text.as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Standard output (colors as the terminal and `NO_COLOR` decide), redacted.
pub(crate) fn stdout() -> Redacting<anstream::Stdout> {
    Redacting(anstream::stdout())
}

/// Standard error (colors as the terminal and `NO_COLOR` decide), redacted.
pub(crate) fn stderr() -> Redacting<anstream::Stderr> {
    Redacting(anstream::stderr())
}

/// The log's writer: standard error as it is (the log has its own colors), redacted.
pub(crate) fn log() -> Redacting<io::Stderr> {
    Redacting(io::stderr())
}

/// Writes `text` to the file `path`, redacted.
pub(crate) fn write_file(path: &std::path::Path, text: &str) -> io::Result<()> {
    std::fs::write(path, redact(text).as_bytes())
}

/// [`write_file`], but only if `path` does not exist yet (created atomically: a file made
/// meanwhile is not overwritten either).
pub(crate) fn write_new_file(path: &std::path::Path, text: &str) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(redact(text).as_bytes())
}

/// `eprintln!`, redacted.
macro_rules! eprintln_redacted {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::cli::output::stderr(), $($arg)*);
    }};
}
pub(crate) use eprintln_redacted;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_and_a_formatted_write_are_redacted_whole() {
        let env = Env::new([("PLATFORMSH_CLI_TOKEN", "tok-abcdef")]);
        install(&env);
        let mut out = Redacting(Vec::new());
        out.write_all(b"token tok-abcdef\n").unwrap();
        let (a, b) = ("tok-", "abcdef");
        write!(out, "{a}{b}!").unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "token [redacted]\n[redacted]!"
        );
    }
}
