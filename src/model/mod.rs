//! The model layer: validated desired state, built from parsed manifest files with no I/O.
//!
//! Defaults are applied here (`defaults:` first, then each integration's own values, then the
//! option table in [`field`]), the fetch/prune rule is enforced, repositories are normalised,
//! `${NAME}` references are resolved from an environment passed in, and every semantic problem
//! is reported at its file:line:column.

pub(crate) mod backoff;
pub(crate) mod env;
pub(crate) mod field;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod live;
pub mod secret;
pub(crate) mod template;

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use env::Env;
pub use field::{Field, FieldValue, IntegrationType, Omitted, SecretField};
pub use template::Template;

use crate::manifest::check::escape;
use crate::manifest::diagnostic::{Diagnostic, Location};
use crate::manifest::{self, ManifestFile, Options};
use crate::model::ids::{OrganizationId, ProjectId};

/// What the manifest asks for, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredState {
    /// The organization, for pruning and export.
    pub organization: Option<OrganizationId>,
    /// Delete Bitbucket integrations of unlisted organization projects.
    pub prune: bool,
    /// The listed projects.
    pub projects: BTreeMap<ProjectId, DesiredProject>,
    /// SHA-256 of the manifest content (formatting and comments excluded).
    pub digest: String,
}

/// One listed project.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredProject {
    /// The project.
    pub id: ProjectId,
    /// Never delete or replace its integration.
    pub protect: bool,
    /// What it must have.
    pub target: Target,
    /// Where the manifest lists it.
    pub origin: Origin,
}

/// What a project must have.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// This integration.
    Present(DesiredIntegration),
    /// No Bitbucket-family integration.
    Absent,
}

/// A desired integration, with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DesiredIntegration {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: IntegrationType,
    /// Every managed field with its value.
    pub fields: BTreeMap<Field, FieldValue>,
    /// Public fields whose `${NAME}` variables are not set now; resolved when applying.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deferred: BTreeMap<Field, Template>,
    /// The write-only secret, as a reference.
    pub secret: SecretRef,
}

/// A write-only secret: which field, and which environment variable holds it. Serialised with
/// its `${NAME}` reference too, for people reading plan files; never with a value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecretRef {
    /// The field it fills.
    pub field: SecretField,
    /// The environment variable.
    pub variable: String,
    /// Where the manifest names it.
    pub origin: Origin,
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("SecretRef", 4)?;
        s.serialize_field("field", &self.field)?;
        s.serialize_field("reference", &self.reference())?;
        s.serialize_field("variable", &self.variable)?;
        s.serialize_field("origin", &self.origin)?;
        s.end()
    }
}

/// The schema of what [`SecretRef`]'s `Serialize` writes (its `reference` is computed).
impl JsonSchema for SecretRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A write-only secret, by reference only: never its value.",
            "type": "object",
            "properties": {
                "field": generator.subschema_for::<SecretField>(),
                "reference": {
                    "description": "`${NAME}`, as the manifest writes it.",
                    "type": "string",
                    "pattern": "^\\$\\{[^}]+\\}$",
                },
                "variable": {
                    "description": "The environment variable that holds the secret.",
                    "type": "string",
                },
                "origin": generator.subschema_for::<Origin>(),
            },
            "required": ["field", "reference", "variable", "origin"],
            "additionalProperties": false,
        })
    }
}

impl SecretRef {
    /// `${NAME}`, the way secrets are shown everywhere.
    pub(crate) fn reference(&self) -> String {
        format!("${{{}}}", self.variable)
    }
}

