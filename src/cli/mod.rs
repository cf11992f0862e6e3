//! Thin glue: parse arguments, resolve the settings, call the layers, print, and map outcomes
//! to exit codes.

mod args;
mod demo;
mod error;
mod exit;
mod export;
pub(crate) mod output;
mod sandbox;
mod settings;
mod sync;
mod watch;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser as _;

pub(crate) use args::{Cli, Command, LogFormat, ManifestArgs};
pub(crate) use error::Error;
pub(crate) use exit::Exit;
pub(crate) use settings::Settings;

use crate::manifest::diagnostic::Diagnostic;
use crate::model::{self, DesiredState, Env, Target};

/// The command line's clap definition, for tests that check command lines written elsewhere
/// (the CI examples) against it.
#[doc(hidden)]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

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
    let settings = Settings::from_process(&cli.global, matches!(cli.command, Command::Watch(_)));
    output::install(&settings.env);
    init_logging(&settings);
    match run(cli, &settings) {
        Ok(exit) => exit.into(),
        // `bbsync plan | head`: the reader has all it wanted.
        Err(error) if error.is_broken_pipe() => Exit::Ok.into(),
        Err(error) => {
            if settings.log_format == LogFormat::Json {
                print_error_json(&error);
            } else {
                print_error(&error);
            }
            error.exit().into()
        }
    }
}

/// Prints an error as one JSON log line (`--log-format json`: every line on stderr is JSON).
fn print_error_json(error: &Error) {
    let line = serde_json::json!({
        "level": "ERROR",
        "message": error.to_string(),
        "exit_code": error.exit() as u8,
        "details": error::render(error),
    });
    let _ = writeln!(output::stderr(), "{line}");
}

