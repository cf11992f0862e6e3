//! `bbsync plan` and `bbsync apply`: the reconcile pass, with a terminal around it.

use super::output;
use super::output::eprintln_redacted;
use std::collections::BTreeSet;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::args::{ApplyArgs, Format, MarkdownArgs, PlanArgs, ReportFormat, ShowArgs};
use super::{Error, Exit, Settings, load, stderr_color, stdout_color};
use crate::apply::{self, ApplyOptions, Outcome, Report};
use crate::live::{Posted, PullRequest, Throttle};
use crate::model::DesiredState;
use crate::model::ids::ProjectId;
use crate::model::secret::Secret;
use crate::plan::{self, Plan};
use crate::reconcile::{Approval, Hooks, PassOptions, Source, Stop};
use crate::render::{self, Painter};

fn progress_bar(
    total: u64,
    quiet: bool,
    message: &'static str,
    throttle: &Throttle,
) -> indicatif::ProgressBar {
    if quiet || total < 2 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let throttle = throttle.clone();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}{throttle}")
    {
        let style = style.with_key(
            "throttle",
            move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = out.write_str(&slowdown_note(throttle.pause_left()));
            },
        );
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    // Redrawn while nothing progresses, so that a pause shows and counts down.
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}

/// What a progress line says of a pause in force (`pause_left`), or nothing.
fn slowdown_note(pause_left: Option<std::time::Duration>) -> String {
    match pause_left {
        Some(left) => format!(
            "  the API asked us to slow down: waiting {} s",
            left.as_secs_f64().ceil().max(1.0)
        ),
        None => String::new(),
    }
}

/// The terminal around a pass: progress bars, the plan on stderr, the question.
struct Terminal {
    quiet: bool,
    /// Print the plan on stderr once made (interactive `apply`).
    show_plan: bool,
    /// Ask before writing.
    ask: bool,
    /// Made at the first progress report, when the total is known.
    reading: std::sync::OnceLock<indicatif::ProgressBar>,
    applying: indicatif::ProgressBar,
    /// An answer was needed and there was no terminal to ask on.
    no_terminal: bool,
    /// Printing the plan or reading the answer failed.
    failed: Option<std::io::Error>,
    /// The process's throttle, whose pauses the progress lines tell.
    throttle: Throttle,
}

impl Terminal {
    fn new(quiet: bool, show_plan: bool, ask: bool, throttle: &Throttle) -> Self {
        Self {
            throttle: throttle.clone(),
            quiet,
            show_plan,
            ask,
            reading: std::sync::OnceLock::new(),
            applying: indicatif::ProgressBar::hidden(),
            no_terminal: false,
            failed: None,
        }
    }
}

impl Hooks for Terminal {
    fn progress(&self, done: usize, total: usize) {
        let bar = self.reading.get_or_init(|| {
            progress_bar(
                total as u64,
                self.quiet,
                "reading live state",
                &self.throttle,
            )
        });
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }

    fn planned(&mut self, plan: &Plan) {
        if let Some(bar) = self.reading.get() {
            bar.finish_and_clear();
        }
        if self.show_plan {
            let text = render::plan_text(plan, Painter::new(stderr_color()), false);
            if let Err(error) = output::stderr().write_all(text.as_bytes()) {
                self.failed = Some(error);
            }
        }
    }

    fn approve(&mut self, _plan: &Plan) -> impl Future<Output = Approval> + Send {
        let approval = if self.ask && !std::io::stdin().is_terminal() {
            self.no_terminal = true;
            Approval::No
        } else if self.ask {
            let mut err = output::stderr();
            let _ = write!(err, "\nApply these changes? Only 'yes' will be accepted: ");
            let _ = err.flush();
            let mut answer = String::new();
            match std::io::stdin().lock().read_line(&mut answer) {
                // Time passed while the plan was read: a change made meanwhile (in the
                // Console, by `bbsync watch`, by another apply) must not be overwritten by a
                // plan made before it.
                Ok(_) if answer.trim() == "yes" => Approval::YesIfUnchanged,
                Ok(_) => Approval::No,
                Err(error) => {
                    self.failed = Some(error);
                    Approval::No
                }
            }
        } else {
            Approval::Yes
        };
        std::future::ready(approval)
    }

