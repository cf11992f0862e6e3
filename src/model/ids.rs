//! Identifier newtypes, so a project ID is never passed where an integration ID belongs.

use std::fmt;

use schemars::JsonSchema;
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

/// Whether `text` is an organization ID: a ULID, 26 of Crockford's base-32 digits in capitals
/// (the spec's `OrganizationID` is `format: ulid`; legacy-cli
/// `CommandBase::validateOrganizationInput` tells an ID from a name by
/// `^[0-9A-HJKMNP-TV-Z]{26}$`).
pub fn is_ulid(text: &str) -> bool {
    text.len() == 26
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

/// Whether `text` could be an organization's machine name: lowercase letters, digits, `-` and
/// `_`, at most 64. legacy-cli (`validateOrganizationInput`): "Organization names have to be
/// lower case"; `organization:create` slugifies the label into one. The length and `_` are
/// inferred.
fn is_organization_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `text` names an organization: its ID ([`is_ulid`]) or its name, which bbsync
/// resolves to the ID online by the name lookup of the API (`name=` prefix, spec `get-org`).
fn is_organization(text: &str) -> bool {
    is_ulid(text) || is_organization_name(text)
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $valid:expr, $form:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
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
    /// A Platform.sh organization: its ID (a ULID) or its name, resolved online.
    OrganizationId,
    is_organization,
    "an organization ID (a ULID: 26 digits and capital letters) or an organization name (lowercase letters, digits, `-` and `_`)"
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
        // An ID is a ULID; anything else is a name (lowercase), looked up online.
        assert!(
            "01H5ZF6Y7W9QK8X3M2N4P6R8T0"
                .parse::<OrganizationId>()
                .is_ok()
        );
        assert!("acme-inc".parse::<OrganizationId>().is_ok());
        for wrong in [
            "01HDEMO-ORG_1",
            "Acme",
            "01H5ZF6Y7W9QK8X3M2N4P6R8TO",
            "a/b",
            "",
        ] {
            assert!(wrong.parse::<OrganizationId>().is_err(), "{wrong}");
        }
        assert!(is_ulid("01H5ZF6Y7W9QK8X3M2N4P6R8T0"));
        assert!(
            !is_ulid("01h5zf6y7w9qk8x3m2n4p6r8t0"),
            "a lowercase one is a name"
        );
        assert!("5aut2djgt6kdd".parse::<IntegrationId>().is_ok());
        for hostile in ["../gh1", "a/b", "x%2F", "A1", "a-b", "", "a.b"] {
            assert!(hostile.parse::<IntegrationId>().is_err(), "{hostile}");
            assert!(!IntegrationId::new(hostile).is_valid(), "{hostile}");
        }
    }
}
