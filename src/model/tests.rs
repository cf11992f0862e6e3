//! Table tests for the model rules: one passing and one failing case per rule.

use super::*;
use crate::manifest;

fn env() -> Env {
    Env::new([
        ("KEY", "consumer-key"),
        ("SECRET", "s3cr3t-value"),
        ("TOKEN", "s3cr3t-value"),
        ("USER", "bot"),
    ])
}

fn build_text(text: &str) -> Built {
    let file = manifest::parse("m.yaml", text.as_bytes()).unwrap_or_else(|d| panic!("{d:#?}"));
    build(&[file], &env())
}

fn state(text: &str) -> DesiredState {
    let built = build_text(text);
    built
        .state
        .unwrap_or_else(|| panic!("{:#?}", built.diagnostics))
}

fn errors(text: &str) -> Vec<String> {
    build_text(text)
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect()
}

fn warnings(text: &str) -> Vec<String> {
    build_text(text)
        .warnings()
        .map(ToString::to_string)
        .collect()
}

const CREDS: &str = "      app_credentials: {key: '${KEY}', secret: '${SECRET}'}\n";

fn cloud(extra: &str) -> String {
    format!(
        "version: 1\nprojects:\n  abc:\n    bitbucket:\n      repository: acme/web\n{CREDS}{extra}"
    )
}

fn integration(state: &DesiredState) -> &DesiredIntegration {
    match &state.projects[&ProjectId::new("abc")].target {
        Target::Present(i) => i,
        Target::Absent => panic!("absent"),
    }
}

fn value(state: &DesiredState, field: Field) -> Option<FieldValue> {
    integration(state).fields.get(&field).cloned()
}

#[test]
fn omitted_options_take_the_table_defaults() {
    let s = state(&cloud(""));
    assert_eq!(
        value(&s, Field::FetchBranches),
        Some(FieldValue::Bool(true))
    );
    assert_eq!(
        value(&s, Field::PruneBranches),
        Some(FieldValue::Bool(true))
    );
    assert_eq!(
        value(&s, Field::BuildPullRequests),
        Some(FieldValue::Bool(true))
    );
    assert_eq!(
        value(&s, Field::ResyncPullRequests),
        Some(FieldValue::Bool(false))
    );
    assert_eq!(
        value(&s, Field::PullRequestsCloneParentData),
        None,
        "not managed for cloud"
    );
    assert_eq!(value(&s, Field::EnvironmentInitResources), None);
    assert_eq!(value(&s, Field::BuildPullRequestsPostMerge), None);
    assert_eq!(value(&s, Field::PullRequestsMaxPages), None);
    assert_eq!(
        value(&s, Field::AppKey),
        Some(FieldValue::Text("consumer-key".into()))
    );
}

#[test]
fn defaults_block_then_own_values() {
    let text = "version: 1\ndefaults:\n  build_pull_requests: false\n  resync_pull_requests: true\n  environment_init_resources: minimum\nprojects:\n  abc:\n    bitbucket:\n      repository: acme/web\n      resync_pull_requests: false\n"
        .to_owned()
        + CREDS;
    let s = state(&text);
    assert_eq!(
        value(&s, Field::BuildPullRequests),
        Some(FieldValue::Bool(false))
    );
    assert_eq!(
        value(&s, Field::ResyncPullRequests),
        Some(FieldValue::Bool(false))
    );
    assert_eq!(
        value(&s, Field::EnvironmentInitResources),
        Some(FieldValue::Text("minimum".into()))
    );
}

#[test]
fn defaults_skip_fields_a_type_does_not_have() {
    let text = "version: 1\ndefaults:\n  resync_pull_requests: true\nprojects:\n  abc:\n    bitbucket_server:\n      url: https://bb.example.com\n      username: bot\n      token: ${TOKEN}\n      project: WEB\n      repository: shop\n";
    let s = state(text);
    assert_eq!(value(&s, Field::ResyncPullRequests), None);
    assert_eq!(
        value(&s, Field::PullRequestsCloneParentData),
        Some(FieldValue::Bool(true))
    );
}

#[test]
fn fetch_false_forces_prune_false() {
    let s = state(&cloud("      fetch_branches: false\n"));
    assert_eq!(
        value(&s, Field::PruneBranches),
        Some(FieldValue::Bool(false))
    );
    assert!(warnings(&cloud("      fetch_branches: false\n")).is_empty());
    let w = warnings(&cloud(
        "      fetch_branches: false\n      prune_branches: true\n",
    ));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].contains("m.yaml:8:7: `prune_branches: true` has no effect"),
        "{w:#?}"
    );
}

#[test]
fn fetch_true_keeps_prune_as_set() {
    let s = state(&cloud("      prune_branches: false\n"));
    assert_eq!(
        value(&s, Field::PruneBranches),
        Some(FieldValue::Bool(false))
    );
    assert_eq!(
        value(&s, Field::FetchBranches),
        Some(FieldValue::Bool(true))
    );
}

