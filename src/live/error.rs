//! Errors talking to the Platform.sh API.

use std::fmt;

/// Something went wrong with one API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API token was refused: invalid, expired or revoked. At the token exchange, a 400 or
    /// 401 that names the API token, as legacy-cli tells it (`Api::isApiTokenInvalid`: an
    /// `error_description` with "API token"; `ApiTokenLoginCommand::exceptionMeansInvalidToken`:
    /// `invalid_grant` with "Invalid API token", or the newer auth server's
    /// `request_unauthorized` with an `error_hint` naming the API token); or a fresh access
    /// token refused by the API.
    #[error("the API token was rejected: {}", shown(.message))]
    TokenRejected {
        /// What the auth server said ([`clean_text`]).
        message: String,
    },
    /// The auth service did not work (a 5xx from the token endpoint, after the retries): not a
    /// problem with the API token.
    #[error("the auth service is unavailable: POST {path} answered HTTP {status}: {}", shown(.message))]
    AuthUnavailable {
        /// The token endpoint's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// What it said ([`clean_text`]).
        message: String,
    },
    /// Any other refusal of the token exchange (a bad client ID, an unsupported grant), with
    /// the auth server's text.
    #[error("the token exchange failed: POST {path} answered HTTP {status}: {}", shown(.message))]
    TokenExchange {
        /// The token endpoint's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// What it said ([`clean_text`]).
        message: String,
    },
    /// A 401 asking for stronger authentication (RFC 9470 step-up: `WWW-Authenticate: Bearer
    /// error="insufficient_user_authentication"`, platformsh-api.md §3.2; legacy-cli
    /// `Api::onStepUpAuthResponse` reads the methods it asks for from the body's `amr`).
    #[error(
        "{call} answered HTTP 401: the API asks for stronger authentication than this API token's user has{}: {}",
        if methods.is_empty() { String::new() } else { format!(" ({})", methods.join(", ")) },
        shown(.message)
    )]
    StepUp {
        /// `METHOD path`.
        call: Call,
        /// The methods asked for (`amr`: `mfa`, `sso:...`), [`clean_text`].
        methods: Vec<String>,
        /// What the API said ([`clean_text`]).
        message: String,
    },
    /// An organization given by name (not a ULID) that the API does not know
    /// (`GET /organizations/name=...` answered 404).
    #[error(
        "organization `{name}` was not found: no organization of that name is visible to this API token"
    )]
    OrganizationNotFound {
        /// The name, as given ([`clean_text`]).
        name: String,
    },
    /// The API answered with an error status (a 403 says what it needs: [`forbidden_note`]).
    #[error("{call} failed with HTTP {status}: {}{}", shown(.message), forbidden_note(call, *status, message))]
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
    /// The API kept answering 429 and asked for a wait past what a request may wait for 429s
    /// in total (`--max-throttle-wait`, [`crate::live::MAX_THROTTLE_WAIT`]): the request was not
    /// sent again, and what it would have read is unknown.
    #[error(
        "{call} was rate-limited: the API asked to wait {} more after {} of waiting, past the {} a request may wait (--max-throttle-wait)",
        seconds(*asked),
        seconds(*waited),
        seconds(*limit)
    )]
    Throttled {
        /// `METHOD path`.
        call: Call,
        /// The wait asked for (`Retry-After`).
        asked: std::time::Duration,
        /// What the request had waited already.
        waited: std::time::Duration,
        /// The bound.
        limit: std::time::Duration,
    },
    /// A URL is not acceptable (for example `http://` to a non-loopback host).
    #[error("{0}")]
    Config(String),
}

/// A duration as whole seconds (`1 s`), or milliseconds below a second.
fn seconds(duration: std::time::Duration) -> String {
    if duration < std::time::Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{} s", duration.as_secs_f64().round())
    }
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

