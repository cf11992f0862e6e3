//! Every request body bbsync can send, checked against the published OpenAPI schemas, so the
//! client cannot drift from the real API. PATCH bodies are checked with `required` relaxed: a
//! PATCH sends changes only.
//!
//! The schemas come from a committed cut of the published Platform.sh spec,
//! `tests/spec/openapispec-platformsh.cut.json`, made by `tests/spec/cut.py` (see
//! `tests/spec/README.md`). A missing cut, or one without a schema used here, fails the tests.

use std::collections::BTreeMap;

use bbsync::model::secret::Secret;
use bbsync::model::{Field, FieldValue, IntegrationType, SecretField};
use bbsync::wire::body;
use serde_json::Value;

/// The committed cut of the spec, relative to the crate root.
const SPEC: &str = "tests/spec/openapispec-platformsh.cut.json";

/// The component schema each body is checked against: integration type, operation, name.
/// Every schema these tests look up by name is here.
const SCHEMAS: [(IntegrationType, &str, &str); 4] = [
    (
        IntegrationType::Bitbucket,
        "create",
        "BitbucketIntegrationCreateInput",
    ),
    (
        IntegrationType::Bitbucket,
        "patch",
        "BitbucketIntegrationPatch",
    ),
    (
        IntegrationType::BitbucketServer,
        "create",
        "BitbucketServerIntegrationCreateInput",
    ),
    (
        IntegrationType::BitbucketServer,
        "patch",
        "BitbucketServerIntegrationPatch",
    ),
];

/// The cut, parsed; panics (the test fails) if it is missing or not JSON.
fn spec() -> Value {
    let path = crate::common::root().join(SPEC);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "the OpenAPI spec cut is missing: {}: {error} (regenerate it: see tests/spec/README.md)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|error| {
        panic!(
            "the OpenAPI spec cut {} is not JSON: {error}",
            path.display()
        )
    })
}

/// Every `$ref` in `node`, recursively.
fn refs<'a>(node: &'a Value, found: &mut Vec<&'a str>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => found.push(reference),
                    _ => refs(value, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|value| refs(value, found)),
        _ => {}
    }
}

/// A small checker for the OpenAPI 3.0 subset these schemas use.
fn check(
    spec: &Value,
    schema: &Value,
    value: &Value,
    path: &str,
    relax_required: bool,
    problems: &mut Vec<String>,
) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = spec
            .pointer(reference.trim_start_matches('#'))
            .expect("a resolvable $ref");
        return check(spec, target, value, path, relax_required, problems);
    }
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    let ok = match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("array") => value.is_array(),
        _ => true,
    };
    if !ok {
        problems.push(format!("{path}: wrong type"));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!("{path}: {value} not in enum"));
    }
    if let Value::Object(map) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, child) in map {
            match properties.and_then(|p| p.get(key)) {
                Some(child_schema) => check(
                    spec,
                    child_schema,
                    child,
                    &format!("{path}.{key}"),
                    relax_required,
                    problems,
                ),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    problems.push(format!("{path}.{key}: not allowed by the spec"));
                }
                None => {}
            }
        }
        // Nested objects (credentials) are always sent whole, so their `required` always holds.
        let top = path.is_empty();
        if !(relax_required && top) {
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().unwrap();
                if !map.contains_key(name) {
                    problems.push(format!("{path}.{name}: required by the spec"));
                }
            }
        }
    }
}

fn all_fields(kind: IntegrationType) -> BTreeMap<Field, FieldValue> {
    Field::ALL
        .into_iter()
        .filter(|f| f.applies_to(kind))
        // Not in the Platform.sh spec: `validate` warns when a manifest sets them.
        .filter(|f| {
            !matches!(
                f,
                Field::BuildPullRequestsPostMerge | Field::PullRequestsMaxPages
            )
        })
        .filter(|f| !matches!(f, Field::AddonKey | Field::ClientKey))
        .map(|f| {
            let value = match f {
                Field::EnvironmentInitResources => FieldValue::Text("parent".into()),
                Field::Repository if kind == IntegrationType::Bitbucket => {
                    FieldValue::Text("acme/web".into())
                }
                Field::Url => FieldValue::Text("https://bb.example.com".into()),
                Field::Repository | Field::Username | Field::Project | Field::AppKey => {
                    FieldValue::Text("x".into())
                }
                _ => FieldValue::Bool(false),
            };
            (f, value)
        })
        .collect()
}