#[test]
fn repository_urls_are_normalised() {
    for good in [
        "acme/web",
        "https://bitbucket.org/acme/web",
        "https://bitbucket.org/acme/web.git",
        "https://bitbucket.org/acme/web/",
        "git@bitbucket.org:acme/web.git",
    ] {
        assert_eq!(
            normalize_repository(good).as_deref(),
            Ok("acme/web"),
            "{good}"
        );
    }
    for bad in [
        "acme",
        "a/b/c",
        "https://github.com/acme/web",
        "/acme",
        "acme/ web",
        "https://bitbucket.org/acme/web/src/main",
    ] {
        assert!(normalize_repository(bad).is_err(), "{bad}");
    }
    // Issue 13: dot segments are paths, not names.
    for dots in [
        "acme/..",
        "../web",
        "./x",
        "acme/.",
        "https://bitbucket.org/acme/..",
        "git@bitbucket.org:../web.git",
    ] {
        let message = normalize_repository(dots).unwrap_err();
        assert!(
            message.contains("an owner or repository name is never `.` or `..`"),
            "{dots}: {message}"
        );
    }
    let e = errors(&cloud("").replace("acme/web", "acme/web/extra"));
    assert!(
        e[0].contains("m.yaml:5:19: repository `acme/web/extra` is not of the form `owner/repo`"),
        "{e:#?}"
    );
}

#[test]
fn server_url_must_be_https_unless_loopback() {
    assert!(check_server_url("https://bb.example.com").is_ok());
    assert!(check_server_url("http://127.0.0.1:7990").is_ok());
    assert!(check_server_url("http://localhost").is_ok());
    assert!(check_server_url("http://bb.example.com").is_err());
    assert!(check_server_url("ftp://bb.example.com").is_err());
    assert!(check_server_url("https://u:p@bb.example.com").is_err());
    assert!(check_server_url("bb.example.com").is_err());
}

#[test]
fn secrets_must_be_references_and_are_never_echoed() {
    let text = cloud("").replace("'${SECRET}'", "hunter2-literal");
    let built = build_text(&text);
    let e: Vec<_> = built.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string()
            .contains("`app_credentials.secret` must be a `${NAME}` reference")
    );
    let rendered = e[0].render(false);
    assert!(!rendered.contains("hunter2"), "{rendered}");
}

#[test]
fn public_values_interpolate_and_escape() {
    let s = state(&cloud("").replace("'${KEY}'", "'pre-${KEY}-$${X}'"));
    assert_eq!(
        value(&s, Field::AppKey),
        Some(FieldValue::Text("pre-consumer-key-${X}".into()))
    );
}

#[test]
fn missing_variables_warn_and_defer() {
    let text = cloud("")
        .replace("'${KEY}'", "'${NOPE}'")
        .replace("'${SECRET}'", "'${NOPE2}'");
    let built = build_text(&text);
    let state = built
        .state
        .as_ref()
        .expect("missing variables are not errors");
    assert!(integration(state).deferred.contains_key(&Field::AppKey));
    let w: Vec<_> = built.warnings().map(ToString::to_string).collect();
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(w[0].contains("`NOPE` is not set"));
}

#[test]
fn exactly_one_kind_per_project() {
    let both = cloud(
        "    bitbucket_server:\n      url: https://x.example\n      username: u\n      token: ${TOKEN}\n      project: P\n      repository: r\n",
    );
    let e = errors(&both);
    assert!(
        e[0].contains("has both `bitbucket` and `bitbucket_server`"),
        "{e:#?}"
    );
    let e = errors("version: 1\nprojects:\n  abc:\n    protect: true\n");
    assert!(
        e[0].contains("m.yaml:3:3: project `abc` names no integration"),
        "{e:#?}"
    );
    let e = errors("version: 1\nprojects:\n  abc:\n    absent: false\n");
    assert!(e[0].contains("`absent: false`"), "{e:#?}");
    let s = state("version: 1\nprojects:\n  abc:\n    absent: true\n    protect: true\n");
    let project = &s.projects[&ProjectId::new("abc")];
    assert!(project.protect);
    assert_eq!(project.target, Target::Absent);
}

#[test]
fn prune_needs_an_organization() {
    let e = errors("version: 1\nprune: true\nprojects: {}\n");
    assert!(
        e[0].contains("m.yaml:2:1: `prune: true` needs `organization`"),
        "{e:#?}"
    );
    let s =
        state("version: 1\norganization: 01H5ZF6Y7W9QK8X3M2N4P6R8T0\nprune: true\nprojects: {}\n");
    assert!(s.prune);
    assert_eq!(
        s.organization.unwrap().as_str(),
        "01H5ZF6Y7W9QK8X3M2N4P6R8T0"
    );
}

#[test]
fn project_ids_are_checked() {
    let e = errors(&cloud("").replace("  abc:", "  ABC-1:"));
    assert!(
        e[0].contains("`ABC-1` is not a Platform.sh project ID"),
        "{e:#?}"
    );
}

#[test]
fn credentials_are_required_for_cloud() {
    let e = errors("version: 1\nprojects:\n  abc:\n    bitbucket:\n      repository: a/b\n");
    assert!(e[0].contains("missing `app_credentials`"), "{e:#?}");
}