/// [`chain`], then the error's hints ([`ApiError::hints`]) as `(hint: ...)`: for errors kept as
/// text (a project's unknown state, a failed organization listing), where no `hint:` line is
/// printed.
pub fn explain(error: &ApiError) -> String {
    let mut text = chain(error);
    for hint in error.hints() {
        text.push_str(" (hint: ");
        text.push_str(&hint);
        text.push(')');
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
            ApiError::TokenRejected { message }
            | ApiError::AuthUnavailable { message, .. }
            | ApiError::TokenExchange { message, .. } => scrub(message),
            ApiError::StepUp {
                message, methods, ..
            } => {
                scrub(message);
                methods.iter_mut().for_each(scrub);
            }
            ApiError::OrganizationNotFound { name } => scrub(name),
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
            ApiError::TooLarge { .. } | ApiError::Throttled { .. } => {}
        }
    }

    /// This error with `secret` redacted ([`ApiError::redact`]).
    pub(crate) fn redacted(mut self, secret: &str) -> Self {
        self.redact(secret);
        self
    }

    /// What to do about it, for the `hint:` lines of a command that fails with it.
    pub(crate) fn hints(&self) -> Vec<String> {
        match self {
            ApiError::TokenRejected { .. } => vec![
                "create a new API token in the Console (My profile > API tokens) and set it in PLATFORMSH_CLI_TOKEN".to_owned(),
            ],
            ApiError::AuthUnavailable { .. } => vec![
                "the API token was not judged: the auth service failed; try again later".to_owned(),
            ],
            ApiError::StepUp { .. } => vec![MFA_SSO_HINT.to_owned()],
            ApiError::OrganizationNotFound { .. } => vec![ORGANIZATION_HINT.to_owned()],
            ApiError::Status { status: 403, call, message, .. } => {
                if mentions_mfa_or_sso(message) {
                    vec![MFA_SSO_HINT.to_owned()]
                } else if call.path.contains("/organizations/") {
                    vec!["the API token's user needs to be a member of the organization with access to its projects".to_owned()]
                } else {
                    vec![
                        "give the API token's user the admin role on the project (Console: the project's Settings > Access)".to_owned(),
                        MFA_SSO_HINT.to_owned(),
                    ]
                }
            }
            ApiError::CreateUnknown { cause, .. } => cause.hints(),
            ApiError::Throttled { .. } => vec![
                "run again later, with a lower --concurrency or --max-rps, or allow a longer --max-throttle-wait".to_owned(),
            ],
            _ => Vec::new(),
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

/// For a step-up 401 or an organization's 403: what an organization that enforces MFA or SSO
/// asks of a machine user. The docs: "To access an organization that enforces MFA or any of its
/// projects, you must enable MFA on your user account. Failure to do so results in forbidden
/// access to the organization from the Console or API" (`administration/security/mfa.md`);
/// machine users can be excluded from SSO enforcement (`administration/security/sso.md`,
/// "service users"); legacy-cli `LoginRequiredEvent`: "The API token may need to be re-created
/// after enabling MFA".
const MFA_SSO_HINT: &str = "if the organization enforces MFA or SSO, its rule applies to the API token's machine user too: enable MFA on that user and create a new API token, or have an organization admin exclude the machine user from SSO enforcement";

/// How to find an organization's ID: legacy-cli's `organization:info` shows it, as does the
/// Console.
const ORGANIZATION_HINT: &str = "`organization` takes the organization's ID (a ULID such as 01H5ZF6Y7W9QK8X3M2N4P6R8T0) or its machine name; `platform organization:info --org NAME id` or the Console shows the ID";

/// Whether the API's text of a 403 speaks of MFA or SSO (inferred: the docs say such a user gets
/// "forbidden access to the organization", and not in what words).
fn mentions_mfa_or_sso(message: &str) -> bool {
    let lower = message.to_lowercase();
    [
        "mfa",
        "multi-factor",
        "multifactor",
        "sso",
        "single sign-on",
        "two-factor",
        "2fa",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

/// What a 403 means, after the API's own text: managing integrations needs the project admin
/// role (the docs: only project admins can add or remove integrations, platformsh-api.md
/// §1.8); an organization that enforces MFA or SSO refuses users without it (the docs,
/// [`MFA_SSO_HINT`]). Nothing for other statuses.
fn forbidden_note(call: &Call, status: u16, message: &str) -> String {
    if status != 403 {
        String::new()
    } else if mentions_mfa_or_sso(message) {
        " (the organization enforces MFA or SSO, and the API token's user does not satisfy it)"
            .to_owned()
    } else if call.path.contains("/organizations/") {
        " (reading an organization needs its projects to be visible to the API token's user)"
            .to_owned()
    } else {
        " (managing integrations needs the project admin role; an organization that enforces MFA or SSO also refuses users without it)".to_owned()
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

/// Reads an error answer's body, JSON or not, into a message and per-field details
/// ([`describe`]). A body that is not JSON is summarised: an HTML page (what a gateway or
/// proxy sends for a 502 or 504, inferred) by its title, other text by its first line; an
/// empty one gives "no details given".
pub(crate) fn describe_answer(bytes: &[u8]) -> (String, Vec<String>) {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return describe(&body);
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return ("no details given".to_owned(), Vec::new());
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") || lower.contains("<body")
    {
        let title = lower
            .find("<title>")
            .map(|start| start + "<title>".len())
            .and_then(|start| {
                let end = lower[start..].find("</title>")? + start;
                Some(clean_text(text[start..end].trim()))
            })
            .filter(|title| !title.is_empty());
        let message = match title {
            Some(title) => format!(
                "the gateway answered with an HTML error page (\"{}\")",
                shown_short(&title)
            ),
            None => "the gateway answered with an HTML error page".to_owned(),
        };
        return (message, Vec::new());
    }
    let first = text.lines().next().unwrap_or_default();
    (
        format!(
            "the answer is not JSON: {}",
            shown_short(&clean_text(first))
        ),
        Vec::new(),
    )
}

/// `text` cut at 200 characters: a summary's quote.
fn shown_short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `parts` joined with `: `, without doubling punctuation: a part's closing `.`, `:` or `;` is
/// dropped before the next one (`Invalid API token.` and `invalid_grant` read
/// `Invalid API token: invalid_grant`).
fn join_parts(parts: &[String]) -> String {
    let mut message = String::new();
    for part in parts {
        if !message.is_empty() {
            let kept = message.trim_end_matches(['.', ':', ';', ' ']).len();
            message.truncate(kept);
            message.push_str(": ");
        }
        message.push_str(part);
    }
    message
}

/// Reads the API's error body (`message`, `title`, `detail`; the auth server's
/// `error_description`, `error_hint` and `error`) into a message and per-field details, each
/// [`clean_text`]. An API may echo what it was sent: the client redacts its tokens from the
/// result, and the applier the secret a write sent.
pub(crate) fn describe(body: &serde_json::Value) -> (String, Vec<String>) {
    let body = crate::wire::ErrorBody::read(body);
    let mut parts = Vec::new();
    for text in [
        &body.message,
        &body.title,
        &body.error_description,
        &body.error_hint,
        &body.error,
    ]
    .into_iter()
    .flatten()
    {
        let text = clean_text(text.trim());
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
    let mut message = join_parts(&parts);
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
    fn non_json_answers_are_summarised_and_punctuation_is_not_doubled() {
        let page =
            b"<!DOCTYPE html><html><head><title> 504 Gateway Time-out </title></head></html>";
        assert_eq!(
            describe_answer(page).0,
            "the gateway answered with an HTML error page (\"504 Gateway Time-out\")"
        );
        assert_eq!(
            describe_answer(b"<html><body>x</body></html>").0,
            "the gateway answered with an HTML error page"
        );
        assert_eq!(describe_answer(b"").0, "no details given");
        assert_eq!(
            describe_answer(b"upstream connect error\nmore").0,
            "the answer is not JSON: upstream connect error"
        );
        let oauth = serde_json::json!({"error": "invalid_grant", "error_description": "Invalid API token."});
        assert_eq!(describe(&oauth).0, "Invalid API token: invalid_grant");
        let newer = serde_json::json!({"error": "request_unauthorized",
            "error_description": "The request could not be authorized.", "error_hint": "The API token is invalid."});
        assert_eq!(
            describe(&newer).0,
            "The request could not be authorized: The API token is invalid: request_unauthorized"
        );
    }

    #[test]
    fn a_403_says_what_it_needs() {
        let forbidden = |path: &str, message: &str| ApiError::Status {
            call: Call {
                method: "GET".into(),
                path: path.into(),
            },
            status: 403,
            message: message.into(),
            details: Vec::new(),
        };
        let project = forbidden("/projects/p1/integrations", "Forbidden");
        assert!(project.to_string().contains("needs the project admin role"));
        assert_eq!(project.hints().len(), 2);
        let mfa = forbidden("/projects/p1/integrations", "MFA is required");
        assert!(mfa.to_string().contains("enforces MFA or SSO"));
        assert_eq!(mfa.hints(), vec![MFA_SSO_HINT.to_owned()]);
    }

    #[test]
    fn describes_the_api_error_shape() {
        let body = serde_json::json!({"status": "Invalid input", "message": "This field is required.",
            "code": 400, "detail": {"repository": ["This field is required."]}, "title": "Bad Request"});
        let (message, details) = describe(&body);
        assert_eq!(details, vec!["repository: This field is required."]);
        assert_eq!(
            message,
            "This field is required: Bad Request (repository: This field is required.)"
        );
    }
}
