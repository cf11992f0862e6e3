//! Identifier newtypes, so a project ID is never passed where an integration ID belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
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
            pub fn as_str(&self) -> &str {
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
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(format!("`{s}` is not a valid ID (letters, digits, `-` and `_`, at most 64)"))
                }
            }
        }
    };
}

identifier!(
    /// A Platform.sh project ID, such as `abcdefgh1234k`.
    ProjectId
);
identifier!(
    /// A Platform.sh organization ID.
    OrganizationId
);
identifier!(
    /// A server-assigned integration ID.
    IntegrationId
);