/// A file:line:column, as plain data for plans and reports.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[schemars(deny_unknown_fields)]
pub struct Origin {
    /// The file, as named on the command line.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl From<&Location> for Origin {
    fn from(location: &Location) -> Self {
        Self {
            file: location.file.name().to_owned(),
            line: location.position.line,
            column: location.position.column,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The result of [`build`]: the state when there is no error, and every diagnostic.
#[derive(Debug)]
pub struct Built {
    /// The desired state, unless an error was found.
    pub state: Option<DesiredState>,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Built {
    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

/// Validates parsed manifest files into the desired state. `env` looks up environment
/// variables (the caller decides where they come from).
pub fn build(files: &[ManifestFile], env: &Env) -> Built {
    let mut builder = Builder {
        env,
        diagnostics: Vec::new(),
        missing: BTreeMap::new(),
        secret_variables: BTreeMap::new(),
        public_uses: Vec::new(),
    };
    let state = builder.state(files);
    builder.report_missing();
    builder.report_secrets_in_public();
    // Even from an invalid manifest: redacting more is never a leak.
    for name in builder.secret_variables.keys() {
        env.mark_secret(name);
    }
    let failed = builder.diagnostics.iter().any(Diagnostic::is_error);
    Built {
        state: if failed { None } else { Some(state) },
        diagnostics: builder.diagnostics,
    }
}

struct Builder<'a> {
    env: &'a Env,
    diagnostics: Vec<Diagnostic>,
    /// Unset variables: name -> (uses, first location, first field, secret).
    missing: BTreeMap<String, (usize, Location, String, bool)>,
    /// The variables used by secret fields: name -> (first use, its field).
    secret_variables: BTreeMap<String, (Location, &'static str)>,
    /// Every variable used by a public field: (name, where, the field).
    public_uses: Vec<(String, Location, String)>,
}

/// Where a merged top-level value came from.
struct Setting<'f, T> {
    value: T,
    file: &'f ManifestFile,
}

impl<'f> Builder<'_> {
    fn error(&mut self, location: Location, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::error(Some(location), message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn warning(&mut self, location: Location, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::warning(Some(location), message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    /// A top-level scalar that may be set in several files, but then to the same value.
    fn merge_setting<T: PartialEq + Clone + fmt::Debug>(
        &mut self,
        files: &'f [ManifestFile],
        name: &str,
        get: impl Fn(&manifest::Manifest) -> Option<T>,
    ) -> Option<Setting<'f, T>> {
        let mut found: Option<Setting<'f, T>> = None;
        for file in files {
            let Some(value) = get(&file.manifest) else {
                continue;
            };
            match &found {
                None => found = Some(Setting { value, file }),
                Some(first) if first.value == value => {}
                Some(first) => {
                    let pointer = format!("/{name}");
                    let related = first.file.location(&pointer, true);
                    self.error(
                        file.location(&pointer, true),
                        format!("`{name}` is set differently in two manifest files"),
                    )
                    .with_related_in_place(related, "first set here")
                    .help = Some(format!("set `{name}` in one file only"));
                }
            }
        }
        found
    }

    fn state(&mut self, files: &'f [ManifestFile]) -> DesiredState {
        let organization = self.merge_setting(files, "organization", |m| m.organization.clone());
        let prune = self.merge_setting(files, "prune", |m| m.prune);
        let defaults = self.merge_setting(files, "defaults", |m| m.defaults.clone());

        let organization_id = organization.as_ref().and_then(|setting| {
            match setting.value.parse::<OrganizationId>() {
                Ok(id) => Some(id),
                Err(message) => {
                    self.error(setting.file.location("/organization", false), message)
                        .help = Some("give the organization's ID or its name; `platform organization:info --org NAME id` or the Console shows the ID".to_owned());
                    None
                }
            }
        });
        let prune_on = prune.as_ref().is_some_and(|p| p.value);
        if let Some(prune) = &prune
            && prune.value
            && organization.is_none()
        {
            self.error(
                prune.file.location("/prune", true),
                "`prune: true` needs `organization`",
            )
            .help = Some(
                "add `organization: <ID>` so bbsync knows which projects it may prune".to_owned(),
            );
        }
        if let Some(defaults) = &defaults {
            self.warn_unpublished(&defaults.value, defaults.file, "/defaults");
        }
        let empty = Options::default();
        let (defaults_options, defaults_file) = match &defaults {
            Some(d) => (&d.value, Some(d.file)),
            None => (&empty, None),
        };

        let mut projects = BTreeMap::new();
        let mut first_seen: BTreeMap<&str, &ManifestFile> = BTreeMap::new();
        for file in files {
            for (id, entry) in &file.manifest.projects {
                let pointer = format!("/projects/{}", escape(id));
                if let Some(first) = first_seen.get(id.as_str()) {
                    let related = first.location(&pointer, true);
                    self.error(
                        file.location(&pointer, true),
                        format!("project `{id}` is defined twice"),
                    )
                    .with_related_in_place(related, "first defined here")
                    .help = Some(
                        "keep one definition of each project across all manifest files".to_owned(),
                    );
                    continue;
                }
                first_seen.insert(id, file);
                let context = Defaults {
                    options: defaults_options,
                    file: defaults_file,
                };
                if let Some(project) = self.project(file, &pointer, id, entry, &context) {
                    projects.insert(project.id.clone(), project);
                }
            }
        }

        DesiredState {
            organization: organization_id,
            prune: prune_on,
            projects,
            digest: digest(files),
        }
    }

    fn project(
        &mut self,
        file: &ManifestFile,
        pointer: &str,
        id: &str,
        entry: &manifest::ProjectEntry,
        defaults: &Defaults<'_>,
    ) -> Option<DesiredProject> {
        let key = file.location(pointer, true);
        let project_id = match validate_project_id(id) {
            Ok(project_id) => Some(project_id),
            Err(message) => {
                self.error(key.clone(), message).help = Some(
                    "Platform.sh project IDs are lowercase letters and digits, as `platform project:list` shows them"
                        .to_owned(),
                );
                None
            }
        };
        let mut chosen: Vec<&str> = Vec::new();
        if entry.bitbucket.is_some() {
            chosen.push("bitbucket");
        }
        if entry.bitbucket_server.is_some() {
            chosen.push("bitbucket_server");
        }
        if entry.absent == Some(true) {
            chosen.push("absent");
        }
        let target = match chosen.as_slice() {
            [] => {
                let (location, message) = if entry.absent == Some(false) {
                    (
                        file.location(&format!("{pointer}/absent"), true),
                        format!("`absent: false` leaves project `{id}` with nothing to manage"),
                    )
                } else {
                    (key.clone(), format!("project `{id}` names no integration"))
                };
                self.error(location, message).help =
                    Some("give it `bitbucket:`, `bitbucket_server:` or `absent: true`".to_owned());
                return None;
            }
            [_, second, ..] => {
                let location = file.location(&format!("{pointer}/{second}"), true);
                let first = file.location(&format!("{pointer}/{}", chosen[0]), true);
                self.error(
                    location,
                    format!(
                        "project `{id}` has both `{}` and `{second}`; a project has at most one Bitbucket integration",
                        chosen[0]
                    ),
                )
                .with_related_in_place(first, "the other one")
                .help = Some("keep exactly one of `bitbucket`, `bitbucket_server` or `absent: true`".to_owned());
                return None;
            }
            ["absent"] => Some(Target::Absent),
            ["bitbucket"] => {
                let spec = entry.bitbucket.as_ref().expect("chosen");
                self.bitbucket(file, &format!("{pointer}/bitbucket"), spec, defaults)
                    .map(Target::Present)
            }
            _ => {
                let spec = entry.bitbucket_server.as_ref().expect("chosen");
                self.bitbucket_server(file, &format!("{pointer}/bitbucket_server"), spec, defaults)
                    .map(Target::Present)
            }
        };
        Some(DesiredProject {
            id: project_id?,
            protect: entry.protect == Some(true),
            target: target?,
            origin: Origin::from(&key),
        })
    }

    fn bitbucket(
        &mut self,
        file: &ManifestFile,
        pointer: &str,
        spec: &manifest::Bitbucket,
        defaults: &Defaults<'_>,
    ) -> Option<DesiredIntegration> {
        let kind = IntegrationType::Bitbucket;
        let mut fields = BTreeMap::new();
        let mut deferred = BTreeMap::new();
        let mut ok = true;
        let repository_pointer = format!("{pointer}/repository");
        let repository = self.identity(file, &repository_pointer, &spec.repository, "repository");
        match repository.as_deref().map(normalize_repository) {
            None => ok = false,
            Some(Ok(repository)) => {
                fields.insert(Field::Repository, FieldValue::Text(repository));
            }
            Some(Err(message)) => {
                self.error(file.location(&repository_pointer, false), message).help = Some(
                    "write `owner/repo`, or paste the repository's https://bitbucket.org/owner/repo URL"
                        .to_owned(),
                );
                ok = false;
            }
        }
        let secret = match (&spec.app_credentials, &spec.addon_credentials) {
            (Some(app), None) => {
                let at = format!("{pointer}/app_credentials");
                ok &= self.public(
                    file,
                    &format!("{at}/key"),
                    &app.key,
                    Field::AppKey,
                    &mut fields,
                    &mut deferred,
                );
                self.secret(
                    file,
                    &format!("{at}/secret"),
                    &app.secret,
                    SecretField::AppSecret,
                )
            }
            (None, Some(addon)) => {
                let at = format!("{pointer}/addon_credentials");
                ok &= self.public(
                    file,
                    &format!("{at}/addon_key"),
                    &addon.addon_key,
                    Field::AddonKey,
                    &mut fields,
                    &mut deferred,
                );
                ok &= self.public(
                    file,
                    &format!("{at}/client_key"),
                    &addon.client_key,
                    Field::ClientKey,
                    &mut fields,
                    &mut deferred,
                );
                self.secret(
                    file,
                    &format!("{at}/shared_secret"),
                    &addon.shared_secret,
                    SecretField::AddonSharedSecret,
                )
            }
            (None, None) => {
                self.error(file.location(pointer, true), "missing `app_credentials` in `bitbucket`")
                    .help = Some(
                    "add `app_credentials: {key: ${BITBUCKET_KEY}, secret: ${BITBUCKET_SECRET}}` (a Bitbucket OAuth consumer)"
                        .to_owned(),
                );
                None
            }
            (Some(_), Some(_)) => {
                self.error(
                    file.location(&format!("{pointer}/addon_credentials"), true),
                    "`app_credentials` and `addon_credentials` are both given",
                )
                .help = Some(
                    "keep one: an OAuth consumer (`app_credentials`) or a Connect add-on"
                        .to_owned(),
                );
                None
            }
        };
        let own = Options {
            fetch_branches: spec.fetch_branches,
            prune_branches: spec.prune_branches,
            build_pull_requests: spec.build_pull_requests,
            build_pull_requests_post_merge: spec.build_pull_requests_post_merge,
            pull_requests_clone_parent_data: spec.pull_requests_clone_parent_data,
            resync_pull_requests: spec.resync_pull_requests,
            environment_init_resources: spec.environment_init_resources,
            pull_requests_max_pages: spec.pull_requests_max_pages,
        };
        self.warn_unpublished(&own, file, pointer);
        self.options(kind, file, pointer, &own, defaults, &mut fields);
        Some(DesiredIntegration {
            kind,
            fields,
            deferred,
            secret: secret?,
        })
        .filter(|_| ok)
    }

    fn bitbucket_server(
        &mut self,
        file: &ManifestFile,
        pointer: &str,
        spec: &manifest::BitbucketServer,
        defaults: &Defaults<'_>,
    ) -> Option<DesiredIntegration> {
        let kind = IntegrationType::BitbucketServer;
        let mut fields = BTreeMap::new();
        let mut deferred = BTreeMap::new();
        let mut ok = true;
        let url_pointer = format!("{pointer}/url");
        ok &= self.public(
            file,
            &url_pointer,
            &spec.url,
            Field::Url,
            &mut fields,
            &mut deferred,
        );
        if let Some(FieldValue::Text(url)) = fields.get(&Field::Url)
            && let Err(message) = check_server_url(url)
        {
            self.error(file.location(&url_pointer, false), message).help = Some(
                "use the https:// address of the Bitbucket Server (http:// is allowed only for localhost)"
                    .to_owned(),
            );
            ok = false;
        }
        ok &= self.public(
            file,
            &format!("{pointer}/username"),
            &spec.username,
            Field::Username,
            &mut fields,
            &mut deferred,
        );
        for (name, value, field) in [
            ("project", &spec.project, Field::Project),
            ("repository", &spec.repository, Field::Repository),
        ] {
            let at = format!("{pointer}/{name}");
            let Some(resolved) = self.identity(file, &at, value, name) else {
                ok = false;
                continue;
            };
            let trimmed = resolved.trim();
            if trimmed.is_empty()
                || trimmed.contains('/')
                || trimmed.contains(char::is_whitespace)
                || trimmed == "."
                || trimmed == ".."
            {
                self.error(
                    file.location(&at, false),
                    format!("`{name}` must be a single Bitbucket Server {} without `/` or spaces, and not `.` or `..`", if name == "project" { "project key" } else { "repository slug" }),
                )
                .help = Some("write `project: WEB` and `repository: shop` for https://host/projects/WEB/repos/shop".to_owned());
                ok = false;
            } else {
                fields.insert(field, FieldValue::Text(trimmed.to_owned()));
            }
        }
        let secret = self.secret(
            file,
            &format!("{pointer}/token"),
            &spec.token,
            SecretField::Token,
        );
        let own = Options {
            fetch_branches: spec.fetch_branches,
            prune_branches: spec.prune_branches,
            build_pull_requests: spec.build_pull_requests,
            pull_requests_clone_parent_data: spec.pull_requests_clone_parent_data,
            environment_init_resources: spec.environment_init_resources,
            ..Options::default()
        };
        self.options(kind, file, pointer, &own, defaults, &mut fields);
        Some(DesiredIntegration {
            kind,
            fields,
            deferred,
            secret: secret?,
        })
        .filter(|_| ok)
    }

    /// A public string field that may use `${NAME}`: resolved now, or deferred when a variable
    /// is not set. Returns false on a malformed reference.
    fn public(
        &mut self,
        file: &ManifestFile,
        pointer: &str,
        text: &str,
        field: Field,
        fields: &mut BTreeMap<Field, FieldValue>,
        deferred: &mut BTreeMap<Field, Template>,
    ) -> bool {
        let location = file.location(pointer, false);
        let template = match Template::parse(text) {
            Ok(template) => template,
            Err(error) => {
                self.error(location, format!("`{}`: {error}", field.name()))
                    .help =
                    Some("write `${NAME}` for a variable, `$${` for a literal `${`".to_owned());
                return false;
            }
        };
        if !self.note_public_uses(&template, &location, field.name()) {
            return false;
        }
        match template.resolve(self.env) {
            Ok(value) if value.trim().is_empty() => {
                self.error(location, format!("`{}` is empty", field.name()))
                    .help = Some(
                    "give it a value (its environment variable may be set to an empty string)"
                        .to_owned(),
                );
                false
            }
            Ok(value) => {
                fields.insert(field, FieldValue::Text(value));
                true
            }
            Err(missing) => {
                for name in missing {
                    self.note_missing(name, &location, field.name(), false);
                }
                deferred.insert(field, template);
                true
            }
        }
    }

    /// A string that identifies the repository (`repository`, `project`): `${NAME}` references
    /// are resolved now, because a plan cannot compare without it; an unset variable is an error.
    fn identity(
        &mut self,
        file: &ManifestFile,
        pointer: &str,
        text: &str,
        name: &str,
    ) -> Option<String> {
        let location = file.location(pointer, false);
        let template = match Template::parse(text) {
            Ok(template) => template,
            Err(error) => {
                self.error(location, format!("`{name}`: {error}")).help =
                    Some("write `${NAME}` for a variable, `$${` for a literal `${`".to_owned());
                return None;
            }
        };
        if !self.note_public_uses(&template, &location, name) {
            return None;
        }
        match template.resolve(self.env) {
            Ok(value) => Some(value),
            Err(missing) => {
                self.error(
                    location,
                    format!(
                        "`{name}` uses `${{{}}}`, which is not set",
                        missing.join("}`, `${")
                    ),
                )
                .help = Some(format!(
                    "set `{}`: bbsync needs the {name} to plan (only credentials may stay unset until `apply`)",
                    missing.join("`, `")
                ));
                None
            }
        }
    }

    /// A secret field: must be exactly one `${NAME}`.
    fn secret(
        &mut self,
        file: &ManifestFile,
        pointer: &str,
        text: &str,
        field: SecretField,
    ) -> Option<SecretRef> {
        let location = file.location(pointer, false);
        match Template::parse(text)
            .ok()
            .as_ref()
            .and_then(Template::sole_variable)
        {
            Some(variable) if is_credential(variable) => {
                self.credential_error(location, variable, field.name());
                None
            }
            Some(variable) => {
                self.secret_variables
                    .entry(variable.to_owned())
                    .or_insert_with(|| (location.clone(), field.name()));
                if self.env.get(variable).is_none() {
                    self.note_missing(variable.to_owned(), &location, field.name(), true);
                }
                Some(SecretRef {
                    field,
                    variable: variable.to_owned(),
                    origin: Origin::from(&location),
                })
            }
            None => {
                // The value is a secret written in clear: the message does not name it, and
                // the file masks it in every snippet (see `manifest::mask`).
                let suggested = match field {
                    SecretField::Token => "BBS_TOKEN",
                    SecretField::AppSecret => "BITBUCKET_SECRET",
                    SecretField::AddonSharedSecret => "BITBUCKET_SHARED_SECRET",
                };
                self.error(
                    location,
                    format!(
                        "`{}` must be a `${{NAME}}` reference, not a literal value",
                        field.name()
                    ),
                )
                .help = Some(format!(
                    "secrets never go in the manifest: write `${{{suggested}}}`, set `{suggested}` in the environment, and rotate the secret if this file was ever committed"
                ));
                None
            }
        }
    }

    /// Notes the variables `template` uses in the public field `field`; false (with an error)
    /// when one is bbsync's own credential.
    fn note_public_uses(&mut self, template: &Template, location: &Location, field: &str) -> bool {
        let mut ok = true;
        for name in template.variables() {
            if is_credential(name) {
                self.credential_error(location.clone(), name, field);
                ok = false;
            } else {
                self.public_uses
                    .push((name.to_owned(), location.clone(), field.to_owned()));
            }
        }
        ok
    }

    /// A manifest referencing one of bbsync's own credentials.
    fn credential_error(&mut self, location: Location, name: &str, field: &str) {
        self.error(
            location,
            format!(
                "`{field}` uses `${{{name}}}`, bbsync's own credential: a manifest can never reference it"
            ),
        )
        .help = Some(format!(
            "whoever can change the manifest could publish `{name}` through a plan; give the value its own variable if the field really needs it"
        ));
    }

    /// Errors for every public field using a variable that a secret field uses too: its
    /// value would be shown in plans, which may be public (a pull-request comment).
    fn report_secrets_in_public(&mut self) {
        for (name, location, field) in std::mem::take(&mut self.public_uses) {
            let Some((secret_at, secret_field)) = self.secret_variables.get(&name).cloned() else {
                continue;
            };
            self.error(
                location,
                format!(
                    "`{field}` uses `${{{name}}}`, which holds a secret (`{secret_field}` uses it): a public field's value is shown in plans"
                ),
            )
            .with_related_in_place(secret_at, "used as a secret here")
            .help = Some(format!(
                "a variable used in a secret field can never be used in a public one: give `{field}` a variable of its own"
            ));
        }
    }

    fn note_missing(&mut self, name: String, location: &Location, field: &str, secret: bool) {
        self.missing
            .entry(name)
            .and_modify(|(uses, ..)| *uses += 1)
            .or_insert_with(|| (1, location.clone(), field.to_owned(), secret));
    }

    fn report_missing(&mut self) {
        for (name, (uses, location, field, secret)) in std::mem::take(&mut self.missing) {
            let also = if uses > 1 {
                format!(" and {} more place(s)", uses - 1)
            } else {
                String::new()
            };
            let help = if secret {
                format!(
                    "set `{name}` before `bbsync apply`; it is needed where credentials are sent"
                )
            } else {
                format!(
                    "set `{name}`; until then `{field}` cannot be compared, and `apply` fails where it is needed"
                )
            };
            self.warning(
                location,
                format!("environment variable `{name}` is not set (used by `{field}`{also})"),
            )
            .help = Some(help);
        }
    }

    /// Fills option fields: own value, else `defaults:`, else the option table.
    fn options(
        &mut self,
        kind: IntegrationType,
        file: &ManifestFile,
        pointer: &str,
        own: &Options,
        defaults: &Defaults<'_>,
        fields: &mut BTreeMap<Field, FieldValue>,
    ) {
        for field in Field::ALL {
            let (Some(omitted), Some(own_value)) = (field.omitted(kind), option_value(own, field))
            else {
                continue;
            };
            let value = own_value.or_else(|| option_value(defaults.options, field).flatten());
            match (value, omitted) {
                (Some(value), _) => {
                    fields.insert(field, value);
                }
                (None, Omitted::Default(value)) => {
                    fields.insert(field, value);
                }
                (None, Omitted::NotManaged | Omitted::Required) => {}
            }
        }
        // The fetch/prune rule: pruning needs fetching; the API rejects prune without fetch.
        if fields.get(&Field::FetchBranches) == Some(&FieldValue::Bool(false)) {
            let prune_location = if own.prune_branches == Some(true) {
                Some(file.location(&format!("{pointer}/prune_branches"), true))
            } else if own.prune_branches.is_none()
                && own.fetch_branches.is_none()
                && defaults.options.prune_branches == Some(true)
            {
                defaults
                    .file
                    .map(|f| f.location("/defaults/prune_branches", true))
            } else {
                None
            };
            if let Some(location) = prune_location {
                self.warning(location, "`prune_branches: true` has no effect when `fetch_branches` is false; it is sent as false")
                    .help = Some("remove `prune_branches`, or set `fetch_branches: true`".to_owned());
            }
            fields.insert(Field::PruneBranches, FieldValue::Bool(false));
        }
    }

    fn warn_unpublished(&mut self, options: &Options, file: &ManifestFile, pointer: &str) {
        if options.build_pull_requests_post_merge.is_some() {
            self.warning(
                file.location(&format!("{pointer}/build_pull_requests_post_merge"), true),
                "the published API lists `build_pull_requests_post_merge` for GitHub only; the API may reject it for Bitbucket",
            )
            .help = Some("remove it unless you know your API accepts it".to_owned());
        }
        if options.pull_requests_max_pages.is_some() {
            self.warning(
                file.location(&format!("{pointer}/pull_requests_max_pages"), true),
                "`pull_requests_max_pages` exists in the Upsun API only; the Platform.sh API may reject it",
            )
            .help = Some("remove it if you manage Platform.sh (not Upsun) projects".to_owned());
        }
    }
}

/// The `defaults:` block and the file it came from.
struct Defaults<'a> {
    options: &'a Options,
    file: Option<&'a ManifestFile>,
}

/// The value an [`Options`] holds for `field`: `None` if `Options` has no such field,
/// `Some(None)` if the option is not set.
fn option_value(options: &Options, field: Field) -> Option<Option<FieldValue>> {
    let bool = |b: Option<bool>| Some(b.map(FieldValue::Bool));
    match field {
        Field::FetchBranches => bool(options.fetch_branches),
        Field::PruneBranches => bool(options.prune_branches),
        Field::BuildPullRequests => bool(options.build_pull_requests),
        Field::BuildPullRequestsPostMerge => bool(options.build_pull_requests_post_merge),
        Field::PullRequestsCloneParentData => bool(options.pull_requests_clone_parent_data),
        Field::ResyncPullRequests => bool(options.resync_pull_requests),
        Field::EnvironmentInitResources => Some(
            options
                .environment_init_resources
                .map(|r| FieldValue::Text(r.as_str().to_owned())),
        ),
        Field::PullRequestsMaxPages => Some(
            options
                .pull_requests_max_pages
                .map(|n| FieldValue::Integer(n.into())),
        ),
        _ => None,
    }
}

trait WithRelated {
    fn with_related_in_place(&mut self, location: Location, label: &str) -> &mut Self;
}

impl WithRelated for Diagnostic {
    fn with_related_in_place(&mut self, location: Location, label: &str) -> &mut Self {
        self.related = Some((location, label.to_owned()));
        self
    }
}

/// Whether `name` is one of bbsync's own credential variables.
fn is_credential(name: &str) -> bool {
    crate::model::env::CREDENTIAL_VARIABLES.contains(&name)
}

fn validate_project_id(id: &str) -> Result<ProjectId, String> {
    if ids::is_project_id(id) {
        Ok(ProjectId::new(id))
    } else {
        Err(format!("`{id}` is not a Platform.sh project ID"))
    }
}

/// Normalises a Bitbucket Cloud repository to `owner/repo`: accepts `owner/repo`, a
/// `https://bitbucket.org/owner/repo[.git]` URL and `git@bitbucket.org:owner/repo.git`.
pub(crate) fn normalize_repository(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    let lower = text.to_ascii_lowercase();
    let path = if let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    {
        let offset = text.len() - rest.len();
        let (host, _) = rest.split_once('/').unwrap_or((rest, ""));
        if host != "bitbucket.org" && host != "www.bitbucket.org" {
            return Err(format!(
                "`{text}` is not a bitbucket.org URL (for Bitbucket Server use `bitbucket_server`)"
            ));
        }
        &text[offset + host.len()..]
    } else if lower.starts_with("git@bitbucket.org:") {
        &text["git@bitbucket.org:".len()..]
    } else {
        text
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    // `.` and `..` pass the character check, but name a directory, not an owner or a repository:
    // `acme/..` would be a path out of the owner's repositories.
    if let Some(dots) = path.split('/').find(|s| *s == "." || *s == "..") {
        return Err(format!(
            "repository `{text}` has a `{dots}` part: an owner or repository name is never `.` or `..`"
        ));
    }
    let mut segments = path.split('/');
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match (segments.next(), segments.next(), segments.next()) {
        (Some(owner), Some(repo), None) if valid(owner) && valid(repo) => {
            Ok(format!("{owner}/{repo}"))
        }
        _ => Err(format!(
            "repository `{text}` is not of the form `owner/repo`"
        )),
    }
}

/// Checks a Bitbucket Server base URL: the [`check_url`] policy, and no credentials inside it.
pub(crate) fn check_server_url(text: &str) -> Result<(), String> {
    let url = check_url("`url`", text)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("`url` must not contain credentials".to_owned());
    }
    Ok(())
}

/// The one URL policy, for every URL bbsync sends requests or credentials to (the API, the
/// auth server, a Bitbucket Server): `https://`, or `http://` only for a loopback host. `name`
/// says which URL it is in the message.
pub(crate) fn check_url(name: &str, text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{name} `{text}` is not a URL ({e})"))?;
    let Some(host) = url.host() else {
        return Err(format!("{name} `{text}` has no host"));
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(format!(
                "{name} `{text}` uses http:// for a non-loopback host; use https://"
            ));
        }
        other => {
            return Err(format!(
                "{name} `{text}` has the unsupported scheme `{other}`"
            ));
        }
    }
    Ok(url)
}

/// Whether a URL host is loopback (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn digest(files: &[ManifestFile]) -> String {
    let mut hasher = Sha256::new();
    let mut manifests: Vec<(&str, &manifest::Manifest)> = files
        .iter()
        .map(|f| (f.source.name(), &f.manifest))
        .collect();
    manifests.sort_by_key(|(name, _)| *name);
    for (_, manifest) in manifests {
        hasher.update(serde_json::to_vec(manifest).expect("a manifest serialises"));
    }
    format!("sha256:{:x}", hasher.finalize())
}

#[cfg(test)]
mod tests;
