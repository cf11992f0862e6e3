//! `bbsync export`: live integrations written out as a manifest. Pure: live state in, YAML out.
//!
//! The manifest plans zero changes when used with the variables it names set: public values are
//! written as they are, secrets (which the API never returns) as `${NAME}` references, one
//! variable per OAuth consumer or Bitbucket Server user.
//!
//! Every string the API returns is hostile until written safely: values are plain YAML only
//! when they cannot be read as anything else, double-quoted with escapes otherwise (so a line
//! break, a `#`, a `: ` or a `${` in a live value stays inside its value); project IDs that
//! are not well formed are not written as keys; titles, errors and other live text go into
//! comments only with every line break and control character made visible
//! ([`visible`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::visible;
use crate::model::ids::{self, OrganizationId, ProjectId};
use crate::model::live::{LiveIntegration, ProjectLive};
use crate::model::{Field, FieldValue, IntegrationType, Omitted};

/// One project to export.
#[derive(Debug, Clone)]
pub(crate) struct ExportProject {
    /// Its ID.
    pub id: ProjectId,
    /// Its title, when known.
    pub title: Option<String>,
    /// Its live state.
    pub live: ProjectLive,
}

/// The exported manifest and what could not be exported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Export {
    /// The manifest text.
    pub text: String,
    /// Projects left out, and why (unknown state, several Bitbucket integrations).
    pub problems: Vec<String>,
    /// Projects left out that do not fail the export: an organization's projects that the
    /// token cannot read.
    pub warnings: Vec<String>,
    /// The variables the manifest names, with what each must hold.
    pub variables: BTreeMap<String, String>,
}

/// The export's first lines: the editor's schema, and how to get the file it names.
pub(crate) const SCHEMA_COMMENT: &str = "# yaml-language-server: $schema=bbsync.schema.json\n# For editor completion and checks, write that schema beside this file: bbsync schema > bbsync.schema.json\n";

