//! `bbsync plan` and `bbsync apply`: glue between the manifest, the API and the planner.

use std::collections::BTreeSet;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use tokio_util::sync::CancellationToken;

use super::args::{ApplyArgs, Format, PlanArgs, ReportFormat};
use super::{Exit, Global, load, stderr_color, stdout_color};
use crate::apply::{self, ApplyOptions, Outcome, Report};
use crate::live::{self, Client, ClientConfig};
use crate::model::DesiredState;
use crate::model::ids::ProjectId;
use crate::model::live::LiveState;
use crate::model::secret::Secret;
use crate::plan::{self, Plan, PlanOptions};
use crate::render::{self, Painter};

/// The API token from `PLATFORMSH_CLI_TOKEN`, else `UPSUN_CLI_TOKEN`.
pub fn api_token() -> Result<Secret> {
    ["PLATFORMSH_CLI_TOKEN", "UPSUN_CLI_TOKEN"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .map(|v| Secret::new(v.trim().to_owned()))
        .ok_or_else(|| {
            anyhow!(
                "no API token: set PLATFORMSH_CLI_TOKEN (or UPSUN_CLI_TOKEN)\n  hint: create one in the Console under My profile > API tokens, or try `bbsync demo` first"
            )
        })
}

/// A client for the configured API.
pub fn client(global: &Global) -> Result<Client> {
    let mut config = ClientConfig::new(&global.api_url, &global.auth_url, api_token()?);
    config.concurrency = usize::from(global.concurrency);
    config.max_rps = global.max_rps.filter(|r| *r > 0.0);
    config.timeout = global.timeout;
    Ok(Client::new(config)?)
}

/// Reads the live state a plan of `desired` needs, with a progress bar on a terminal.
pub async fn read_live(
    client: &Client,
    desired: &DesiredState,
    only: Option<&BTreeSet<ProjectId>>,
    quiet: bool,
) -> LiveState {
    let projects: BTreeSet<ProjectId> = desired
        .projects
        .keys()
        .filter(|id| only.is_none_or(|o| o.contains(*id)))
        .cloned()
        .collect();
    let organization = desired.organization.as_ref().filter(|_| desired.prune);
    let bar = progress_bar(projects.len() as u64, quiet, "reading live state");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let state = live::fetch(client, &projects, organization, only, &progress).await;
    bar.finish_and_clear();
    state
}

fn progress_bar(total: u64, quiet: bool, message: &'static str) -> indicatif::ProgressBar {
    if quiet || total < 2 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

fn selection(
    projects: &[ProjectId],
    desired: &DesiredState,
    warnings: &mut Vec<String>,
) -> Option<BTreeSet<ProjectId>> {
    if projects.is_empty() {
        return None;
    }
    for id in projects {
        if !desired.projects.contains_key(id) && !desired.prune {
            warnings.push(format!(
                "--project `{id}` is not in the manifest; nothing is planned for it"
            ));
        }
    }
    Some(projects.iter().cloned().collect())
}

/// Loads the manifest and plans it against the live API.
async fn make_plan(
    global: &Global,
    files: &[std::path::PathBuf],
    projects: &[ProjectId],
    rotate: bool,
) -> Result<Result<Plan, Exit>> {
    let (desired, diagnostics) = match load(files) {
        Ok(loaded) => loaded,
        Err(exit) => return Ok(Err(exit)),
    };
    let mut warnings: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    let only = selection(projects, &desired, &mut warnings);
    let client = client(global)?;
    let live = read_live(&client, &desired, only.as_ref(), global.quiet).await;
    Ok(Ok(plan::plan(
        &desired,
        &live,
        &PlanOptions {
            only,
            rotate_credentials: rotate,
            warnings,
        },
    )))
}

fn write_plan_file(path: &Path, plan: &Plan) -> Result<()> {
    std::fs::write(path, render::plan_json(plan))
        .with_context(|| format!("cannot write the plan to `{}`", path.display()))
}

/// `bbsync plan`.
pub async fn plan_command(global: &Global, args: &PlanArgs) -> Result<Exit> {
    let plan = match make_plan(
        global,
        &args.manifest.files,
        &args.projects,
        args.rotate_credentials,
    )
    .await?
    {
        Ok(plan) => plan,
        Err(exit) => return Ok(exit),
    };
    let text = match args.format {
        Format::Text => render::plan_text(&plan, Painter::new(stdout_color()), global.verbose > 0),
        Format::Json => render::plan_json(&plan),
        Format::Markdown => {
            let limit = (args.markdown_limit > 0).then_some(args.markdown_limit);
            render::plan_markdown_within(&plan, limit)
        }
    };
    anstream::stdout().write_all(text.as_bytes())?;
    if let Some(path) = &args.out {
        write_plan_file(path, &plan)?;
        if !global.quiet {
            eprintln!(
                "Saved the plan to `{}`; apply exactly it with `bbsync apply {}`.",
                path.display(),
                path.display()
            );
        }
    }
    Ok(if plan.has_errors() {
        Exit::Failed
    } else if args.detailed_exitcode && plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Ok
    })
}

/// `bbsync apply`.
pub async fn apply_command(global: &Global, args: &ApplyArgs) -> Result<Exit> {
    let plan = match &args.plan_file {
        Some(path) => match saved_plan(global, path).await? {
            Ok(plan) => plan,
            Err(exit) => return Ok(exit),
        },
        None => {
            let plan = match make_plan(
                global,
                &args.manifest.files,
                &args.projects,
                args.rotate_credentials,
            )
            .await?
            {
                Ok(plan) => plan,
                Err(exit) => return Ok(exit),
            };
            let text = render::plan_text(&plan, Painter::new(stderr_color()), false);
            anstream::stderr().write_all(text.as_bytes())?;
            plan
        }
    };
    if let Err(violation) = plan::check_guards(&plan, args.max_deletes) {
        eprintln!("error: {violation}; nothing was written");
        eprintln!("  hint: review the deletions, then pass `--max-deletes N` to allow them");
        return Ok(Exit::Blocked);
    }
    if !plan.has_changes() {
        let report = apply::apply(
            &client(global)?,
            &plan,
            &|_| None,
            &apply_options(global, args),
            &CancellationToken::new(),
            &|_| {},
        )
        .await;
        return finish(global, args, &report);
    }
    if args.plan_file.is_none() && !args.auto_approve {
        if !std::io::stdin().is_terminal() {
            eprintln!("error: `apply` needs confirmation, and there is no terminal to ask on");
            eprintln!(
                "  hint: review with `bbsync plan`, then run `bbsync apply --auto-approve` (or `bbsync apply PLANFILE`)"
            );
            return Ok(Exit::Usage);
        }
        eprint!("\nApply these changes? Only 'yes' will be accepted: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("Apply cancelled; nothing was written.");
            return Ok(Exit::Ok);
        }
        // Time passed while the plan was read: a change made meanwhile (in the Console, by
        // `bbsync watch`, by another apply) must not be overwritten by a plan made before it.
        if let Some(stale) = stale_now(global, &plan).await? {
            report_stale("the plan went stale while waiting for the answer", &stale);
            eprintln!(
                "  hint: run `bbsync apply` again to plan against the live state as it is now"
            );
            return Ok(Exit::Blocked);
        }
    }
    let client = client(global)?;
    let cancel = CancellationToken::new();
    let interrupt = tokio::spawn(watch_interrupts(cancel.clone()));
    let bar = progress_bar(
        plan.actions.iter().filter(|a| a.action.writes()).count() as u64,
        global.quiet,
        "applying",
    );
    let on_done = |report: &apply::ActionReport| {
        if report.action.writes() {
            bar.inc(1);
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    let report = apply::apply(
        &client,
        &plan,
        &env,
        &apply_options(global, args),
        &cancel,
        &on_done,
    )
    .await;
    bar.finish_and_clear();
    interrupt.abort();
    finish(global, args, &report)
}

fn apply_options(global: &Global, args: &ApplyArgs) -> ApplyOptions {
    ApplyOptions {
        wait: !args.no_wait,
        concurrency: usize::from(global.concurrency),
    }
}

/// First Ctrl-C: start nothing new, let actions in flight finish. Second: abort.
async fn watch_interrupts(cancel: CancellationToken) {
    if tokio::signal::ctrl_c().await.is_ok() {
        cancel.cancel();
        eprintln!(
            "\nInterrupted: starting nothing new, letting the actions in flight finish (Ctrl-C again to abort)."
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("Aborted.");
            std::process::exit(Exit::Failed as i32);
        }
    }
}

/// Reads a saved plan and checks it is still true of the live state.
async fn saved_plan(global: &Global, path: &Path) -> Result<Result<Plan, Exit>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan file `{}`", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a plan file (not JSON)", path.display()))?;
    let version = value
        .get("format_version")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if version != plan::FORMAT_VERSION {
        eprintln!(
            "error: `{}` has plan format version `{version}`; this bbsync applies version `{}` only; nothing was written",
            path.display(),
            plan::FORMAT_VERSION
        );
        eprintln!(
            "  hint: make a new plan with this bbsync (`bbsync plan --out {}`)",
            path.display()
        );
        return Ok(Err(Exit::Blocked));
    }
    let plan: Plan = serde_json::from_value(value)
        .with_context(|| format!("`{}` is not a valid plan file", path.display()))?;
    if let Some(stale) = stale_now(global, &plan).await? {
        report_stale("the saved plan is stale", &stale);
        eprintln!(
            "  hint: make a new plan (`bbsync plan --out {}`) and review it",
            path.display()
        );
        return Ok(Err(Exit::Blocked));
    }
    Ok(Ok(plan))
}

