//! Thin glue: parse arguments, call the layers, print, and map outcomes to exit codes.

mod args;
mod demo;
mod exit;
mod export;
mod sandbox;
mod sync;
mod watch;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser as _;

pub use args::{Cli, Command, Global, LogFormat, ManifestArgs, parse_duration};
pub use exit::Exit;

use crate::manifest::diagnostic::Diagnostic;
use crate::model::{self, DesiredState, Target};

/// Runs bbsync with the process's arguments and environment.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Exit::Ok.into()
                }
                _ => Exit::Usage.into(),
            };
        }
    };
    init_logging(&cli.global, matches!(cli.command, Command::Watch(_)));
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(error) => {
            print_error(&error);
            Exit::Failed.into()
        }
    }
}

fn run(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Validate { manifest, online } => {
            let exit = validate(&manifest)?;
            if online && exit == Exit::Ok {
                runtime()?.block_on(export::validate_online(&cli.global, &manifest))
            } else {
                Ok(exit)
            }
        }
        Command::Export(args) => runtime()?.block_on(export::run(&cli.global, &args)),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "bbsync", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        Command::Schema => {
            anstream::stdout().write_all(crate::manifest::schema_text().as_bytes())?;
            Ok(Exit::Ok)
        }
        Command::Plan(args) => runtime()?.block_on(sync::plan_command(&cli.global, &args)),
        Command::Apply(args) => runtime()?.block_on(sync::apply_command(&cli.global, &args)),
        Command::Sandbox(args) => runtime()?.block_on(sandbox::run(&args)),
        Command::Demo => runtime()?.block_on(demo::run(&cli.global)),
        Command::Watch(args) => runtime()?.block_on(watch::run(&cli.global, &args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Prints an error and its causes: `error:` then `Caused by:` lines.
pub fn print_error(error: &anyhow::Error) {
    let mut text = format!("error: {error}\n");
    let causes: Vec<String> = error.chain().skip(1).map(ToString::to_string).collect();
    if !causes.is_empty() {
        text.push_str("\nCaused by:\n");
        for cause in causes {
            text.push_str(&format!("  {cause}\n"));
        }
    }
    let _ = anstream::stderr().write_all(text.as_bytes());
}

fn init_logging(global: &Global, daemon: bool) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        // A daemon's one line per run and per action are its output.
        (false, 0) if daemon => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BBSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("bbsync={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match global.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(stderr_color()).compact().try_init(),
    };
}

/// Whether stderr takes ANSI colors (NO_COLOR, CLICOLOR_FORCE and the terminal decide).
pub fn stderr_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// Whether stdout takes ANSI colors.
pub fn stdout_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Prints diagnostics to stderr.
pub fn print_diagnostics<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) {
    let color = stderr_color();
    let mut err = anstream::stderr();
    for diagnostic in diagnostics {
        let _ = err.write_all(diagnostic.render(color).as_bytes());
    }
}

/// Reads, parses and validates the manifest. Errors (with the warnings) are printed here; the
/// caller gets the state and the warnings, or the exit code to stop with.
pub fn load(files: &[PathBuf]) -> Result<(DesiredState, Vec<Diagnostic>), Exit> {
    let env = |name: &str| std::env::var(name).ok();
    crate::reconcile::load::load(files, &env).map_err(|diagnostics| {
        report_invalid(&diagnostics);
        Exit::Invalid
    })
}

fn report_invalid(diagnostics: &[Diagnostic]) {
    print_diagnostics(diagnostics);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let _ = writeln!(
        anstream::stderr(),
        "error: the manifest is invalid ({errors} error{}); nothing was sent to the API",
        if errors == 1 { "" } else { "s" }
    );
}

fn validate(manifest: &ManifestArgs) -> Result<Exit> {
    let (state, warnings) = match load(&manifest.files) {
        Ok(loaded) => loaded,
        Err(exit) => return Ok(exit),
    };
    print_diagnostics(&warnings);
    let mut counts = [0usize; 3];
    for project in state.projects.values() {
        let index = match &project.target {
            Target::Present(i) if i.kind == model::IntegrationType::Bitbucket => 0,
            Target::Present(_) => 1,
            Target::Absent => 2,
        };
        counts[index] += 1;
    }
    let total = state.projects.len();
    let warned = if warnings.is_empty() {
        String::new()
    } else {
        format!(
            " ({} warning{})",
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        )
    };
    writeln!(
        anstream::stdout(),
        "{total} project{}, {} bitbucket, {} bitbucket_server, {} absent: valid{warned}",
        if total == 1 { "" } else { "s" },
        counts[0],
        counts[1],
        counts[2],
    )?;
    Ok(Exit::Ok)
}
