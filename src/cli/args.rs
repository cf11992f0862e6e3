//! The command line as clap parses it (raw); [`super`] turns it into actions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative Platform.sh (Upsun) Bitbucket integrations: plan, apply, watch.
#[derive(Debug, Parser)]
#[command(name = "bbsync", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the subcommand.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The Platform.sh API.
    #[arg(
        long,
        global = true,
        env = "BBSYNC_API_URL",
        default_value = "https://api.platform.sh"
    )]
    pub api_url: String,
    /// The Platform.sh auth server (the token URL is `{auth-url}/oauth2/token`).
    #[arg(
        long,
        global = true,
        env = "BBSYNC_AUTH_URL",
        default_value = "https://auth.api.platform.sh"
    )]
    pub auth_url: String,
    /// How many API requests may be in flight at once.
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The manifest files to read.
#[derive(Debug, Args, Clone)]
pub struct ManifestArgs {
    /// A manifest file, or a directory of `*.yaml`/`*.yml` files (repeatable).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "PATH",
        default_value = "integrations.yaml"
    )]
    pub files: Vec<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the manifest offline: syntax, schema, rules, environment variables.
    Validate {
        /// The manifest.
        #[command(flatten)]
        manifest: ManifestArgs,
    },
    /// Print the manifest's JSON Schema.
    Schema,
}
