//! The one way bbsync reports a command that failed: `error:` with the message, its details,
//! `Caused by:` with the chain of sources, and `hint:` lines, which are data carried by the error
//! (as uv renders its errors). The exit code follows from the error's class.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::exit::Exit;
use crate::live::ApiError;
use crate::model::ids::ProjectId;
use crate::plan::GuardViolation;

/// A command that could not do its job.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The manifest is invalid; its diagnostics were printed before.
    #[error(
        "the manifest is invalid ({errors} error{}); nothing was sent to the API",
        plural(*errors)
    )]
    InvalidManifest {
        /// How many errors.
        errors: usize,
    },
    /// No API token is set.
    #[error("no API token: set PLATFORMSH_CLI_TOKEN (or UPSUN_CLI_TOKEN)")]
    NoToken,
    /// Talking to the API failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A plan file could not be read.
    #[error("cannot read the plan file `{}`", path.display())]
    ReadPlanFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A plan file is not a plan.
    #[error("`{}` is not a valid plan file", path.display())]
    NotAPlanFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A plan file made by another plan format.
    #[error(
        "`{}` has plan format version `{found}`; this bbsync applies version `{}` only; nothing was written",
        path.display(),
        crate::plan::FORMAT_VERSION
    )]
    PlanVersion {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: String,
    },
    /// The plan no longer matches the live state.
    #[error("{} for {} project(s); nothing was written:", if *at_prompt { "the plan went stale while waiting for the answer" } else { "the saved plan is stale" }, projects.len())]
    Stale {
        /// It waited at a prompt (else: a saved plan).
        at_prompt: bool,
        /// Each stale project and why.
        projects: Vec<(ProjectId, String)>,
        /// The plan file, for a saved plan.
        path: Option<PathBuf>,
    },
    /// A guard refused the plan.
    #[error("{0}; nothing was written")]
    Guard(GuardViolation),
    /// Variables the writes need are not set; nothing was written.
    #[error("environment variables the writes need are not set, so nothing was written: {0}")]
    MissingVariables(String),
    /// A value given on the command line cannot be used.
    #[error("{0}")]
    Usage(String),
    /// `plan --pr-comment` could not post: why, and what to do.
    #[error("cannot post the plan to the pull request: {what}")]
    PrComment {
        /// What went wrong.
        what: String,
        /// What to do.
        hint: String,
    },
    /// `apply` needs an answer and cannot ask.
    #[error("`apply` needs confirmation, and there is no terminal to ask on")]
    NoTerminal,
    /// A file could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An output file exists and `--force` was not given.
    #[error("`{}` already exists; nothing was written", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Writing to stdout or reading the answer failed (a closed pipe among them).
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
    /// Something bbsync needs to run could not be set up.
    #[error("{what}")]
    Setup {
        /// What could not be done.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Error {
    /// `what` failed because of `source`.
    pub(crate) fn setup(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Setup {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The exit code of this class of error (DESIGN.md §3).
    pub(crate) fn exit(&self) -> Exit {
        match self {
            Error::InvalidManifest { .. } => Exit::Invalid,
            Error::PlanVersion { .. } | Error::Stale { .. } | Error::Guard(_) => Exit::Blocked,
            // The argument named something that is not a plan file: the command line is wrong.
            Error::ReadPlanFile { .. }
            | Error::NotAPlanFile { .. }
            | Error::NoTerminal
            | Error::Exists { .. }
            | Error::Usage(_) => Exit::Usage,
            Error::NoToken
            | Error::PrComment { .. }
            | Error::MissingVariables(_)
            | Error::Api(_)
            | Error::Write { .. }
            | Error::Output(_)
            | Error::Setup { .. } => Exit::Failed,
        }
    }

    /// Whether this is stdout closed by its reader (`bbsync plan | head`): not worth a word.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Lines that belong to the message (what it is about, item by item).
    pub(crate) fn details(&self) -> Vec<String> {
        match self {
            Error::Stale { projects, .. } => projects
                .iter()
                .map(|(project, why)| format!("- {project}: {why}"))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// What to do about it.
    pub(crate) fn hints(&self) -> Vec<String> {
        match self {
            Error::PrComment { hint, .. } => vec![hint.clone()],
            Error::NoToken => vec![
                "create one in the Console under My profile > API tokens, or try `bbsync demo` first"
                    .to_owned(),
            ],
            Error::PlanVersion { path, .. } => vec![format!(
                "make a new plan with this bbsync (`bbsync plan --out {}`)",
                path.display()
            )],
            Error::Stale {
                path: Some(path), ..
            } => vec![format!(
                "make a new plan (`bbsync plan --out {}`) and review it",
                path.display()
            )],
            Error::Stale { path: None, .. } => vec![
                "run `bbsync apply` again to plan against the live state as it is now".to_owned(),
            ],
            Error::Guard(GuardViolation::TooManyDeletes { .. }) => vec![
                "review the deletions, then pass `--max-deletes N` to allow them".to_owned(),
            ],
            Error::Guard(GuardViolation::Environments(_)) => vec![
                "set `prune_branches: false` for the first sync, or review the environments and pass `--max-environment-deletes N`".to_owned(),
            ],
            Error::MissingVariables(_) => vec![
                "set them (the manifest names them as `${NAME}`), then run again".to_owned(),
            ],
            Error::NoTerminal => vec![
                "review with `bbsync plan`, then run `bbsync apply --auto-approve` (or `bbsync apply PLANFILE`)"
                    .to_owned(),
            ],
            Error::ReadPlanFile { .. } | Error::NotAPlanFile { .. } => {
                vec!["pass a file written by `bbsync plan --out PLANFILE`".to_owned()]
            }
            Error::Exists { path } => vec![format!(
                "pass `--force` to overwrite it, or `-o` another file (`{}` is left as it was)",
                path.display()
            )],
            Error::Api(error) => error.hints(),
            Error::Setup { source, .. } => source
                .downcast_ref::<ApiError>()
                .map(ApiError::hints)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// The error as printed: `error: ...`, its details, `Caused by:` and `hint:` lines.
pub(crate) fn render(error: &Error) -> String {
    let mut text = format!("error: {error}\n");
    for detail in error.details() {
        let _ = writeln!(text, "  {detail}");
    }
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    // `transparent` variants show their inner error's message already: skip it as a cause.
    if matches!(error, Error::Api(_)) {
        source = source.and_then(std::error::Error::source);
    }
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if !causes.is_empty() {
        text.push_str("\nCaused by:\n");
        for cause in causes {
            let _ = writeln!(text, "  {cause}");
        }
    }
    for hint in error.hints() {
        let _ = writeln!(text, "  hint: {hint}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_message_causes_and_hints() {
        let error = Error::ReadPlanFile {
            path: "plan.json".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(
            render(&error),
            "error: cannot read the plan file `plan.json`\n\nCaused by:\n  no such file\n  hint: pass a file written by `bbsync plan --out PLANFILE`\n"
        );
        assert_eq!(error.exit(), Exit::Usage);
    }

    #[test]
    fn the_class_decides_the_exit_code() {
        assert_eq!(Error::NoToken.exit(), Exit::Failed);
        assert_eq!(Error::InvalidManifest { errors: 2 }.exit(), Exit::Invalid);
        let stale = Error::Stale {
            at_prompt: false,
            projects: vec![(ProjectId::new("p1"), "changed".to_owned())],
            path: None,
        };
        assert_eq!(stale.exit(), Exit::Blocked);
        assert!(render(&stale).contains("  - p1: changed\n"));
        let pipe = Error::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
    }
}
