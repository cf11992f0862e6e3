//! Identifier newtypes, so a project ID is never passed where an integration ID belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether `text` is a Platform.sh project ID: lowercase letters and digits, at most 64
/// (the form the API gives, such as `abcdefgh1234k`). The manifest and `--project` both use it.
pub(crate) fn is_project_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `text` is a Platform.sh integration ID: lowercase letters and digits, at most 64
/// (the API's IDs are 13 of them, platformsh-api.md §2.1). An ID goes into the path of every
/// write, so nothing else is accepted: `../` or `/` would send a write elsewhere.
pub(crate) fn is_integration_id(text: &str) -> bool {
    is_project_id(text)
}

/// Whether `text` is a well-formed organization ID: letters, digits, `-` and `_`, at most 64
/// (inferred: the spec types them as strings; ULIDs and API IDs fit).
fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $valid:expr, $form:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier already known to be well formed.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier as text.
            pub(crate) fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                if $valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(format!(concat!("`{}` is not ", $form), s))
                }
            }
        }
    };
}

identifier!(
    /// A Platform.sh project ID, such as `abcdefgh1234k`.
    ProjectId,
    is_project_id,
    "a Platform.sh project ID (lowercase letters and digits, at most 64)"
);
identifier!(
    /// A Platform.sh organization ID.
    OrganizationId,
    is_identifier,
    "a valid ID (letters, digits, `-` and `_`, at most 64)"
);
identifier!(
    /// A server-assigned integration ID.
    IntegrationId,
    is_integration_id,
    "an integration ID (lowercase letters and digits, at most 64)"
);

impl IntegrationId {
    /// Whether it is well formed ([`is_integration_id`]): [`IntegrationId::new`] does not check.
    pub(crate) fn is_valid(&self) -> bool {
        is_integration_id(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_parse_as_the_manifest_accepts_them() {
        assert!("abcdefgh1234k".parse::<ProjectId>().is_ok());
        // `--project ABC` used to parse and then never match a manifest entry.
        assert!("ABC".parse::<ProjectId>().is_err());
        assert!("a-b".parse::<ProjectId>().is_err());
        assert!("01HDEMO-ORG_1".parse::<OrganizationId>().is_ok());
        assert!("5aut2djgt6kdd".parse::<IntegrationId>().is_ok());
        for hostile in ["../gh1", "a/b", "x%2F", "A1", "a-b", "", "a.b"] {
            assert!(hostile.parse::<IntegrationId>().is_err(), "{hostile}");
            assert!(!IntegrationId::new(hostile).is_valid(), "{hostile}");
        }
    }
}