/// Writes `projects` as a manifest. `full` also writes options equal to their defaults and
/// options bbsync does not manage unless set.
pub(crate) fn export(
    projects: &[ExportProject],
    organization: Option<&OrganizationId>,
    full: bool,
) -> Export {
    // The schema path is relative to the manifest: the user makes the file with the line below
    // (an export is read by people who have the binary, not bbsync's repository).
    let mut out = String::from(SCHEMA_COMMENT);
    let _ = writeln!(
        out,
        "# Exported by bbsync {} from the live API.",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("# Secrets are never returned by the API: set the variables named below before `bbsync apply`.\n");
    out.push_str("version: 1\n");
    if let Some(org) = organization {
        let _ = writeln!(out, "organization: {}", scalar(org.as_str()));
        out.push_str("prune: false\n");
    }
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut variables = Variables::default();
    let mut sorted: Vec<&ExportProject> = projects.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    // Decide variable names first, so that numbering does not depend on output order.
    for project in &sorted {
        if let ProjectLive::Known { managed, .. } = &project.live
            && let [one] = managed.as_slice()
        {
            variables.name_for(one);
        }
    }
    let mut body = String::new();
    for project in sorted {
        let name = project
            .title
            .as_deref()
            .filter(|t| !t.is_empty() && *t != project.id.as_str())
            .map(|t| visible(t).into_owned());
        let title = name
            .as_deref()
            .map(|t| format!(" # {t}"))
            .unwrap_or_default();
        let aside = name
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        if !ids::is_project_id(project.id.as_str()) {
            // Listed by the API, but not an ID a manifest may name: never written as a key.
            let id = visible(project.id.as_str());
            let _ = writeln!(
                body,
                "  # `{id}`: not exported, not a Platform.sh project ID{aside}"
            );
            problems.push(format!(
                "`{id}`: not a Platform.sh project ID (lowercase letters and digits)"
            ));
            continue;
        }
        match &project.live {
            ProjectLive::Unreadable { reason } => {
                let reason = visible(reason);
                let _ = writeln!(
                    body,
                    "  # {}: not exported, this API token cannot read it ({reason}){aside}",
                    project.id
                );
                warnings.push(format!(
                    "{}: this API token cannot read it ({reason})",
                    project.id
                ));
            }
            ProjectLive::Unknown { error } => {
                let error = visible(error);
                let _ = writeln!(
                    body,
                    "  # {}: not exported, its integrations could not be read: {error}",
                    project.id
                );
                problems.push(format!(
                    "{}: its integrations could not be read: {error}",
                    project.id
                ));
            }
            ProjectLive::Known { managed, others } => {
                let other_note = |body: &mut String| {
                    for other in others {
                        let _ = writeln!(
                            body,
                            "    # also has a `{}` integration ({}), which bbsync does not manage",
                            visible(&other.kind),
                            visible(&other.id)
                        );
                    }
                };
                match managed.as_slice() {
                    [] => {
                        let _ =
                            writeln!(body, "  # {}: no Bitbucket integration{aside}", project.id);
                        for other in others {
                            let _ = writeln!(
                                body,
                                "  #   (has a `{}` integration, which bbsync does not manage)",
                                visible(&other.kind)
                            );
                        }
                    }
                    [one] => {
                        // A well-formed ID may still read as a number (`00`, `1e3`): quoted then.
                        let _ = writeln!(body, "  {}:{title}", scalar(project.id.as_str()));
                        other_note(&mut body);
                        write_integration(&mut body, one, &mut variables, full);
                    }
                    several => {
                        let ids: Vec<String> = several
                            .iter()
                            .map(|i| format!("{} ({})", visible(i.id.as_str()), i.kind))
                            .collect();
                        let _ = writeln!(
                            body,
                            "  # {}: not exported, it has several Bitbucket integrations: {}",
                            project.id,
                            ids.join(", ")
                        );
                        problems.push(format!("{}: several Bitbucket integrations ({}); delete the extra one, then export again", project.id, ids.join(", ")));
                    }
                }
            }
        }
    }
    if !variables.described.is_empty() {
        out.push_str("#\n# Variables:\n");
        for (name, what) in &variables.described {
            let _ = writeln!(out, "#   {name}: {what}");
        }
    }
    if body.lines().any(|l| !l.trim_start().starts_with('#')) {
        out.push_str("projects:\n");
    } else {
        out.push_str("projects: {}\n");
    }
    out.push_str(&body);
    Export {
        text: out,
        problems,
        warnings,
        variables: variables.described,
    }
}

/// Suggested variable names: one per OAuth consumer key, add-on, or server user.
#[derive(Default)]
struct Variables {
    by_credential: BTreeMap<(String, String), String>,
    described: BTreeMap<String, String>,
}

impl Variables {
    fn name_for(&mut self, live: &LiveIntegration) -> String {
        let text = |f: Field| match live.fields.get(&f) {
            Some(FieldValue::Text(s)) => s.clone(),
            _ => String::new(),
        };
        let (base, identity, what) = match live.kind {
            IntegrationType::BitbucketServer => (
                "BBS_TOKEN",
                format!("{} {}", text(Field::Url), text(Field::Username)),
                format!(
                    "the access token of `{}` on {}",
                    text(Field::Username),
                    text(Field::Url)
                ),
            ),
            IntegrationType::Bitbucket if live.fields.contains_key(&Field::AddonKey) => (
                "BITBUCKET_SHARED_SECRET",
                text(Field::ClientKey),
                format!(
                    "the shared secret of the add-on client `{}`",
                    text(Field::ClientKey)
                ),
            ),
            IntegrationType::Bitbucket => (
                "BITBUCKET_SECRET",
                text(Field::AppKey),
                format!(
                    "the secret of the OAuth consumer with key `{}`",
                    text(Field::AppKey)
                ),
            ),
        };
        let key = (base.to_owned(), identity);
        if let Some(name) = self.by_credential.get(&key) {
            return name.clone();
        }
        let taken = self.by_credential.keys().filter(|(b, _)| b == base).count();
        let name = if taken == 0 {
            base.to_owned()
        } else {
            format!("{base}_{}", taken + 1)
        };
        self.by_credential.insert(key, name.clone());
        // Written in a comment and printed to the terminal: live text made visible.
        self.described
            .insert(name.clone(), visible(&what).into_owned());
        name
    }
}

fn write_integration(
    out: &mut String,
    live: &LiveIntegration,
    variables: &mut Variables,
    full: bool,
) {
    let kind = live.kind;
    let _ = writeln!(out, "    {}:", kind.as_str());
    let value = |f: Field| live.fields.get(&f);
    let fetch_off = value(Field::FetchBranches) == Some(&FieldValue::Bool(false));
    let secret = variables.name_for(live);
    let put = |out: &mut String, name: &str, v: &FieldValue| {
        let _ = writeln!(out, "      {name}: {}", yaml_value(v));
    };
    match kind {
        IntegrationType::Bitbucket => {
            if let Some(repository) = value(Field::Repository) {
                put(out, "repository", repository);
            }
            if let Some(addon) = value(Field::AddonKey) {
                out.push_str("      addon_credentials:\n");
                let _ = writeln!(out, "        addon_key: {}", yaml_value(addon));
                if let Some(client) = value(Field::ClientKey) {
                    let _ = writeln!(out, "        client_key: {}", yaml_value(client));
                }
                let _ = writeln!(out, "        shared_secret: \"${{{secret}}}\"");
            } else {
                out.push_str("      app_credentials:\n");
                if let Some(key) = value(Field::AppKey) {
                    let _ = writeln!(out, "        key: {}", yaml_value(key));
                }
                let _ = writeln!(out, "        secret: \"${{{secret}}}\"");
            }
        }
        IntegrationType::BitbucketServer => {
            for (name, field) in [("url", Field::Url), ("username", Field::Username)] {
                if let Some(v) = value(field) {
                    put(out, name, v);
                }
            }
            let _ = writeln!(out, "      token: \"${{{secret}}}\"");
            for (name, field) in [
                ("project", Field::Project),
                ("repository", Field::Repository),
            ] {
                if let Some(v) = value(field) {
                    put(out, name, v);
                }
            }
        }
    }
    for field in Field::ALL.into_iter().filter(|f| f.applies_to(kind)) {
        if matches!(
            field,
            Field::Url
                | Field::Username
                | Field::Project
                | Field::Repository
                | Field::AppKey
                | Field::AddonKey
                | Field::ClientKey
        ) {
            continue;
        }
        let Some(v) = value(field) else { continue };
        let keep = match field.omitted(kind) {
            // With fetching off, pruning is forced off: writing it would only repeat that.
            _ if field == Field::PruneBranches && fetch_off => full,
            Some(Omitted::Default(default)) => full || *v != default,
            Some(Omitted::NotManaged) => full,
            _ => false,
        };
        if keep {
            put(out, field.name(), v);
        }
    }
}

fn yaml_value(value: &FieldValue) -> String {
    match value {
        FieldValue::Text(s) => scalar(&s.replace("${", "$${")),
        other => other.to_string(),
    }
}

/// A string as a YAML scalar that reads back as exactly that string: plain when nothing in it
/// can mean anything else (letters, digits and `-_/.:@`, starting with a letter or `_`, not
/// ending with `:`, and not a word YAML reads as a boolean, null or number), double-quoted
/// otherwise, with `"`, `\` and every unsafe character escaped (so no line break, control
/// character or separator is ever written raw).
fn scalar(text: &str) -> String {
    let plain_safe = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.' | ':' | '@'))
        && !text.ends_with(':')
        && !text.contains(": ")
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && text.parse::<f64>().is_err();
    if plain_safe {
        text.to_owned()
    } else {
        double_quoted(text)
    }
}

/// `text` as a YAML double-quoted scalar. Only printable characters other than `"` and `\`
/// are written as they are; the rest as YAML escapes (`\n`, `\r`, `\t`, `\uXXXX`,
/// `\UXXXXXXXX`), which the parser turns back into the same characters.
fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if super::is_unsafe_char(c) => {
                let code = u32::from(c);
                let _ = if code <= 0xffff {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::manifest::{self, ManifestFile, ProjectEntry};
    use crate::model::ids::IntegrationId;
    use crate::model::live::{LiveLinks, LiveState, OtherIntegration};
    use crate::model::{self, Env, Target, Template};
    use crate::render::is_unsafe_char;
    use crate::render::tests::hostile;

    #[test]
    fn scalars_are_quoted_only_when_needed() {
        assert_eq!(scalar("acme/web"), "acme/web");
        assert_eq!(scalar("https://bb.example.com"), "https://bb.example.com");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("#x"), "\"#x\"");
        assert_eq!(yaml_value(&FieldValue::Text("a${b}".into())), "\"a$${b}\"");
    }

    #[test]
    fn scalars_that_yaml_could_read_otherwise_are_quoted_and_escaped() {
        for text in [
            "a:",
            "x: y",
            "-a",
            "?a",
            "&a",
            "*a",
            "!a",
            "|a",
            ">a",
            "'a",
            "\"a",
            "%a",
            "@a",
            "`a",
            "1/2",
            "2001-12-14",
            "0b1",
            ".inf",
            "~",
            "",
            "a#b",
            "a b",
            "a\tb",
        ] {
            assert!(
                scalar(text).starts_with('"'),
                "{text:?} -> {}",
                scalar(text)
            );
        }
        assert_eq!(scalar("a\rb\nc"), r#""a\rb\nc""#);
        assert_eq!(scalar("\"\\"), r#""\"\\""#);
        assert_eq!(
            scalar("\u{85}\u{2028}\u{2029}\u{1b}\u{0}\u{7f}\u{feff}"),
            r#""\u0085\u2028\u2029\u001b\u0000\u007f\ufeff""#
        );
        assert_eq!(scalar("Ünïcode 日本"), "\"Ünïcode 日本\"");
    }

    fn cloud(repository: &str, key: &str) -> LiveIntegration {
        LiveIntegration {
            id: IntegrationId::new("i1"),
            kind: IntegrationType::Bitbucket,
            fields: [
                (Field::Repository, FieldValue::Text(repository.into())),
                (Field::AppKey, FieldValue::Text(key.into())),
            ]
            .into_iter()
            .collect(),
            links: LiveLinks::default(),
        }
    }

    fn project(id: &str, title: Option<&str>, live: ProjectLive) -> ExportProject {
        ExportProject {
            id: ProjectId::new(id),
            title: title.map(str::to_owned),
            live,
        }
    }

    fn known(managed: Vec<LiveIntegration>, others: Vec<OtherIntegration>) -> ProjectLive {
        ProjectLive::Known { managed, others }
    }

    fn read_back(text: &str) -> ManifestFile {
        manifest::parse("exported.yaml", text.as_bytes()).unwrap_or_else(|problems| {
            panic!(
                "the export does not load:\n{text}\n{:#?}",
                problems.iter().map(ToString::to_string).collect::<Vec<_>>()
            )
        })
    }

    fn keys(file: &ManifestFile) -> Vec<&str> {
        file.manifest.projects.keys().map(String::as_str).collect()
    }

    fn assert_no_raw_unsafe(text: &str) {
        let raw: Vec<char> = text
            .chars()
            .filter(|c| *c != '\n' && is_unsafe_char(*c))
            .collect();
        assert!(raw.is_empty(), "raw {raw:?} in:\n{text:?}");
    }

    const SEPARATORS: [&str; 8] = [
        "\r", "\n", "\r\n", "\u{85}", "\u{2028}", "\u{2029}", "\u{b}", "\u{c}",
    ];

    /// The attack: a line break in a project title ended its comment, and the rest was read as
    /// manifest lines (`victim: {absent: true}`, which `apply` then carried out).
    #[test]
    fn a_title_writes_no_manifest_line() {
        for separator in SEPARATORS {
            let title = format!("Mallory){separator}  victim: {{absent: true}}{separator}  # (");
            let exported = export(
                &[
                    project("attacker", Some(&title), known(vec![], vec![])),
                    project(
                        "web",
                        Some(&title),
                        known(vec![cloud("acme/web", "k")], vec![]),
                    ),
                ],
                None,
                false,
            );
            assert_no_raw_unsafe(&exported.text);
            assert_eq!(keys(&read_back(&exported.text)), ["web"], "{separator:?}");
            assert!(
                exported.text.contains("  web: # Mallory)"),
                "{}",
                exported.text
            );
        }
    }

    /// Everything else the API says that export writes in a comment or a warning: errors, other
    /// integrations, duplicate integration IDs, project IDs that are not IDs, and the public
    /// credential parts named in the variables' descriptions.
    #[test]
    fn no_live_text_in_a_comment_writes_a_manifest_line() {
        for separator in SEPARATORS {
            let inject = format!("x{separator}victim: {{absent: true}}{separator}#");
            let indented = format!("x{separator}  victim: {{absent: true}}{separator}  #");
            let mut server = cloud("acme/s", "k");
            server.kind = IntegrationType::BitbucketServer;
            server.fields = [
                (Field::Url, FieldValue::Text(inject.clone())),
                (Field::Username, FieldValue::Text(indented.clone())),
                (Field::Project, FieldValue::Text("P".into())),
                (Field::Repository, FieldValue::Text("r".into())),
            ]
            .into_iter()
            .collect();
            let mut double = cloud("acme/d", "k");
            double.id = IntegrationId::new(indented.clone());
            let other = OtherIntegration {
                id: indented.clone(),
                kind: inject.clone(),
            };
            let exported = export(
                &[
                    project(
                        "unknown",
                        None,
                        ProjectLive::Unknown {
                            error: indented.clone(),
                        },
                    ),
                    project("others", None, known(vec![], vec![other.clone()])),
                    project(
                        "web",
                        None,
                        known(vec![cloud("acme/web", &inject)], vec![other]),
                    ),
                    project("double", None, known(vec![double.clone(), double], vec![])),
                    project("server", None, known(vec![server], vec![])),
                    project(
                        &indented,
                        Some(&indented),
                        known(vec![cloud("a/b", "k")], vec![]),
                    ),
                ],
                Some(&OrganizationId::new("org")),
                false,
            );
            assert_no_raw_unsafe(&exported.text);
            assert_eq!(
                keys(&read_back(&exported.text)),
                ["server", "web"],
                "{separator:?}"
            );
            for line in exported.problems.iter().chain(exported.variables.values()) {
                assert_no_raw_unsafe(line);
            }
            assert_eq!(exported.problems.len(), 3, "{:#?}", exported.problems);
        }
    }

    // Arbitrary live values: export, then load and build, gives back exactly what was live.

    /// What each live string may hold. The loader is checked with anything at all; the model
    /// also with what it accepts as it is (a repository `owner/repo`, a server URL, a project
    /// key without spaces...), since it rejects or normalises the rest.
    #[derive(Clone)]
    struct Domains {
        repository: BoxedStrategy<String>,
        public: BoxedStrategy<String>,
        url: BoxedStrategy<String>,
        slug: BoxedStrategy<String>,
        free: BoxedStrategy<String>,
    }

    fn anything() -> Domains {
        Domains {
            repository: hostile(),
            public: hostile(),
            url: hostile(),
            slug: hostile(),
            free: hostile(),
        }
    }

    fn accepted() -> Domains {
        let segment = prop_oneof![
            "[A-Za-z0-9._-]{1,8}",
            prop::sample::select(
                &[
                    "true", "null", "1e3", "0x1f", "-", "..", ".", "_", "1.0", "No", "-a-"
                ][..]
            )
            .prop_map(str::to_owned),
        ];
        Domains {
            repository: (segment.clone(), segment)
                .prop_map(|(owner, repo)| format!("{owner}/{repo}"))
                .prop_filter("normalised", |r| {
                    model::normalize_repository(r).as_deref() == Ok(r)
                })
                .boxed(),
            public: hostile()
                .prop_filter("blank", |t| !t.trim().is_empty())
                .boxed(),
            url: ("[a-z][a-z0-9]{0,6}(\\.[a-z]{2,3})?", hostile())
                .prop_map(|(host, rest)| format!("https://{host}/{rest}"))
                .prop_filter("a server URL", |u| model::check_server_url(u).is_ok())
                .boxed(),
            slug: hostile()
                .prop_filter("a project key or slug", |t| {
                    !t.is_empty()
                        && !t.contains('/')
                        && !t.contains(char::is_whitespace)
                        && t != "."
                        && t != ".."
                })
                .boxed(),
            free: hostile(),
        }
    }

    const INIT: [&str; 4] = ["default", "manual", "minimum", "parent"];

    fn arb_integration(d: &Domains) -> BoxedStrategy<LiveIntegration> {
        let common = (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(prop::sample::select(&INIT[..])),
            d.free.clone(),
        );
        let credentials = prop_oneof![
            d.public.clone().prop_map(|key| vec![(Field::AppKey, key)]),
            (d.public.clone(), d.public.clone())
                .prop_map(|(a, c)| vec![(Field::AddonKey, a), (Field::ClientKey, c)]),
        ];
        let cloud = (
            d.repository.clone(),
            credentials,
            common.clone(),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            any::<bool>(),
            prop::option::of(1..=u64::from(u32::MAX)),
        )
            .prop_map(
                |(repository, credentials, common, post_merge, clone_parent, resync, pages)| {
                    let mut fields: BTreeMap<Field, FieldValue> = credentials
                        .into_iter()
                        .map(|(f, t)| (f, FieldValue::Text(t)))
                        .collect();
                    fields.insert(Field::Repository, FieldValue::Text(repository));
                    fields.insert(Field::ResyncPullRequests, FieldValue::Bool(resync));
                    let optional = [
                        (
                            Field::BuildPullRequestsPostMerge,
                            post_merge.map(FieldValue::Bool),
                        ),
                        (
                            Field::PullRequestsCloneParentData,
                            clone_parent.map(FieldValue::Bool),
                        ),
                        (Field::PullRequestsMaxPages, pages.map(FieldValue::Integer)),
                    ];
                    fields.extend(optional.into_iter().filter_map(|(f, v)| Some((f, v?))));
                    with_common(IntegrationType::Bitbucket, fields, common)
                },
            );
        let server = (
            d.url.clone(),
            d.public.clone(),
            d.slug.clone(),
            d.slug.clone(),
            common,
            any::<bool>(),
        )
            .prop_map(
                |(url, username, project, repository, common, clone_parent)| {
                    let fields = [
                        (Field::Url, FieldValue::Text(url)),
                        (Field::Username, FieldValue::Text(username)),
                        (Field::Project, FieldValue::Text(project)),
                        (Field::Repository, FieldValue::Text(repository)),
                        (
                            Field::PullRequestsCloneParentData,
                            FieldValue::Bool(clone_parent),
                        ),
                    ]
                    .into_iter()
                    .collect();
                    with_common(IntegrationType::BitbucketServer, fields, common)
                },
            );
        prop_oneof![cloud, server].boxed()
    }

    fn with_common(
        kind: IntegrationType,
        mut fields: BTreeMap<Field, FieldValue>,
        (fetch, prune, build, init, id): (bool, bool, bool, Option<&str>, String),
    ) -> LiveIntegration {
        // The API refuses pruning without fetching: no live integration has it.
        fields.insert(Field::FetchBranches, FieldValue::Bool(fetch));
        fields.insert(Field::PruneBranches, FieldValue::Bool(prune && fetch));
        fields.insert(Field::BuildPullRequests, FieldValue::Bool(build));
        if let Some(init) = init {
            fields.insert(
                Field::EnvironmentInitResources,
                FieldValue::Text(init.into()),
            );
        }
        LiveIntegration {
            id: IntegrationId::new(id),
            kind,
            fields,
            links: LiveLinks::default(),
        }
    }

    fn arb_projects(d: &Domains) -> BoxedStrategy<Vec<ExportProject>> {
        let integration = arb_integration(d);
        let managed = prop_oneof![
            1 => prop::collection::vec(integration.clone(), 0..=0),
            6 => prop::collection::vec(integration.clone(), 1..=1),
            1 => prop::collection::vec(integration, 2..=2),
        ];
        let others = prop::collection::vec(
            (d.free.clone(), d.free.clone()).prop_map(|(id, kind)| OtherIntegration { id, kind }),
            0..2,
        );
        let live = prop_oneof![
            1 => d.free.clone().prop_map(|error| ProjectLive::Unknown { error }),
            1 => d.free.clone().prop_map(|reason| ProjectLive::Unreadable { reason }),
            8 => (managed, others).prop_map(|(managed, others)| ProjectLive::Known { managed, others }),
        ];
        let id = prop_oneof![6 => "[a-z0-9]{1,10}", 1 => d.free.clone()];
        let title = prop::option::of(prop_oneof![d.free.clone(), "[A-Za-z0-9 ]{1,10}"]);
        let one = (id, title, live).prop_map(|(id, title, live)| ExportProject {
            id: ProjectId::new(id),
            title,
            live,
        });
        prop::collection::vec(one, 0..5)
            .prop_map(|projects| {
                // Project IDs are unique in a live state.
                let unique: BTreeMap<ProjectId, ExportProject> =
                    projects.into_iter().map(|p| (p.id.clone(), p)).collect();
                unique.into_values().collect()
            })
            .boxed()
    }

    /// The projects an export can write: a well-formed ID and exactly one Bitbucket integration.
    fn exportable(projects: &[ExportProject]) -> BTreeMap<&str, &LiveIntegration> {
        projects
            .iter()
            .filter(|p| ids::is_project_id(p.id.as_str()))
            .filter_map(|p| match &p.live {
                ProjectLive::Known { managed, .. } => match managed.as_slice() {
                    [one] => Some((p.id.as_str(), one)),
                    _ => None,
                },
                ProjectLive::Unknown { .. } | ProjectLive::Unreadable { .. } => None,
            })
            .collect()
    }

    /// The fields a manifest entry sets, its `${NAME}` templates resolved with nothing set
    /// (export writes no variable in a public field, only `$${` escapes), and its secret's
    /// variable.
    fn entry_fields(
        entry: &ProjectEntry,
    ) -> (IntegrationType, BTreeMap<Field, FieldValue>, String) {
        let text = |s: &str| {
            let template = Template::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            FieldValue::Text(template.resolve(&Env::default()).expect("no variable"))
        };
        let mut fields = BTreeMap::new();
        let mut flag = |field: Field, value: Option<bool>| {
            if let Some(value) = value {
                fields.insert(field, FieldValue::Bool(value));
            }
        };
        let (kind, secret, init, pages) = match (&entry.bitbucket, &entry.bitbucket_server) {
            (Some(b), None) => {
                flag(Field::FetchBranches, b.fetch_branches);
                flag(Field::PruneBranches, b.prune_branches);
                flag(Field::BuildPullRequests, b.build_pull_requests);
                flag(
                    Field::BuildPullRequestsPostMerge,
                    b.build_pull_requests_post_merge,
                );
                flag(
                    Field::PullRequestsCloneParentData,
                    b.pull_requests_clone_parent_data,
                );
                flag(Field::ResyncPullRequests, b.resync_pull_requests);
                fields.insert(Field::Repository, text(&b.repository));
                let secret = match (&b.app_credentials, &b.addon_credentials) {
                    (Some(app), None) => {
                        fields.insert(Field::AppKey, text(&app.key));
                        app.secret.clone()
                    }
                    (None, Some(addon)) => {
                        fields.insert(Field::AddonKey, text(&addon.addon_key));
                        fields.insert(Field::ClientKey, text(&addon.client_key));
                        addon.shared_secret.clone()
                    }
                    other => panic!("credentials {other:?}"),
                };
                (
                    IntegrationType::Bitbucket,
                    secret,
                    b.environment_init_resources,
                    b.pull_requests_max_pages,
                )
            }
            (None, Some(s)) => {
                flag(Field::FetchBranches, s.fetch_branches);
                flag(Field::PruneBranches, s.prune_branches);
                flag(Field::BuildPullRequests, s.build_pull_requests);
                flag(
                    Field::PullRequestsCloneParentData,
                    s.pull_requests_clone_parent_data,
                );
                for (field, value) in [
                    (Field::Url, &s.url),
                    (Field::Username, &s.username),
                    (Field::Project, &s.project),
                    (Field::Repository, &s.repository),
                ] {
                    fields.insert(field, text(value));
                }
                (
                    IntegrationType::BitbucketServer,
                    s.token.clone(),
                    s.environment_init_resources,
                    None,
                )
            }
            other => panic!("entry {other:?}"),
        };
        if let Some(init) = init {
            fields.insert(
                Field::EnvironmentInitResources,
                FieldValue::Text(init.as_str().into()),
            );
        }
        if let Some(pages) = pages {
            fields.insert(
                Field::PullRequestsMaxPages,
                FieldValue::Integer(pages.into()),
            );
        }
        (kind, fields, secret)
    }

    proptest! {
        /// Any live strings at all: the export loads, lists exactly the exportable projects,
        /// and every value it writes reads back as the live value; nothing unsafe is written
        /// raw, in the manifest or in the warnings.
        #[test]
        fn any_live_strings_read_back_as_they_are(
            projects in arb_projects(&anything()),
            organization in prop::option::of("[A-Za-z0-9_-]{1,10}"),
            full in any::<bool>(),
        ) {
            let organization = organization.map(OrganizationId::new);
            let exported = export(&projects, organization.as_ref(), full);
            let file = manifest::parse("exported.yaml", exported.text.as_bytes());
            let file = match file {
                Ok(file) => file,
                Err(problems) => {
                    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    return Err(TestCaseError::fail(format!("{}\n{problems:#?}", exported.text)));
                }
            };
            let expected = exportable(&projects);
            prop_assert_eq!(
                keys(&file).into_iter().collect::<BTreeSet<_>>(),
                expected.keys().copied().collect::<BTreeSet<_>>(),
                "{}", exported.text
            );
            prop_assert_eq!(file.manifest.organization.as_deref(), organization.as_ref().map(|o| o.as_str()));
            for (id, live) in expected {
                let (kind, fields, secret) = entry_fields(&file.manifest.projects[id]);
                prop_assert_eq!(kind, live.kind);
                for (field, value) in &fields {
                    prop_assert_eq!(Some(value), live.fields.get(field), "{} of {}:\n{}", field, id, exported.text);
                }
                for (field, value) in &live.fields {
                    if field.omitted(live.kind) == Some(model::Omitted::Required) || field.is_credential() || full {
                        prop_assert_eq!(fields.get(field), Some(value), "{} of {}:\n{}", field, id, exported.text);
                    }
                }
                let variable = Template::parse(&secret).ok();
                let variable = variable.as_ref().and_then(Template::sole_variable);
                prop_assert!(variable.is_some_and(|v| exported.variables.contains_key(v)), "{}", secret);
            }
            prop_assert!(
                !exported.text.chars().any(|c| c != '\n' && is_unsafe_char(c)),
                "{:?}", exported.text
            );
            for line in exported.problems.iter().chain(exported.variables.values()) {
                prop_assert!(!line.chars().any(is_unsafe_char), "{:?}", line);
            }
        }

        /// Live values the model accepts as they are: the export builds, with its variables
        /// set, into exactly the live state (every option when `full`), and plans no change.
        #[test]
        fn accepted_live_values_build_back_exactly(
            projects in arb_projects(&accepted()),
            full in any::<bool>(),
        ) {
            let exported = export(&projects, None, full);
            let file = read_back(&exported.text);
            let env = Env::new(exported.variables.keys().map(|name| (name.clone(), "secret")));
            let built = model::build(std::slice::from_ref(&file), &env);
            let Some(state) = built.state else {
                let problems: Vec<String> = built.diagnostics.iter().map(ToString::to_string).collect();
                return Err(TestCaseError::fail(format!("{}\n{problems:#?}", exported.text)));
            };
            let expected = exportable(&projects);
            prop_assert_eq!(
                state.projects.keys().map(ProjectId::as_str).collect::<BTreeSet<_>>(),
                expected.keys().copied().collect::<BTreeSet<_>>()
            );
            for (id, live) in &expected {
                let Target::Present(desired) = &state.projects[&ProjectId::new(*id)].target else {
                    return Err(TestCaseError::fail(format!("{id} is not present:\n{}", exported.text)));
                };
                prop_assert_eq!(desired.kind, live.kind);
                prop_assert!(desired.deferred.is_empty());
                for (field, value) in &desired.fields {
                    prop_assert_eq!(Some(value), live.fields.get(field), "{} of {}:\n{}", field, id, exported.text);
                }
                if full {
                    prop_assert_eq!(&desired.fields, &live.fields, "{}", exported.text);
                }
            }
            let live = LiveState {
                titles: Default::default(),
                projects: projects.iter().map(|p| (p.id.clone(), p.live.clone())).collect(),
                organization: None,
            };
            let plan = crate::plan::plan(&state, &live, &crate::plan::PlanOptions::default());
            let writes: Vec<_> = plan.actions.iter().filter(|a| a.action.writes()).collect();
            prop_assert!(writes.is_empty(), "{}\n{writes:#?}", exported.text);
        }
    }
}