#[test]
fn duplicate_projects_across_files_name_both_places() {
    let a = manifest::parse("a.yaml", cloud("").as_bytes()).unwrap();
    let b = manifest::parse("b.yaml", cloud("").as_bytes()).unwrap();
    let built = build(&[a, b], &env());
    let e = built
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .expect("an error");
    assert!(
        e.to_string()
            .starts_with("b.yaml:3:3: project `abc` is defined twice"),
        "{e}"
    );
    let (related, _) = e.related.as_ref().expect("the first place");
    assert_eq!(related.to_string(), "a.yaml:3:3");
    assert!(e.render(false).contains("a.yaml:3:3"));
}

#[test]
fn unpublished_options_warn() {
    let w = warnings(&cloud(
        "      build_pull_requests_post_merge: true\n      pull_requests_max_pages: 3\n",
    ));
    assert_eq!(w.len(), 2, "{w:#?}");
}

#[test]
fn digest_ignores_formatting() {
    let a = state(&cloud(""));
    let b = state(&format!("# a comment\n{}", cloud("")));
    assert_eq!(a.digest, b.digest);
    assert_ne!(
        a.digest,
        state(&cloud("      fetch_branches: false\n")).digest
    );
}

#[test]
fn repository_and_project_may_use_variables_that_must_be_set() {
    let s = state(&cloud("").replace("repository: acme/web", "repository: \"${USER}/web\""));
    assert_eq!(
        value(&s, Field::Repository),
        Some(FieldValue::Text("bot/web".into()))
    );
    let e = errors(&cloud("").replace("repository: acme/web", "repository: \"${NOPE}/web\""));
    assert!(
        e[0].contains("m.yaml:5:19: `repository` uses `${NOPE}`, which is not set"),
        "{e:#?}"
    );
    let server = "version: 1\nprojects:\n  abc:\n    bitbucket_server:\n      url: https://bb.example.com\n      username: bot\n      token: ${TOKEN}\n      project: ${NOPE}\n      repository: r\n";
    let e = errors(server);
    assert!(e[0].contains("`project` uses `${NOPE}`"), "{e:#?}");
    let s = state(
        &server
            .replace("${NOPE}", "$${LITERAL}")
            .replace("project: $${LITERAL}", "project: P${USER}"),
    );
    assert_eq!(
        integration(&s).fields[&Field::Project],
        FieldValue::Text("Pbot".into())
    );
}

#[test]
fn bbsyncs_own_credentials_are_never_referenced() {
    for (field, text) in [
        (
            "app_credentials.key",
            "      app_credentials: {key: '${PLATFORMSH_CLI_TOKEN}', secret: '${SECRET}'}\n",
        ),
        (
            "app_credentials.secret",
            "      app_credentials: {key: '${KEY}', secret: '${UPSUN_CLI_TOKEN}'}\n",
        ),
    ] {
        let manifest = format!(
            "version: 1\nprojects:\n  abc:\n    bitbucket:\n      repository: acme/web\n{text}"
        );
        let errors = errors(&manifest);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains(&format!("`{field}` uses `${{"))
                && errors[0].contains("bbsync's own credential"),
            "{errors:#?}"
        );
    }
    let errors = errors(&cloud("").replace("acme/web", "acme/${BBSYNC_WEBHOOK_SECRET}"));
    assert!(
        errors[0].contains("`repository` uses `${BBSYNC_WEBHOOK_SECRET}`"),
        "{errors:#?}"
    );
}

#[test]
fn a_secret_variable_is_never_used_in_a_public_field() {
    let server = "version: 1\nprojects:\n  abc:\n    bitbucket_server:\n      url: https://${TOKEN}.example.com\n      username: bot\n      token: ${TOKEN}\n      project: P\n      repository: r\n".to_owned();
    let repository = cloud("").replace("acme/web", "acme/${SECRET}");
    let key = cloud("").replace("key: '${KEY}'", "key: 'k-${SECRET}'");
    for (manifest, field, variable, secret) in [
        (server, "url", "TOKEN", "token"),
        (repository, "repository", "SECRET", "app_credentials.secret"),
        (
            key,
            "app_credentials.key",
            "SECRET",
            "app_credentials.secret",
        ),
    ] {
        let errors = errors(&manifest);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains(&format!(
                "`{field}` uses `${{{variable}}}`, which holds a secret (`{secret}` uses it)"
            )),
            "{errors:#?}"
        );
        assert!(!errors[0].contains("s3cr3t-value"), "{errors:#?}");
    }
    // Another variable holding the same value is the user's own choice, and legal.
    state(&cloud("").replace("key: '${KEY}'", "key: '${TOKEN}'"));
}

#[test]
fn a_valid_manifest_marks_its_secret_variables_for_redaction() {
    let env = env();
    let file = manifest::parse("m.yaml", cloud("").as_bytes()).unwrap();
    assert_eq!(env.redact("s3cr3t-value"), "s3cr3t-value");
    assert!(build(&[file], &env).state.is_some());
    assert_eq!(env.redact("x s3cr3t-value"), "x [redacted]");
    assert_eq!(env.redact("consumer-key"), "consumer-key", "public");
}