fn run(cli: Cli, settings: &Settings) -> Result<Exit, Error> {
    match cli.command {
        Command::Validate {
            manifest,
            format: args::ReportFormat::Json,
            ..
        } => validate_json(&manifest, &settings.env),
        Command::Validate {
            manifest, online, ..
        } => {
            let exit = validate(&manifest, &settings.env)?;
            if online && exit == Exit::Ok {
                runtime()?.block_on(export::validate_online(settings, &manifest))
            } else {
                Ok(exit)
            }
        }
        Command::Export(args) => runtime()?.block_on(export::run(settings, &args)),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "bbsync", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        Command::Schema { plan } => {
            let text = if plan {
                crate::plan::schema::schema_text()
            } else {
                crate::manifest::schema_text()
            };
            output::stdout().write_all(text.as_bytes())?;
            Ok(Exit::Ok)
        }
        Command::Show(args) => sync::show_command(settings, &args),
        Command::Plan(args) => runtime()?.block_on(sync::plan_command(settings, &args)),
        Command::Apply(args) => runtime()?.block_on(sync::apply_command(settings, &args)),
        Command::Sandbox(args) => runtime()?.block_on(sandbox::run(&args)),
        Command::Demo => runtime()?.block_on(demo::run(settings)),
        Command::Watch(args) => runtime()?.block_on(watch::run(settings, &args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::setup("cannot start the async runtime", e))
}

/// Prints an error: `error:`, `Caused by:` and `hint:` lines.
pub(crate) fn print_error(error: &Error) {
    let _ = output::stderr().write_all(error::render(error).as_bytes());
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("bbsync=warn,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(output::log)
        .with_target(false);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(stderr_color()).compact().try_init(),
    };
}

/// Whether stderr takes ANSI colors (NO_COLOR, CLICOLOR_FORCE and the terminal decide).
pub(crate) fn stderr_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// Whether stdout takes ANSI colors.
pub(crate) fn stdout_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// How many diagnostics text output shows; `validate --format json` lists them all.
pub(crate) const SHOWN_DIAGNOSTICS: usize = 50;

/// Prints diagnostics to stderr: the first [`SHOWN_DIAGNOSTICS`], then how many more there are.
pub(crate) fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let color = stderr_color();
    let mut err = output::stderr();
    for diagnostic in diagnostics.iter().take(SHOWN_DIAGNOSTICS) {
        let _ = err.write_all(diagnostic.render(color).as_bytes());
    }
    if let Some(more) = more_diagnostics(diagnostics) {
        let _ = writeln!(err, "{more}");
    }
}

/// The line that stands for the diagnostics past the first [`SHOWN_DIAGNOSTICS`], if any.
fn more_diagnostics(diagnostics: &[Diagnostic]) -> Option<String> {
    let rest = diagnostics
        .get(SHOWN_DIAGNOSTICS..)
        .filter(|r| !r.is_empty())?;
    let errors = rest.iter().filter(|d| d.is_error()).count();
    let warnings = rest.len() - errors;
    let plural = |n: usize, one: &str| {
        let s = if n == 1 { "" } else { "s" };
        format!("{} more {one}{s}", thousands(n))
    };
    let what = match (errors, warnings) {
        (0, w) => plural(w, "warning"),
        (e, 0) => plural(e, "error"),
        (e, w) => format!("{} and {}", plural(e, "error"), plural(w, "warning")),
    };
    Some(format!(
        "... and {what}; `bbsync validate --format json` lists them all"
    ))
}

/// `19950` as `19,950`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Reads, parses and validates the manifest. An invalid one has its diagnostics printed here
/// and becomes [`Error::InvalidManifest`]; a valid one comes with its warnings.
pub(crate) fn load(files: &[PathBuf], env: &Env) -> Result<(DesiredState, Vec<Diagnostic>), Error> {
    crate::reconcile::load::load(files, env).map_err(|diagnostics| {
        print_diagnostics(&diagnostics);
        Error::InvalidManifest {
            errors: diagnostics.iter().filter(|d| d.is_error()).count(),
        }
    })
}

/// `bbsync validate --format json`: every diagnostic, errors and warnings, as one JSON document
/// on stdout; exit 4 when the manifest is invalid.
fn validate_json(manifest: &ManifestArgs, env: &Env) -> Result<Exit, Error> {
    let (valid, diagnostics, projects) = match crate::reconcile::load::load(&manifest.files, env) {
        Ok((state, warnings)) => (true, warnings, Some(state.projects.len())),
        Err(diagnostics) => (false, diagnostics, None),
    };
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let document = serde_json::json!({
        "valid": valid,
        "projects": projects,
        "errors": errors,
        "warnings": diagnostics.len() - errors,
        "diagnostics": diagnostics.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
    });
    // One write, so that redaction sees every value whole.
    let text = serde_json::to_string_pretty(&document).map_err(std::io::Error::from)?;
    writeln!(output::stdout(), "{text}")?;
    Ok(if valid { Exit::Ok } else { Exit::Invalid })
}

fn validate(manifest: &ManifestArgs, env: &Env) -> Result<Exit, Error> {
    let (state, warnings) = load(&manifest.files, env)?;
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
        output::stdout(),
        "{total} project{}, {} bitbucket, {} bitbucket_server, {} absent: valid{warned}",
        if total == 1 { "" } else { "s" },
        counts[0],
        counts[1],
        counts[2],
    )?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diagnostics_past_the_first_50_are_counted() {
        let error = Diagnostic::error(None, "e");
        let warning = Diagnostic::warning(None, "w");
        let mut all = vec![error.clone(); SHOWN_DIAGNOSTICS];
        assert_eq!(more_diagnostics(&all), None);
        all.push(warning.clone());
        assert_eq!(
            more_diagnostics(&all).as_deref(),
            Some("... and 1 more warning; `bbsync validate --format json` lists them all")
        );
        all.extend(std::iter::repeat_n(error, 1_234));
        assert_eq!(
            more_diagnostics(&all).as_deref(),
            Some(
                "... and 1,234 more errors and 1 more warning; `bbsync validate --format json` lists them all"
            )
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(19_950), "19,950");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
