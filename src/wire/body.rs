//! Request bodies for create and update, built from decided values. Pure: the plan decided
//! what to send; this only lays it out the way the API's schemas want it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::secret::Secret;
use crate::model::{Field, FieldValue, IntegrationType, SecretField};

/// What a create sends for a field the manifest leaves unmanaged, as `platform integration:add`
/// does: `environment_init_resources: parent`. Source: legacy-cli
/// `src/Command/Integration/IntegrationCommandBase.php`, field `environment_init_resources`
/// (option `--resources-init`, `'default' => 'parent'`, `'required' => false`, for the types
/// bitbucket, bitbucket_server, github and gitlab); the add command sends every field whose
/// conditions hold with its default (platformsh-api.md §4.1, §4.2, §2.3 examples). The API's own
/// default when the field is omitted is unknown (§2.1), so sending it makes the result known.
/// Only on create: the field stays unmanaged, never compared nor patched.
pub(crate) fn unmanaged_on_create(kind: IntegrationType) -> Vec<(Field, FieldValue)> {
    [(
        Field::EnvironmentInitResources,
        FieldValue::Text("parent".to_owned()),
    )]
    .into_iter()
    .filter(|(field, _)| field.applies_to(kind))
    .collect()
}

/// The body of a POST: the type, every field, what the CLI sends for the fields left
/// unmanaged ([`unmanaged_on_create`]), and the credentials.
pub fn create(
    kind: IntegrationType,
    fields: &BTreeMap<Field, FieldValue>,
    secret: (SecretField, &Secret),
) -> Value {
    let mut body = Map::new();
    body.insert("type".to_owned(), kind.as_str().into());
    for (field, value) in fields {
        put(&mut body, field.api_path(), value.to_json());
    }
    for (field, value) in unmanaged_on_create(kind) {
        if !fields.contains_key(&field) {
            put(&mut body, field.api_path(), value.to_json());
        }
    }
    put(&mut body, secret.0.api_path(), secret.1.expose().into());
    Value::Object(body)
}

/// A PATCH that would change part of a credential object without its secret: the API's schema
/// requires the object whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("changing `{0}` requires sending the credentials with it")]
pub struct IncompleteCredentials(pub &'static str);

/// The body of a PATCH: only `changes`, never `type`. With `credentials`, the secret is sent,
/// and a credential object (`app_credentials`, `addon_credentials`) goes whole: its public
/// parts are taken from `all` (the desired fields) so the object is complete.
pub fn patch(
    changes: &BTreeMap<Field, FieldValue>,
    all: &BTreeMap<Field, FieldValue>,
    credentials: Option<(SecretField, &Secret)>,
) -> Result<Value, IncompleteCredentials> {
    if credentials.is_none()
        && let Some(field) = changes.keys().find(|f| f.api_path().1.is_some())
    {
        return Err(IncompleteCredentials(field.name()));
    }
    let mut body = Map::new();
    for (field, value) in changes {
        put(&mut body, field.api_path(), value.to_json());
    }
    if let Some((secret_field, secret)) = credentials {
        let (object, _) = secret_field.api_path();
        for (field, value) in all {
            if field.api_path().0 == object && field.api_path().1.is_some() {
                put(&mut body, field.api_path(), value.to_json());
            }
        }
        put(&mut body, secret_field.api_path(), secret.expose().into());
    }
    Ok(Value::Object(body))
}

fn put(body: &mut Map<String, Value>, (key, inner): (&str, Option<&str>), value: Value) {
    match inner {
        None => {
            body.insert(key.to_owned(), value);
        }
        Some(inner) => {
            let object = body
                .entry(key.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = object {
                map.insert(inner.to_owned(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(pairs: &[(Field, FieldValue)]) -> BTreeMap<Field, FieldValue> {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn create_nests_credentials() {
        let secret = Secret::new("s");
        let body = create(
            IntegrationType::Bitbucket,
            &fields(&[
                (Field::Repository, FieldValue::Text("a/b".into())),
                (Field::AppKey, FieldValue::Text("k".into())),
                (Field::FetchBranches, FieldValue::Bool(false)),
                (Field::PruneBranches, FieldValue::Bool(false)),
            ]),
            (SecretField::AppSecret, &secret),
        );
        assert_eq!(
            body,
            json!({"type": "bitbucket", "repository": "a/b", "app_credentials": {"key": "k", "secret": "s"},
                   "fetch_branches": false, "prune_branches": false, "environment_init_resources": "parent"})
        );
    }

    #[test]
    fn create_sends_the_cli_default_for_unmanaged_init_resources() {
        let secret = Secret::new("s");
        for kind in [IntegrationType::Bitbucket, IntegrationType::BitbucketServer] {
            let unmanaged = create(
                kind,
                &fields(&[(Field::Repository, FieldValue::Text("a/b".into()))]),
                (kind.secret_field(false), &secret),
            );
            assert_eq!(
                unmanaged["environment_init_resources"],
                json!("parent"),
                "{kind}"
            );
            // A managed value is sent as it is, never overridden.
            let managed = create(
                kind,
                &fields(&[
                    (Field::Repository, FieldValue::Text("a/b".into())),
                    (
                        Field::EnvironmentInitResources,
                        FieldValue::Text("minimum".into()),
                    ),
                ]),
                (kind.secret_field(false), &secret),
            );
            assert_eq!(
                managed["environment_init_resources"],
                json!("minimum"),
                "{kind}"
            );
        }
        // A PATCH never sends it unless it changes.
        let changes = fields(&[(Field::BuildPullRequests, FieldValue::Bool(false))]);
        assert_eq!(
            patch(&changes, &changes, None),
            Ok(json!({"build_pull_requests": false}))
        );
    }

    #[test]
    fn patch_sends_only_changes_and_whole_credentials() {
        let all = fields(&[
            (Field::Repository, FieldValue::Text("a/b".into())),
            (Field::AppKey, FieldValue::Text("k".into())),
            (Field::BuildPullRequests, FieldValue::Bool(true)),
        ]);
        let changes = fields(&[(Field::BuildPullRequests, FieldValue::Bool(true))]);
        assert_eq!(
            patch(&changes, &all, None),
            Ok(json!({"build_pull_requests": true}))
        );
        let key = fields(&[(Field::AppKey, FieldValue::Text("k2".into()))]);
        assert_eq!(
            patch(&key, &all, None),
            Err(IncompleteCredentials("app_credentials.key"))
        );
        let secret = Secret::new("s");
        assert_eq!(
            patch(
                &BTreeMap::new(),
                &all,
                Some((SecretField::AppSecret, &secret))
            ),
            Ok(json!({"app_credentials": {"key": "k", "secret": "s"}}))
        );
        let server = fields(&[(Field::Username, FieldValue::Text("bot".into()))]);
        assert_eq!(
            patch(&server, &server, Some((SecretField::Token, &secret))),
            Ok(json!({"username": "bot", "token": "s"}))
        );
    }
}
