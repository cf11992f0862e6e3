//! Errors talking to the Platform.sh API.

use std::fmt;

/// Something went wrong with one API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API token was refused at the token exchange (or access was refused twice).
    #[error("the API token was rejected: {}", shown(.message))]
    TokenRejected {
        /// What the auth server said ([`clean_text`]).
        message: String,
    },
    /// The API answered with an error status.
    #[error("{call} failed with HTTP {status}: {}", shown(.message))]
    Status {
        /// `METHOD path`.
        call: Call,
        /// The HTTP status.
        status: u16,
        /// The API's message (`message`, `title`, `detail` together; [`clean_text`]).
        message: String,
        /// Per-field validation problems (`field: message`; [`clean_text`]).
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
    #[error("{call} returned an unexpected response: {}", shown(.reason))]
    Shape {
        /// `METHOD path`.
        call: Call,
        /// What was wrong with it (may quote the API: [`clean_text`]).
        reason: String,
    },
    /// A create whose outcome is unknown: its answer was lost (or was a 5xx that may follow the
    /// work), and looking for the integration did not find it. It is not sent again.
    #[error(
        "{call}: the outcome is unknown: the integration may have been created, but {}; it is not sent again in this run, and the next plan will tell",
        if *looked { "looking for it twice did not find it" } else { "the project could not be listed to look for it" }
    )]
    CreateUnknown {
        /// `POST path`.
        call: Call,
        /// The project was listed (and the integration not found); else listing failed.
        looked: bool,
        /// What made the outcome unclear.
        #[source]
        cause: Box<ApiError>,
    },
    /// A write bbsync would not send: its target is not the integration it is meant for (a link
    /// or an ID from the API, or a plan file, pointing elsewhere).
    #[error("{method} refused, nothing was sent: {reason}")]
    Refused {
        /// The HTTP method it would have used.
        method: String,
        /// Why ([`clean_text`]: it may quote a link).
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
            // A 503 says the request was not handled (RFC 9110 §15.6.4); the others may follow
            // work done.
            ApiError::Status { status, .. } => matches!(status, 500 | 502 | 504),
            ApiError::CreateUnknown { .. } => true,
            _ => false,
        }
    }

    /// Replaces `secret` (the API token, an access token, a secret a write sent) wherever the
    /// API's text in this error repeats it ([`redact`]).
    pub(crate) fn redact(&mut self, secret: &str) {
        let scrub = |text: &mut String| *text = redact(text, secret);
        match self {
            ApiError::TokenRejected { message } => scrub(message),
            ApiError::Status {
                message, details, ..
            } => {
                scrub(message);
                details.iter_mut().for_each(scrub);
            }
            ApiError::Shape { reason, .. }
            | ApiError::Transport { reason, .. }
            | ApiError::Refused { reason, .. } => scrub(reason),
            ApiError::Config(text) => scrub(text),
            ApiError::CreateUnknown { cause, .. } => cause.redact(secret),
            ApiError::TooLarge { .. } => {}
        }
    }

    /// This error with `secret` redacted ([`ApiError::redact`]).
    pub(crate) fn redacted(mut self, secret: &str) -> Self {
        self.redact(secret);
        self
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

/// The most characters of one API-provided text kept in an error. More than is shown, so that
/// a secret redacted later ([`ApiError::redact`]) is never cut in two where the text is shown.
const KEPT_CHARS: usize = 4096;

/// API-provided text made safe to print: control characters (terminal escape sequences begin
/// with one) and bidirectional overrides are dropped, line breaks and tabs become spaces, and
/// it is cut at 4,096 characters (it is shown cut at [`SHOWN_CHARS`]).
pub(crate) fn clean_text(text: &str) -> String {
    let mut clean = String::with_capacity(text.len().min(KEPT_CHARS));
    let mut count = 0;
    for c in text.chars() {
        let c = match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() || is_bidi_control(c) => continue,
            c => c,
        };
        if count == KEPT_CHARS {
            clean.push('…');
            break;
        }
        clean.push(c);
        count += 1;
    }
    clean
}