/// Every body the body builders make for every field, whole and one field at a time.
pub fn every_body() -> Vec<(&'static str, IntegrationType, Value)> {
    let secret = Secret::new("s");
    let mut bodies = Vec::new();
    for kind in [IntegrationType::Bitbucket, IntegrationType::BitbucketServer] {
        let all = all_fields(kind);
        let secret_field = kind.secret_field(false);
        bodies.push((
            "create",
            kind,
            body::create(kind, &all, (secret_field, &secret)),
        ));
        for (field, value) in &all {
            let one: BTreeMap<Field, FieldValue> = [(*field, value.clone())].into_iter().collect();
            match body::patch(&one, &all, None) {
                Ok(patch) => bodies.push(("patch", kind, patch)),
                // A credential object can only be sent whole; the builder refuses a part.
                Err(_) => assert!(field.api_path().1.is_some(), "{field} refused"),
            }
            let with_secret = body::patch(&one, &all, Some((secret_field, &secret)));
            bodies.push(("patch", kind, with_secret.expect("credentials given")));
        }
    }
    let mut addon = all_fields(IntegrationType::Bitbucket);
    addon.remove(&Field::AppKey);
    addon.insert(Field::AddonKey, FieldValue::Text("a".into()));
    addon.insert(Field::ClientKey, FieldValue::Text("c".into()));
    bodies.push((
        "create",
        IntegrationType::Bitbucket,
        body::create(
            IntegrationType::Bitbucket,
            &addon,
            (SecretField::AddonSharedSecret, &secret),
        ),
    ));
    bodies.push((
        "patch",
        IntegrationType::Bitbucket,
        body::patch(
            &BTreeMap::new(),
            &addon,
            Some((SecretField::AddonSharedSecret, &secret)),
        )
        .unwrap(),
    ));
    bodies
}

pub fn problems_with(
    spec: &Value,
    operation: &str,
    kind: IntegrationType,
    body: &Value,
) -> Vec<String> {
    let (_, _, name) = SCHEMAS
        .iter()
        .find(|(k, op, _)| *k == kind && *op == operation)
        .unwrap_or_else(|| panic!("no schema for {operation} {kind}"));
    let schema = serde_json::json!({"$ref": format!("#/components/schemas/{name}")});
    let mut problems = Vec::new();
    check(spec, &schema, body, "", operation == "patch", &mut problems);
    problems
}

#[test]
fn every_body_matches_the_published_schemas() {
    let spec = spec();
    let bodies = every_body();
    assert!(bodies.len() > 20);
    for (operation, kind, body) in &bodies {
        let problems = problems_with(&spec, operation, *kind, body);
        assert!(
            problems.is_empty(),
            "{operation} {kind}: {body}\n{problems:#?}"
        );
    }
}

#[test]
fn the_checker_catches_a_drifted_body() {
    let spec = spec();
    let bad = serde_json::json!({"type": "bitbucket", "repository": "a/b", "app_credentials": {"key": "k"}, "fetch_branch": true});
    let problems = problems_with(&spec, "create", IntegrationType::Bitbucket, &bad);
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[test]
fn the_cut_holds_every_schema_the_tests_use() {
    let spec = spec();
    let source = spec
        .pointer("/info/x-bbsync-source/sha256")
        .and_then(Value::as_str);
    assert!(
        source.is_some_and(|sha| sha.len() == 64),
        "{SPEC} does not record its source (info.x-bbsync-source): regenerate it with tests/spec/cut.py"
    );
    for (kind, operation, name) in SCHEMAS {
        let pointer = format!("/components/schemas/{name}");
        let schema = spec.pointer(&pointer).unwrap_or_else(|| {
            panic!("{SPEC} lacks {name} ({operation} {kind}): regenerate it with tests/spec/cut.py")
        });
        assert!(
            schema.get("properties").is_some_and(Value::is_object),
            "{SPEC}: {name} has no properties"
        );
        // Everything the schema references, transitively, is in the cut too.
        let mut todo = vec![pointer];
        let mut seen = Vec::new();
        while let Some(pointer) = todo.pop() {
            if seen.contains(&pointer) {
                continue;
            }
            let node = spec
                .pointer(&pointer)
                .unwrap_or_else(|| panic!("{SPEC}: {name} references {pointer}, not in the cut"));
            let mut found = Vec::new();
            refs(node, &mut found);
            todo.extend(found.iter().map(|r| r.trim_start_matches('#').to_owned()));
            seen.push(pointer);
        }
    }
}