/// Reads again the live state of every project the plan writes to, and names those where it is
/// no longer what the plan was made against (`None` when the plan still holds everywhere).
async fn stale_now(global: &Global, plan: &Plan) -> Result<Option<Vec<(ProjectId, String)>>> {
    let client = client(global)?;
    let projects: BTreeSet<ProjectId> = plan
        .actions
        .iter()
        .filter(|a| a.action.writes())
        .map(|a| a.project.clone())
        .collect();
    let live = live::fetch(&client, &projects, None, None, &|_, _| {}).await;
    let stale = plan::stale_projects(plan, &live);
    Ok((!stale.is_empty()).then_some(stale))
}

fn report_stale(what: &str, stale: &[(ProjectId, String)]) {
    eprintln!(
        "error: {what} for {} project(s); nothing was written:",
        stale.len()
    );
    for (project, why) in stale {
        eprintln!("  - {project}: {why}");
    }
}

fn finish(global: &Global, args: &ApplyArgs, report: &Report) -> Result<Exit> {
    let text = match args.format {
        ReportFormat::Json => {
            let mut json = serde_json::to_string_pretty(report)?;
            json.push('\n');
            json
        }
        ReportFormat::Text => {
            render::report_text(report, Painter::new(stdout_color()), global.verbose > 0)
        }
    };
    anstream::stdout().write_all(text.as_bytes())?;
    Ok(if report.failed() {
        Exit::Failed
    } else if report.count(Outcome::Blocked) > 0 {
        Exit::Blocked
    } else {
        Exit::Ok
    })
}
