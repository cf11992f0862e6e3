//! Every request body bbsync can send, checked against the published OpenAPI schemas, so the
//! client cannot drift from the real API. PATCH bodies are checked with `required` relaxed: a
//! PATCH sends changes only.
//!
//! Besides the body builders one by one, the bodies apply actually sends are checked whole:
//! every POST and PATCH the sandbox records over applies of a matrix of manifests (every
//! combination of the boolean options per type, each `environment_init_resources`, both kinds
//! of Cloud credentials, then every option changed, then credentials rotated). And every
//! activity the sandbox answers is checked against the spec's `Activity`.
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

/// The spec schema of a write's body, by method and integration type.
fn schema_of_write(method: &str, kind: IntegrationType) -> &'static str {
    match method {
        "POST" => "create",
        "PATCH" => "patch",
        other => panic!("no body schema for {other} ({kind})"),
    }
}

/// A manifest option: not set, or set to this YAML value.
fn option(name: &str, value: Option<&str>) -> String {
    value.map_or_else(String::new, |v| format!("      {name}: {v}\n"))
}

/// `None`, `true`, `false`, picked by `digit` (0, 1, 2).
fn boolean(digit: usize) -> Option<&'static str> {
    [None, Some("true"), Some("false")][digit % 3]
}

/// The next value of a boolean option: unset becomes `false`, a set one flips.
fn flipped(value: Option<&'static str>) -> Option<&'static str> {
    match value {
        None | Some("true") => Some("false"),
        _ => Some("true"),
    }
}

const INIT: [Option<&str>; 5] = [
    None,
    Some("default"),
    Some("manual"),
    Some("minimum"),
    Some("parent"),
];

/// One project of the matrix: its manifest entry. `bools` are the options' values in order.
/// Not `build_pull_requests_post_merge` nor `pull_requests_max_pages`: the Platform.sh spec
/// does not know them (GitHub-only, Upsun-only), and `validate` warns when a manifest sets them.
fn matrix_project(
    id: &str,
    cloud: bool,
    bools: &[Option<&str>],
    init: Option<&str>,
    addon: bool,
) -> String {
    let mut entry = format!("  {id}:\n");
    if cloud {
        entry.push_str("    bitbucket:\n      repository: acme/");
        entry.push_str(id);
        entry.push('\n');
        entry.push_str(if addon {
            "      addon_credentials: {addon_key: addon, client_key: client, shared_secret: \"${BITBUCKET_SECRET}\"}\n"
        } else {
            "      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n"
        });
        for (name, value) in [
            "fetch_branches",
            "prune_branches",
            "build_pull_requests",
            "resync_pull_requests",
            "pull_requests_clone_parent_data",
        ]
        .into_iter()
        .zip(bools)
        {
            entry.push_str(&option(name, *value));
        }
    } else {
        entry.push_str(&format!(
            "    bitbucket_server:\n      url: https://bb.example.com\n      username: bot\n      token: ${{BBS_TOKEN}}\n      project: WEB\n      repository: {id}\n"
        ));
        for (name, value) in [
            "fetch_branches",
            "prune_branches",
            "build_pull_requests",
            "pull_requests_clone_parent_data",
        ]
        .into_iter()
        .zip(bools)
        {
            entry.push_str(&option(name, *value));
        }
    }
    entry.push_str(&option("environment_init_resources", init));
    entry
}

/// Two manifests over the same projects: every combination of the boolean options (unset,
/// true, false) of each type, with every `environment_init_resources` and both kinds of Cloud
/// credentials spread over them; the second flips every option, so that applying it after the
/// first patches each of them.
fn matrix_manifests() -> (String, String) {
    let (mut first, mut second) = (
        "version: 1\nprojects:\n".to_owned(),
        "version: 1\nprojects:\n".to_owned(),
    );
    for (cloud, options) in [(true, 5u32), (false, 4u32)] {
        for n in 0..3usize.pow(options) {
            let id = format!("{}{n:03}", if cloud { "c" } else { "s" });
            let bools: Vec<Option<&str>> =
                (0..options).map(|i| boolean(n / 3usize.pow(i))).collect();
            let init = INIT[n % INIT.len()];
            let next_init = INIT[(n + 1) % INIT.len()].or(Some("parent"));
            let addon = n % 2 == 1;
            first.push_str(&matrix_project(&id, cloud, &bools, init, addon));
            let flipped: Vec<Option<&str>> = bools.iter().copied().map(flipped).collect();
            second.push_str(&matrix_project(&id, cloud, &flipped, next_init, !addon));
        }
    }
    (first, second)
}

#[test]
fn every_body_apply_sends_over_a_matrix_of_manifests_matches_the_spec() {
    use crate::sync::{Api, dir_with};
    use bbsync::sandbox::Faults;
    let spec = spec();
    let (first, second) = matrix_manifests();
    let projects: Vec<Value> = (0..243)
        .map(|n| serde_json::json!({"id": format!("c{n:03}")}))
        .chain((0..81).map(|n| serde_json::json!({"id": format!("s{n:03}")})))
        .collect();
    let api = Api::start(serde_json::json!({"projects": projects}), Faults::default());
    let dir = dir_with(&first);
    let created = api
        .run_quietly(dir.path(), &["apply", "--auto-approve"])
        .run();
    assert_eq!(created.code, 0, "{created:#?}");
    // What apply made, a plan finds in sync: the create's own additions (the CLI's
    // `environment_init_resources: parent`) and the API's defaults included.
    let plan = api
        .run_quietly(dir.path(), &["plan", "--detailed-exitcode"])
        .run();
    assert_eq!(plan.code, 0, "{plan:#?}");
    std::fs::write(dir.path().join("integrations.yaml"), &second).unwrap();
    let updated = api
        .run_quietly(dir.path(), &["apply", "--auto-approve"])
        .run();
    assert_eq!(updated.code, 0, "{updated:#?}");
    let rotated = api
        .run_quietly(
            dir.path(),
            &["apply", "--auto-approve", "--rotate-credentials"],
        )
        .run();
    assert_eq!(rotated.code, 0, "{rotated:#?}");
    let world = api.sandbox.world();
    let mut checked = std::collections::BTreeMap::<&str, usize>::new();
    for write in world.writes.iter().filter(|w| w.method != "DELETE") {
        let project = write.path.split('/').nth(2).unwrap();
        let kind = if project.starts_with('c') {
            IntegrationType::Bitbucket
        } else {
            IntegrationType::BitbucketServer
        };
        let operation = schema_of_write(&write.method, kind);
        let problems = problems_with(&spec, operation, kind, &write.body);
        assert!(
            problems.is_empty(),
            "{} {}: {}\n{problems:#?}",
            write.method,
            write.path,
            write.body
        );
        *checked.entry(operation).or_default() += 1;
    }
    assert_eq!(checked.get("create"), Some(&324), "{checked:?}");
    assert!(
        checked.get("patch").is_some_and(|n| *n >= 2 * 324),
        "{checked:?}"
    );
}

#[test]
fn the_matrix_check_fails_on_a_field_the_spec_does_not_know_or_a_wrong_type() {
    let spec = spec();
    let unknown = serde_json::json!({"fetch_branches": true, "build_draft_pull_requests": true});
    assert_eq!(
        problems_with(&spec, "patch", IntegrationType::Bitbucket, &unknown),
        [".build_draft_pull_requests: not allowed by the spec"]
    );
    let wrong = serde_json::json!({"type": "bitbucket_server", "url": "https://x", "username": "u", "token": "t",
                                   "project": "P", "repository": "r", "fetch_branches": "yes",
                                   "environment_init_resources": "everything"});
    let problems = problems_with(&spec, "create", IntegrationType::BitbucketServer, &wrong);
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_activity_the_sandbox_answers_matches_the_spec() {
    use bbsync::model::ids::ProjectId;
    use bbsync::sandbox::{ActivityEnding, Faults};
    let spec = spec();
    let cases = [
        ("slow", ActivityEnding::AsSeeded, 3600),
        ("ok", ActivityEnding::AsSeeded, 0),
        ("hooks", ActivityEnding::AsSeeded, 0),
        ("cancelled", ActivityEnding::Cancelled, 0),
        ("silent", ActivityEnding::FailedSilently, 0),
        ("never", ActivityEnding::Never, 0),
    ];
    let projects: Vec<Value> = cases
        .iter()
        .map(|(id, _, _)| serde_json::json!({"id": id, "fail_activities": *id == "hooks"}))
        .collect();
    let sb =
        crate::live::sandbox(serde_json::json!({"projects": projects}), Faults::default()).await;
    let client = crate::live::client_for(&sb);
    let body = serde_json::json!({"type": "bitbucket", "repository": "a/b"});
    // Pending (`slow`: an hour's delay) and every way of ending.
    for (project, ending, delay) in cases {
        {
            let mut world = sb.world();
            world.activity_ending = ending;
            world.activity_delay = std::time::Duration::from_secs(delay);
        }
        client
            .create_integration(&ProjectId::new(project), &body, &|_| false)
            .await
            .unwrap();
    }
    let world = sb.world();
    let activity = serde_json::json!({"$ref": "#/components/schemas/Activity"});
    let mut states = std::collections::BTreeSet::new();
    for (project, _, _) in cases {
        let listed = world.activities_of(project);
        assert_eq!(listed.len(), 2, "{project}");
        for mut item in listed {
            states.insert(item["state"].as_str().unwrap().to_owned());
            // Not in the Platform.sh spec's `Activity`, and in every real one: `id` (the Upsun
            // spec has it) and the HAL `_links` (platformsh-api.md §1.3, §1.4).
            let object = item.as_object_mut().unwrap();
            assert!(object.remove("id").is_some() && object.remove("_links").is_some());
            let mut problems = Vec::new();
            check(&spec, &activity, &item, "", false, &mut problems);
            assert!(problems.is_empty(), "{project}: {item:#}\n{problems:#?}");
        }
    }
    assert_eq!(
        states.into_iter().collect::<Vec<_>>(),
        ["cancelled", "complete", "in_progress", "pending"]
    );
}