/// `text` cut at [`SHOWN_CHARS`] characters, with `…` when it was longer.
pub(crate) fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `text` with every occurrence of `secret` replaced by `[redacted]`: as it is, and as it reads
/// escaped in JSON and in a form body (an API that echoes its input echoes one of these).
pub(crate) fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_owned();
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut text = text.to_owned();
    for form in [secret.to_owned(), json, form] {
        if !form.is_empty() && text.contains(&form) {
            text = text.replace(&form, "[redacted]");
        }
    }
    text
}

/// Unicode's bidirectional embeddings, overrides and isolates: they reorder what a terminal
/// shows.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A size for people: `16 MiB`, `1 KiB`, or bytes.
fn size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
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
/// message and per-field details, each [`clean_text`]. An API may echo what it was sent: the
/// client redacts its tokens from the result, and the applier the secret a write sent.
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
        let text = clean_text(text);
        if !text.is_empty() && !parts.contains(&text) {
            parts.push(text);
        }
    }
    let mut details = Vec::new();
    match &body.detail {
        Some(serde_json::Value::Object(map)) => {
            for (field, problems) in map {
                match problems {
                    serde_json::Value::Array(items) => {
                        for item in items {
                            details.push(clean_text(&format!("{field}: {}", text_of(item))));
                        }
                    }
                    other => details.push(clean_text(&format!("{field}: {}", text_of(other)))),
                }
            }
        }
        Some(serde_json::Value::Array(items)) => {
            details.extend(items.iter().map(|item| clean_text(&text_of(item))));
        }
        Some(serde_json::Value::String(s)) => parts.push(clean_text(s)),
        _ => {}
    }
    // A body may hold any number of them (16 MiB of details): a few are enough to act on.
    const MAX_DETAILS: usize = 20;
    if details.len() > MAX_DETAILS {
        let more = details.len() - MAX_DETAILS;
        details.truncate(MAX_DETAILS);
        details.push(format!("and {more} more"));
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
    (clean_text(&message), details)
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
    fn api_text_loses_control_characters_and_is_shown_cut() {
        let hostile = "ok\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}done\nnext\u{9b}31m";
        assert_eq!(clean_text(hostile), "ok]0;pwned[2Jdone next31m");
        let long = "x".repeat(10_000);
        assert_eq!(clean_text(&long).chars().count(), 4097);
        let shown_text = shown(&clean_text(&long));
        assert_eq!(shown_text.chars().count(), 501);
        assert!(shown_text.ends_with('…'));
        assert_eq!(shown("short"), "short");
    }

    #[test]
    fn secrets_are_redacted_as_sent_and_as_escaped() {
        let secret = "p\"a ss&=/";
        let echoed = format!(
            "raw {secret}, json {}, form {}",
            serde_json::to_string(secret).unwrap(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        assert_eq!(
            redact(&echoed, secret),
            "raw [redacted], json \"[redacted]\", form [redacted]"
        );
        assert_eq!(redact("nothing", ""), "nothing");
        let mut error = ApiError::Status {
            call: Call {
                method: "POST".into(),
                path: "/p".into(),
            },
            status: 400,
            message: format!("bad {secret}"),
            details: vec![format!("field: {secret}")],
        };
        error.redact(secret);
        assert_eq!(
            error.to_string(),
            "POST /p failed with HTTP 400: bad [redacted]"
        );
    }

    #[test]
    fn a_long_error_is_shown_cut_after_a_secret_is_redacted() {
        // The secret straddles the 500th character: redacted whole, never half shown.
        let secret = "0123456789abcdefghij";
        let text = format!("{}{secret}", "y".repeat(490));
        let mut error = ApiError::TokenRejected {
            message: clean_text(&text),
        };
        error.redact(secret);
        let shown_text = error.to_string();
        assert!(!shown_text.contains("0123456789"), "{shown_text}");
    }

    #[test]
    fn describe_cleans_every_part_and_bounds_the_details() {
        let problems: serde_json::Map<String, serde_json::Value> = (0..100)
            .map(|i| (format!("f{i}"), serde_json::json!(["bad\u{1b}[31m"])))
            .collect();
        let body = serde_json::json!({"message": "no\u{1b}[2J", "detail": problems});
        let (message, details) = describe(&body);
        assert!(!message.contains('\u{1b}') && message.starts_with("no[2J"));
        assert_eq!(details.len(), 21);
        assert_eq!(details[20], "and 80 more");
    }

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