    fn applying(&mut self, writes: usize) {
        self.applying = progress_bar(writes as u64, self.quiet, "applying", &self.throttle);
    }

    fn done(&self, report: &apply::ActionReport) {
        if report.action.writes() {
            self.applying.inc(1);
        }
    }
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

/// The pass options for the manifest at `files`, and the desired state it holds.
fn manifest_pass(
    settings: &Settings,
    files: &[std::path::PathBuf],
    projects: &[ProjectId],
    rotate_credentials: bool,
) -> Result<(DesiredState, PassOptions), Error> {
    let (desired, diagnostics) = load(files, &settings.env)?;
    let mut warnings: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    let only = selection(projects, &desired, &mut warnings);
    Ok((
        desired,
        PassOptions {
            only,
            rotate_credentials,
            warnings,
            ..PassOptions::default()
        },
    ))
}

fn write_plan_file(path: &Path, plan: &Plan) -> Result<(), Error> {
    output::write_file(path, &render::plan_json(plan)).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// `bbsync plan`.
pub(crate) async fn plan_command(settings: &Settings, args: &PlanArgs) -> Result<Exit, Error> {
    let (desired, options) = manifest_pass(
        settings,
        &args.manifest.files,
        &args.projects,
        args.rotate_credentials,
    )?;
    // Where the comment goes is checked before anything is read: a CI misconfiguration
    // fails at once.
    let pull_request = args
        .pr_comment
        .then(|| pr_target(&settings.env))
        .transpose()?;
    let reconciler = settings.reconciler()?;
    let mut terminal = Terminal::new(settings.quiet, false, false, reconciler.client().throttle());
    let pass = reconciler
        .pass(
            Source::Manifest(&desired),
            &options,
            &mut terminal,
            &CancellationToken::new(),
        )
        .await;
    let plan = pass.plan;
    let text = rendered(&plan, args.format, &args.markdown, settings.verbose > 0);
    output::stdout().write_all(text.as_bytes())?;
    if let Some((pull_request, token)) = &pull_request {
        post_plan(settings, &reconciler, &plan, args, pull_request, token).await?;
    }
    if let Some(path) = &args.out {
        write_plan_file(path, &plan)?;
        if !settings.quiet {
            eprintln_redacted!(
                "Saved the plan to `{}`; apply exactly it with `bbsync apply {}`.",
                path.display(),
                path.display()
            );
        }
    }
    Ok(if plan.has_errors() {
        Exit::Failed
    } else if args.detailed_exitcode && (plan.has_changes() || plan.summary.blocked > 0) {
        // A drift bbsync refuses to fix (blocked) is not "no changes" (DESIGN §2).
        Exit::Changes
    } else {
        Exit::Ok
    })
}

/// `bbsync apply`.
pub(crate) async fn apply_command(settings: &Settings, args: &ApplyArgs) -> Result<Exit, Error> {
    let saved = match &args.plan_file {
        Some(path) => Some(read_plan_file(path)?),
        None => None,
    };
    let manifest = match &saved {
        Some(_) => None,
        None => Some(manifest_pass(
            settings,
            &args.manifest.files,
            &args.projects,
            args.rotate_credentials,
        )?),
    };
    let ask = saved.is_none() && !args.auto_approve;
    let reconciler = settings.reconciler()?;
    let mut options = manifest
        .as_ref()
        .map(|(_, options)| options.clone())
        .unwrap_or_default();
    options.max_deletes = args.max_deletes;
    options.max_environment_deletes = args.max_environment_deletes;
    options.apply = Some(ApplyOptions {
        wait: !args.no_wait,
        activity_timeout: args.activity_timeout,
        concurrency: settings.api.concurrency,
    });
    let source = match (&saved, &manifest) {
        (Some(plan), _) => Source::Saved(plan),
        (None, Some((desired, _))) => Source::Manifest(desired),
        (None, None) => unreachable!("a plan file or a manifest"),
    };
    let mut terminal = Terminal::new(
        settings.quiet,
        saved.is_none(),
        ask,
        reconciler.client().throttle(),
    );
    let cancel = CancellationToken::new();
    // Registered before anything is written: a signal from then on is handled, not fatal.
    let interrupt = tokio::spawn(watch_interrupts(Interrupts::new(), cancel.clone()));
    let pass = reconciler
        .pass(source, &options, &mut terminal, &cancel)
        .await;
    terminal.applying.finish_and_clear();
    interrupt.abort();
    if let Some(error) = terminal.failed {
        return Err(Error::Output(error));
    }
    if terminal.no_terminal {
        return Err(Error::NoTerminal);
    }
    match pass.stop {
        Some(Stop::Guard(violation)) => Err(Error::Guard(violation)),
        Some(Stop::Stale {
            at_prompt,
            projects,
        }) => Err(Error::Stale {
            at_prompt,
            projects,
            path: args.plan_file.clone(),
        }),
        Some(Stop::MissingVariables(missing)) => Err(Error::MissingVariables(
            crate::reconcile::describe_missing(&missing),
        )),
        Some(Stop::Declined) => {
            eprintln_redacted!("Apply cancelled; nothing was written.");
            Ok(Exit::Ok)
        }
        Some(Stop::Planned) | None => {
            let report = pass.report.unwrap_or_default();
            finish(settings, args, &report)
        }
    }
}

/// The first Ctrl-C or SIGTERM: start nothing new, let the actions in flight finish (a replace
/// makes both its delete and its create). A second Ctrl-C aborts at once; a second SIGTERM
/// does not (a supervisor's SIGKILL after its grace period is the hard stop).
async fn watch_interrupts(mut signals: Interrupts, cancel: CancellationToken) {
    let first = signals.next().await;
    cancel.cancel();
    eprintln_redacted!(
        "\n{first}: starting nothing new, letting the actions in flight finish{}.",
        if first == Interrupt::CtrlC {
            " (Ctrl-C again to abort)"
        } else {
            ""
        }
    );
    loop {
        if signals.next().await == Interrupt::CtrlC {
            eprintln_redacted!("Aborted.");
            std::process::exit(Exit::Failed as i32);
        }
    }
}

/// A signal that stops an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    CtrlC,
    Terminate,
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interrupt::CtrlC => "Interrupted",
            Interrupt::Terminate => "Terminated (SIGTERM)",
        })
    }
}

