//! `bbsync export`: live integrations written out as a manifest. Pure: live state in, YAML out.
//!
//! The manifest plans zero changes when used with the variables it names set: public values are
//! written as they are, secrets (which the API never returns) as `${NAME}` references, one
//! variable per OAuth consumer or Bitbucket Server user.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::ids::{OrganizationId, ProjectId};
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
    /// The variables the manifest names, with what each must hold.
    pub variables: BTreeMap<String, String>,
}

/// Writes `projects` as a manifest. `full` also writes options equal to their defaults and
/// options bbsync does not manage unless set.
pub(crate) fn export(
    projects: &[ExportProject],
    organization: Option<&OrganizationId>,
    full: bool,
) -> Export {
    let mut out = String::from("# yaml-language-server: $schema=schema/bbsync.schema.json\n");
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
            .filter(|t| *t != project.id.as_str())
            .map(|t| t.replace('\n', " "));
        let title = name
            .as_deref()
            .map(|t| format!(" # {t}"))
            .unwrap_or_default();
        let aside = name
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        match &project.live {
            ProjectLive::Unknown { error } => {
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
                            other.kind, other.id
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
                                other.kind
                            );
                        }
                    }
                    [one] => {
                        let _ = writeln!(body, "  {}:{title}", project.id);
                        other_note(&mut body);
                        write_integration(&mut body, one, &mut variables, full);
                    }
                    several => {
                        let ids: Vec<String> = several
                            .iter()
                            .map(|i| format!("{} ({})", i.id, i.kind))
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
        self.described.insert(name.clone(), what);
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

/// A string as a YAML scalar: plain when that reads back as the same string, quoted otherwise.
fn scalar(text: &str) -> String {
    let plain_safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.' | ':' | '@'))
        && !text.starts_with(['-', ':', '@', '.'])
        && !text.contains(": ")
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && text.parse::<f64>().is_err()
        && !text.starts_with("0x")
        && !text.starts_with("0o");
    if plain_safe {
        text.to_owned()
    } else {
        serde_json::to_string(text).expect("a string serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
