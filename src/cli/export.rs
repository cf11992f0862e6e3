//! `bbsync export` and `bbsync validate --online`: the commands that read the API to help adopt
//! bbsync.

use super::output;
use super::output::eprintln_redacted;
use std::collections::BTreeSet;
use std::io::Write as _;

use futures_util::StreamExt as _;

use super::args::{ExportArgs, ManifestArgs};
use super::{Error, Exit, Settings, load};
use crate::live;
use crate::model::ids::ProjectId;
use crate::model::live::ProjectLive;
use crate::reconcile::online::{self, Verdict};
use crate::render::export::{self, ExportProject};

/// `bbsync export`.
pub(crate) async fn run(settings: &Settings, args: &ExportArgs) -> Result<Exit, Error> {
    // Before reading the API: an export that would be refused at the end is refused now.
    if let Some(path) = &args.out
        && !args.force
        && std::fs::symlink_metadata(path).is_ok()
    {
        return Err(Error::Exists { path: path.clone() });
    }
    let client = settings.client()?;
    let mut titles = std::collections::BTreeMap::new();
    let ids: BTreeSet<ProjectId> = match &args.organization {
        Some(org) => {
            let listed = client.organization_projects(org).await.map_err(|e| {
                Error::setup(
                    format!("cannot list the projects of organization `{org}`"),
                    e,
                )
            })?;
            listed
                .into_iter()
                .map(|p| {
                    let id = ProjectId::new(p.id);
                    if let Some(title) = p.title {
                        titles.insert(id.clone(), title);
                    }
                    id
                })
                .collect()
        }
        None => {
            let ids: BTreeSet<ProjectId> = args.projects.iter().cloned().collect();
            let lookups = ids.iter().map(|id| {
                let client = client.clone();
                async move { (id.clone(), client.project(id).await.ok()) }
            });
            let found: Vec<_> = futures_util::stream::iter(lookups)
                .buffer_unordered(settings.api.concurrency)
                .collect()
                .await;
            for (id, project) in found {
                if let Some(title) = project
                    .as_ref()
                    .and_then(|p| p.get("title"))
                    .and_then(|t| t.as_str())
                {
                    titles.insert(id, title.to_owned());
                }
            }
            ids
        }
    };
    let states = if args.organization.is_some() {
        live::fetch_listed(&client, ids).await
    } else {
        live::fetch(&client, &ids, None, None, &|_, _| {})
            .await
            .projects
    };
    let projects: Vec<ExportProject> = states
        .into_iter()
        .map(|(id, live)| ExportProject {
            title: titles.get(&id).cloned(),
            id,
            live,
        })
        .collect();
    let exported = export::export(&projects, args.organization.as_ref(), args.full);
    match &args.out {
        Some(path) => {
            let written = if args.force {
                output::write_file(path, &exported.text)
            } else {
                output::write_new_file(path, &exported.text)
            };
            written.map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => Error::Exists { path: path.clone() },
                _ => Error::Write {
                    path: path.clone(),
                    source,
                },
            })?;
        }
        None => output::stdout().write_all(exported.text.as_bytes())?,
    }
    let managed = projects
        .iter()
        .filter(|p| matches!(&p.live, ProjectLive::Known { managed, .. } if managed.len() == 1))
        .count();
    if !settings.quiet {
        eprintln_redacted!(
            "Exported {managed} Bitbucket integration(s) from {} project(s).",
            projects.len()
        );
        if !exported.variables.is_empty() {
            eprintln_redacted!(
                "Set these variables before `bbsync apply` (the API never returns secrets):"
            );
            for (name, what) in &exported.variables {
                eprintln_redacted!("  {name}: {what}");
            }
        }
    }
    for problem in exported.problems.iter().chain(&exported.warnings) {
        eprintln_redacted!("warning: not exported: {problem}");
    }
    Ok(if exported.problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// The Bitbucket checklist of one project: one line per check, and for a failure what is
/// wrong and what to change.
fn write_bitbucket_checklist(
    out: &mut impl std::io::Write,
    check: &online::ProjectCheck,
) -> std::io::Result<()> {
    use crate::live::CheckOutcome;
    if let Some(why) = &check.bitbucket_unchecked {
        writeln!(out, "             bitbucket: not checked: {why}")?;
    }
    for c in &check.bitbucket {
        match &c.outcome {
            CheckOutcome::Passed { note } => {
                writeln!(out, "             [ok]      {:<10}  {note}", c.kind.name())?;
            }
            CheckOutcome::Failed { problem, hint } => {
                writeln!(
                    out,
                    "             [failed]  {:<10}  {problem}",
                    c.kind.name()
                )?;
                writeln!(out, "                                   fix: {hint}")?;
            }
            CheckOutcome::Skipped { reason } => {
                writeln!(
                    out,
                    "             [skipped] {:<10}  {reason}",
                    c.kind.name()
                )?;
            }
        }
    }
    Ok(())
}

/// `bbsync validate --online`, after the offline checks passed.
pub(crate) async fn validate_online(
    settings: &Settings,
    manifest: &ManifestArgs,
) -> Result<Exit, Error> {
    let (desired, _) = load(&manifest.files, &settings.env)?;
    let client = settings.client()?;
    let bitbucket = if settings.api.skip_bitbucket_checks {
        None
    } else {
        Some(settings.bitbucket(&client)?)
    };
    let checks = online::check(
        &client,
        bitbucket.as_ref(),
        &settings.env,
        &desired,
        settings.api.concurrency,
    )
    .await;
    let mut out = output::stdout();
    let (mut invalid, mut unchecked, mut unvalidated) = (0, 0, 0);
    let (mut org_invalid, mut org_unchecked) = (false, false);
    // The organization, given by ID or name, must be one the API knows (a name is resolved as
    // the CLI does: [`live::Client::organization_id`]).
    if let Some(org) = &desired.organization {
        match client.organization_id(org).await {
            Ok(id) if id == *org => writeln!(out, "  ok         organization {org}")?,
            Ok(id) => writeln!(out, "  ok         organization {org}  its ID is {id}")?,
            Err(error @ live::ApiError::OrganizationNotFound { .. }) => {
                org_invalid = true;
                writeln!(
                    out,
                    "  invalid    organization {org}  {}",
                    live::explain(&error)
                )?;
            }
            Err(error) => {
                org_unchecked = true;
                writeln!(
                    out,
                    "  unchecked  organization {org}  {}",
                    live::explain(&error)
                )?;
            }
        }
    }
    for check in &checks {
        match &check.verdict {
            Verdict::Valid { note } if check.bitbucket_failed() => writeln!(
                out,
                "  invalid    {}  {note}, but the Bitbucket side fails a check:",
                check.project
            )?,
            Verdict::Valid { note } => writeln!(out, "  ok         {}  {note}", check.project)?,
            Verdict::Invalid { problems } => {
                invalid += 1;
                for problem in problems {
                    writeln!(out, "  invalid    {}  {problem}", check.project)?;
                }
            }
            Verdict::CannotValidate { reason } => {
                unvalidated += 1;
                writeln!(out, "  warning    {}  {reason}", check.project)?;
            }
            Verdict::Unchecked { error } => {
                unchecked += 1;
                writeln!(out, "  unchecked  {}  {error}", check.project)?;
            }
        }
        write_bitbucket_checklist(&mut out, check)?;
        if check.bitbucket_failed()
            && matches!(
                check.verdict,
                Verdict::Valid { .. } | Verdict::CannotValidate { .. }
            )
        {
            invalid += 1;
            if matches!(check.verdict, Verdict::CannotValidate { .. }) {
                unvalidated -= 1;
            }
        }
    }
    let cannot = if unvalidated > 0 {
        format!(", {unvalidated} whose integration cannot be validated")
    } else {
        String::new()
    };
    writeln!(
        out,
        "online: {} project(s) checked, {} valid, {invalid} invalid{cannot}, {unchecked} could not be checked",
        checks.len(),
        checks.len() - invalid - unchecked - unvalidated
    )?;
    Ok(if invalid > 0 || org_invalid {
        Exit::Invalid
    } else if unchecked > 0 || org_unchecked {
        Exit::Failed
    } else {
        Exit::Ok
    })
}
