//! Error bodies: the API's (spec `Error`) and the auth server's (OAuth 2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::lenient;

/// An error body of the API or the auth server. Every part is optional, and a part of the
/// wrong type reads as absent: an error must always be describable. Parts absent are not
/// written.
///
/// * The API: spec `Error`, `{status, message, code, detail, title}`, `detail` mapping each
///   field to its messages (platformsh-api.md §1.8).
/// * The auth server: OAuth 2 `{error, error_description}` (platformsh-api.md §3.1), and the
///   newer one's `{error, error_description, error_hint}` (legacy-cli
///   `ApiTokenLoginCommand::exceptionMeansInvalidToken`, "new auth provider").
/// * A refused access token: `{error, message, code}` (inferred).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    /// OAuth 2 error code (`invalid_grant`, `invalid_token`, ...).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<String>,
    /// OAuth 2 description.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_description: Option<String>,
    /// The newer auth server's hint (`The API token is invalid.`): legacy-cli
    /// `ApiTokenLoginCommand::exceptionMeansInvalidToken` and `BrowserLoginCommand` read it.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_hint: Option<String>,
    /// The status text (`Bad Request`, `Invalid input`, ...).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    /// What went wrong.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub message: Option<String>,
    /// The HTTP status, repeated.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<u16>,
    /// Details: usually field -> messages, sometimes a list or a string (the CLI copes with
    /// each: platformsh-api.md §1.8), so kept as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
    /// The status's reason phrase.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<String>,
}

impl ErrorBody {
    /// Reads any JSON as an error body: anything but an object has no parts.
    pub(crate) fn read(body: &Value) -> Self {
        if body.is_object() {
            Self::deserialize(body).unwrap_or_default()
        } else {
            Self::default()
        }
    }
}

/// A `detail` of per-field messages, `{field: [message, ...]}` (spec `Error` example).
pub(crate) fn field_detail<'a>(problems: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let mut detail = Map::new();
    for (field, message) in problems {
        let entry = detail
            .entry(field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(messages) = entry {
            messages.push(Value::String(message.to_owned()));
        }
    }
    Value::Object(detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_any_error_shape_and_writes_the_spec_one() {
        let spec = json!({"status": "Invalid input", "message": "This field is required.",
            "code": 400, "detail": field_detail([("field", "This field is required.")]), "title": "Bad Request"});
        let read = ErrorBody::read(&spec);
        assert_eq!(read.code, Some(400));
        assert_eq!(serde_json::to_value(&read).unwrap(), spec);
        let odd = ErrorBody::read(&json!({"message": 5, "code": "x", "error": "invalid_grant"}));
        assert_eq!((odd.message, odd.code), (None, None));
        assert_eq!(odd.error.as_deref(), Some("invalid_grant"));
        assert_eq!(ErrorBody::read(&json!(["a", "b"])), ErrorBody::default());
    }
}
