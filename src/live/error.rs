//! Errors talking to the Platform.sh API.

use std::fmt;

/// Something went wrong with one API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API token was refused at the token exchange (or access was refused twice).
    #[error("the API token was rejected: {message}")]
    TokenRejected {
        /// What the auth server said.
        message: String,
    },
    /// The API answered with an error status.
    #[error("{call} failed with HTTP {status}: {message}")]
    Status {
        /// `METHOD path`.
        call: Call,
        /// The HTTP status.
        status: u16,
        /// The API's message (`message`, `title`, `detail` together).
        message: String,
        /// Per-field validation problems (`field: message`).
        details: Vec<String>,
    },
    /// No usable answer: connection refused or reset, timeout, unreadable body.
    #[error("{call} got no answer: {reason}")]
    Transport {
        /// `METHOD path`.
        call: Call,
        /// What happened.
        reason: String,
        /// The request may have been carried out (it was sent; the answer was lost).
        unclear: bool,
        /// The HTTP library's error: DNS, TLS, refused, reset.
        #[source]
        source: Option<std::sync::Arc<reqwest::Error>>,
    },
    /// The answer's body is longer than bbsync reads ([`crate::live::MAX_BODY`]).
    #[error(
        "{call} answered HTTP {status} with a body larger than {}, the most bbsync reads; it was not read",
        size(*limit)
    )]
    TooLarge {
        /// `METHOD path`.
        call: Call,
        /// The HTTP status.
        status: u16,
        /// The limit, in bytes.
        limit: usize,
        /// The request may have been carried out (a 2xx or 5xx answer).
        unclear: bool,
    },
    /// The answer could not be understood.
    #[error("{call} returned an unexpected response: {reason}")]
    Shape {
        /// `METHOD path`.
        call: Call,
        /// What was wrong with it.
        reason: String,
    },
    /// A URL is not acceptable (for example `http://` to a non-loopback host).
    #[error("{0}")]
    Config(String),
}

/// `error` and its causes on one line, `: `-separated: for messages kept as text (a project's
/// unknown state, an action's failure) where the chain would otherwise be lost.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = cause_of(source);
    }
    text
}

fn cause_of<'a>(
    error: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(std::error::Error::source)
}

impl ApiError {
    /// Whether a write may have happened even though no success was seen.
    pub(crate) fn is_unclear(&self) -> bool {
        match self {
            ApiError::Transport { unclear, .. } | ApiError::TooLarge { unclear, .. } => *unclear,
            ApiError::Status { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The HTTP status, if the API answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The most characters of one API-provided text shown in a message (an error message, a
/// validation detail, a link): longer ones are cut, with `…`.
pub(crate) const SHOWN_CHARS: usize = 500;

/// API-provided text made safe to print, and cut at [`SHOWN_CHARS`]: control characters
/// (terminal escape sequences begin with one) and bidirectional overrides are dropped, line
/// breaks and tabs become spaces.
pub(crate) fn clean_text(text: &str) -> String {
    let mut clean = String::with_capacity(text.len().min(SHOWN_CHARS * 4));
    let mut count = 0;
    for c in text.chars() {
        let c = match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() || is_bidi_control(c) => continue,
            c => c,
        };
        if count == SHOWN_CHARS {
            clean.push('…');
            break;
        }
        clean.push(c);
        count += 1;
    }
    clean
}

/// Unicode's bidirectional embeddings, overrides and isolates: they reorder what a terminal
/// shows.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A size for people: `16 MiB`, `1 KiB`, or bytes.
fn size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// `METHOD path`, for messages.
#[derive(Debug, Clone)]
pub struct Call {
    /// The HTTP method.
    pub method: String,
    /// The URL path (no host, no query).
    pub path: String,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Reads the API's error body (`message`, `title`, `detail`, `error_description`) into a
/// message and per-field details. Secrets never appear in error bodies the API sends back.
pub(crate) fn describe(body: &serde_json::Value) -> (String, Vec<String>) {
    let body = crate::wire::ErrorBody::read(body);
    let mut parts = Vec::new();
    for text in [
        &body.message,
        &body.title,
        &body.error_description,
        &body.error,
    ]
    .into_iter()
    .flatten()
    {
        if !text.is_empty() && !parts.contains(text) {
            parts.push(text.clone());
        }
    }
    let mut details = Vec::new();
    match &body.detail {
        Some(serde_json::Value::Object(map)) => {
            for (field, problems) in map {
                match problems {
                    serde_json::Value::Array(items) => {
                        for item in items {
                            details.push(format!("{field}: {}", text_of(item)));
                        }
                    }
                    other => details.push(format!("{field}: {}", text_of(other))),
                }
            }
        }
        Some(serde_json::Value::Array(items)) => {
            details.extend(items.iter().map(text_of));
        }
        Some(serde_json::Value::String(s)) => parts.push(s.clone()),
        _ => {}
    }
    if parts.is_empty() && details.is_empty() {
        parts.push("no details given".to_owned());
    }
    let mut message = parts.join(": ");
    if !details.is_empty() {
        if !message.is_empty() {
            message.push_str(" (");
            message.push_str(&details.join("; "));
            message.push(')');
        } else {
            message = details.join("; ");
        }
    }
    (message, details)
}

fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_api_error_shape() {
        let body = serde_json::json!({"status": "Invalid input", "message": "This field is required.",
            "code": 400, "detail": {"repository": ["This field is required."]}, "title": "Bad Request"});
        let (message, details) = describe(&body);
        assert_eq!(details, vec!["repository: This field is required."]);
        assert_eq!(
            message,
            "This field is required.: Bad Request (repository: This field is required.)"
        );
    }
}