/// Ctrl-C and, on Unix, SIGTERM, as one stream.
struct Interrupts {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    fn new() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) -> Interrupt {
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => Interrupt::CtrlC,
                _ = term.recv() => Interrupt::Terminate,
            };
        }
        match tokio::signal::ctrl_c().await {
            Ok(()) => Interrupt::CtrlC,
            // No Ctrl-C handler: never interrupted that way.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Reads a saved plan (not yet checked against the live state).
/// The hidden line that marks bbsync's pull-request comment, so that later runs update it: a
/// CommonMark link reference definition, which renders as nothing (CommonMark spec §4.7; HTML
/// comments would be escaped and shown by Bitbucket).
pub(crate) const PR_MARKER: &str = "[bbsync-plan]: # (bbsync plan comment, updated in place)";

/// The pull request `--pr-comment` posts to, from Bitbucket Pipelines' variables (Bitbucket
/// Cloud "Variables and secrets": `BITBUCKET_WORKSPACE`, `BITBUCKET_REPO_SLUG`, and
/// `BITBUCKET_PR_ID`, set only in pipelines that pull requests start), and the token.
fn pr_target(env: &crate::model::Env) -> Result<(PullRequest, Secret), Error> {
    let var = |name: &str| env.get(name).map(str::trim).filter(|v| !v.is_empty());
    let missing: Vec<&str> = [
        "BITBUCKET_WORKSPACE",
        "BITBUCKET_REPO_SLUG",
        "BITBUCKET_PR_ID",
    ]
    .into_iter()
    .filter(|name| var(name).is_none())
    .collect();
    if !missing.is_empty() {
        return Err(Error::PrComment {
            what: format!("{} not set", missing.join(", ")),
            hint: "run it in a pipeline that a pull request starts (`pipelines: pull-requests:`), or set those variables".to_owned(),
        });
    }
    let id = var("BITBUCKET_PR_ID").unwrap_or_default();
    let id: u64 = id.parse().map_err(|_| Error::PrComment {
        what: format!("BITBUCKET_PR_ID is `{id}`, not a pull request number"),
        hint: "Bitbucket Pipelines sets it to the pull request's number".to_owned(),
    })?;
    let Some(token) = var("BBSYNC_BITBUCKET_TOKEN") else {
        return Err(Error::PrComment {
            what: "BBSYNC_BITBUCKET_TOKEN is not set".to_owned(),
            hint: "create a repository access token with the `pullrequest:write` scope and store it as a secured repository variable BBSYNC_BITBUCKET_TOKEN".to_owned(),
        });
    };
    let pull_request = PullRequest {
        workspace: var("BITBUCKET_WORKSPACE").unwrap_or_default().to_owned(),
        slug: var("BITBUCKET_REPO_SLUG").unwrap_or_default().to_owned(),
        id,
    };
    Ok((pull_request, Secret::new(token)))
}

/// Posts the plan as Markdown on the pull request, or updates bbsync's earlier comment there.
async fn post_plan(
    settings: &Settings,
    reconciler: &crate::reconcile::Reconciler,
    plan: &Plan,
    args: &PlanArgs,
    pull_request: &PullRequest,
    token: &Secret,
) -> Result<(), Error> {
    // Room for the marker line.
    let markdown = render::plan_markdown_within(
        plan,
        args.markdown.limit(PR_MARKER.len() + 2),
        args.markdown.markdown_flavor,
    );
    let body = format!("{PR_MARKER}\n\n{markdown}");
    let bitbucket = settings.bitbucket(reconciler.client())?;
    let posted = bitbucket
        .pr_comment(token, pull_request, PR_MARKER, &body)
        .await
        .map_err(|what| Error::PrComment {
            what,
            hint: "check that BBSYNC_BITBUCKET_TOKEN is a repository or workspace access token with `pullrequest:write`, and that it belongs to this repository".to_owned(),
        })?;
    if !settings.quiet {
        let (verb, id) = match posted {
            Posted::Created(id) => ("Posted", id),
            Posted::Updated(id) => ("Updated", id),
        };
        eprintln_redacted!(
            "{verb} the plan on pull request #{} of {}/{} (comment {id}).",
            pull_request.id,
            pull_request.workspace,
            pull_request.slug
        );
    }
    Ok(())
}

/// The plan in `format` (`--markdown-limit` 0: no limit).
fn rendered(plan: &Plan, format: Format, markdown: &MarkdownArgs, verbose: bool) -> String {
    match format {
        Format::Text => render::plan_text(plan, Painter::new(stdout_color()), verbose),
        Format::Json => render::plan_json(plan),
        Format::Markdown => {
            render::plan_markdown_within(plan, markdown.limit(0), markdown.markdown_flavor)
        }
    }
}

/// `bbsync show PLANFILE`: a saved plan, rendered again; nothing is read from the API.
pub(crate) fn show_command(settings: &Settings, args: &ShowArgs) -> Result<Exit, Error> {
    let plan = read_plan_file(&args.planfile)?;
    let text = rendered(&plan, args.format, &args.markdown, settings.verbose > 0);
    output::stdout().write_all(text.as_bytes())?;
    Ok(Exit::Ok)
}

fn read_plan_file(path: &Path) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadPlanFile {
        path: path.to_owned(),
        source,
    })?;
    let not_a_plan = |source| Error::NotAPlanFile {
        path: path.to_owned(),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(not_a_plan)?;
    let version = value
        .get("format_version")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if version != plan::FORMAT_VERSION {
        return Err(Error::PlanVersion {
            path: path.to_owned(),
            found: version.to_owned(),
        });
    }
    serde_json::from_value(value).map_err(not_a_plan)
}

fn finish(settings: &Settings, args: &ApplyArgs, report: &Report) -> Result<Exit, Error> {
    let text = match args.format {
        ReportFormat::Json => render::report_json(report),
        ReportFormat::Text => {
            render::report_text(report, Painter::new(stdout_color()), settings.verbose > 0)
        }
    };
    output::stdout().write_all(text.as_bytes())?;
    Ok(if report.failed() {
        Exit::Failed
    } else if report.count(Outcome::Blocked) > 0 {
        Exit::Blocked
    } else {
        Exit::Ok
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_progress_line_tells_a_pause() {
        assert_eq!(super::slowdown_note(None), "");
        assert_eq!(
            super::slowdown_note(Some(Duration::from_millis(400))),
            "  the API asked us to slow down: waiting 1 s"
        );
        assert_eq!(
            super::slowdown_note(Some(Duration::from_millis(2100))),
            "  the API asked us to slow down: waiting 3 s"
        );
    }
}
