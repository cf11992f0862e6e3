//! What the API stores for the fields a create leaves out: one table, for the sandbox (which
//! applies it) and for simulations of the API in tests (which must agree with it).
//!
//! The spec declares no defaults at all (platformsh-api.md §2); each value says where it
//! comes from.

use serde_json::Value;

use crate::model::IntegrationType;
#[cfg(test)]
use crate::model::{Field, FieldValue};

/// The top-level fields the API fills in when a create of `kind` omits them, with their
/// values, in the order the API lists them.
///
/// Note the quirk kept here: `prune_branches` defaults to true even when the create says
/// `fetch_branches: false`, which then fails the API's own validation (platformsh-api.md
/// §4.2, legacy-cli PR #1264).
pub(crate) fn on_create(kind: IntegrationType) -> Vec<(&'static str, Value)> {
    let mut defaults = vec![
        // Documented defaults (platformsh-api.md §2.1, §2.2, §4.4 item 2).
        ("fetch_branches", Value::Bool(true)),
        ("prune_branches", Value::Bool(true)),
        ("build_pull_requests", Value::Bool(true)),
        // Documented for Server (§2.2); for Cloud the default is unknown (§2.1): inferred the
        // same.
        ("pull_requests_clone_parent_data", Value::Bool(true)),
        // The API default is unknown (§2.1; the CLI always sends `parent`): inferred.
        (
            "environment_init_resources",
            Value::String("default".to_owned()),
        ),
    ];
    if kind == IntegrationType::Bitbucket {
        defaults.extend([
            // Documented (§2.1).
            ("resync_pull_requests", Value::Bool(false)),
            // null = no limit (§2.1, Upsun spec only).
            ("pull_requests_max_pages", Value::Null),
            // Both credential objects are nullable (spec `BitbucketIntegration`): the one not
            // given reads as null (§2.3).
            ("app_credentials", Value::Null),
            ("addon_credentials", Value::Null),
        ]);
    }
    defaults
}

/// [`on_create`] as managed fields and values: the defaults a model of the API fills in
/// (a null default leaves the field absent, as reading it does).
#[cfg(test)]
pub(crate) fn on_create_fields(kind: IntegrationType) -> Vec<(Field, FieldValue)> {
    on_create(kind)
        .into_iter()
        .filter_map(|(key, value)| {
            let field = Field::ALL
                .into_iter()
                .find(|f| f.applies_to(kind) && f.api_path() == (key, None))?;
            Some((field, FieldValue::from_json(&value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_defaults_as_fields() {
        let cloud = on_create_fields(IntegrationType::Bitbucket);
        assert!(cloud.contains(&(
            Field::EnvironmentInitResources,
            FieldValue::Text("default".into())
        )));
        assert!(cloud.contains(&(Field::ResyncPullRequests, FieldValue::Bool(false))));
        assert!(!cloud.iter().any(|(f, _)| *f == Field::PullRequestsMaxPages));
        let server = on_create_fields(IntegrationType::BitbucketServer);
        assert!(!server.iter().any(|(f, _)| *f == Field::ResyncPullRequests));
        assert_eq!(server.len(), 5);
    }
}
