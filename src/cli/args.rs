//! The command line as clap parses it (raw); [`super`] turns it into actions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::ids::ProjectId;

/// Declarative Platform.sh (Upsun) Bitbucket integrations: plan, apply, watch.
#[derive(Debug, Parser)]
#[command(
    name = "bbsync",
    version,
    about,
    long_about = "bbsync manages Platform.sh (Upsun) Bitbucket integrations declaratively. A manifest \
(integrations.yaml) says which Bitbucket repository each project mirrors and with which options; \
`bbsync plan` shows what would change against the live API, `bbsync apply` makes it so, and \
`bbsync watch` keeps it so.",
    propagate_version = true,
    after_long_help = AFTER_HELP
)]
pub(crate) struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Getting started:
  bbsync demo                           plan and apply an example against a built-in sandbox
  bbsync export --organization ORG > integrations.yaml
  bbsync validate && bbsync plan        offline checks, then what would change
  bbsync apply                          shows the plan, asks, applies

Environment:
  PLATFORMSH_CLI_TOKEN, UPSUN_CLI_TOKEN  the API token (the first one set)
  BBSYNC_API_URL, BBSYNC_AUTH_URL        the API and auth server (--api-url, --auth-url)
  PLATFORMSH_CLI_API_URL, ..._AUTH_URL   the official CLI's, read when bbsync's are unset
  UPSUN_CLI_API_URL, UPSUN_CLI_AUTH_URL  likewise, after the PLATFORMSH_CLI_ ones
  BBSYNC_LOG                             log filter, e.g. bbsync=debug
  BBSYNC_STATE_DIR                       watch: where the last valid manifest is kept (--state-dir)
  BBSYNC_CACHE_DIR                       where measured rate limits are kept (`off`: nowhere)
  NO_COLOR, CLICOLOR_FORCE               colors off / on
  Any variable the manifest names as ${NAME} (secrets are read only when an action sends them).

Exit codes:
  0   success; plan --detailed-exitcode: no changes
  1   error talking to the API, or an action failed
  2   plan --detailed-exitcode: changes pending
  3   blocked by a safety guard: stale plan file, --max-deletes exceeded, protected integration
  4   invalid manifest, or validate --online found an integration invalid
  64  command-line usage error

Manifest reference: integrations.yaml.example, `bbsync schema`, and the README.";

/// Options every command takes, before or after the subcommand.
#[derive(Debug, Args, Clone)]
pub(crate) struct Global {
    /// The Platform.sh API [default: `https://api.platform.sh`; also read from
    /// PLATFORMSH_CLI_API_URL or UPSUN_CLI_API_URL, as the official CLI names it].
    #[arg(long, global = true, value_name = "URL", env = "BBSYNC_API_URL")]
    pub api_url: Option<String>,
    /// The Platform.sh auth server, whose token URL is `{auth-url}/oauth2/token` [default:
    /// `https://auth.api.platform.sh`; also read from PLATFORMSH_CLI_AUTH_URL or
    /// UPSUN_CLI_AUTH_URL].
    #[arg(long, global = true, value_name = "URL", env = "BBSYNC_AUTH_URL")]
    pub auth_url: Option<String>,
    /// The Bitbucket Cloud API, for the pre-flight checks.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "BBSYNC_BITBUCKET_API_URL",
        default_value = "https://api.bitbucket.org"
    )]
    pub bitbucket_api_url: String,
    /// The Bitbucket Cloud OAuth server, whose token URL is
    /// `{bitbucket-auth-url}/site/oauth2/access_token`.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "BBSYNC_BITBUCKET_AUTH_URL",
        default_value = "https://bitbucket.org"
    )]
    pub bitbucket_auth_url: String,
    /// Do not check the Bitbucket side (the consumer or token, the repository, the webhook)
    /// before and after sending credentials: for a Bitbucket Server that Platform.sh can reach
    /// and this machine cannot. Plans say that the checks were skipped.
    #[arg(long, global = true, env = "BBSYNC_SKIP_BITBUCKET_CHECKS")]
    pub skip_bitbucket_checks: bool,
    /// How many API requests may be in flight at once.
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Time allowed for one API request, answer included.
    #[arg(long, global = true, value_parser = parse_timeout, default_value = "30s")]
    pub timeout: std::time::Duration,
    /// At most this many requests per second to each API host, 0.01 to 10000 (default, or 0: no
    /// cap). Under it bbsync adapts its rate to the API's 429s.
    #[arg(long, global = true, value_name = "N", value_parser = parse_max_rps)]
    pub max_rps: Option<f64>,
    /// The longest one request waits, in total, when the API answers 429 (rate-limited): past
    /// it the request fails and the project's live state is unknown.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pub max_throttle_wait: std::time::Duration,
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
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The manifest files to read.
#[derive(Debug, Args, Clone)]
pub(crate) struct ManifestArgs {
    /// A manifest file, or a directory of `*.yaml`/`*.yml` files (repeatable).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "PATH",
        default_value = "integrations.yaml"
    )]
    pub files: Vec<PathBuf>,
}

/// Plan output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people.
    Text,
    /// The versioned plan document (the plan-file format).
    Json,
    /// For a pull-request comment.
    Markdown,
}

/// Report output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// For people.
    Text,
    /// For machines.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check the manifest: syntax, schema, rules, environment variables; with --online also
    /// the token, the projects, their capabilities and the API's own validation.
    Validate {
        /// The manifest.
        #[command(flatten)]
        manifest: ManifestArgs,
        /// Also ask the API: the token works, each project exists and allows the integration
        /// type, and existing integrations pass the API's validation.
        #[arg(long)]
        online: bool,
        /// Output format: `json` prints every diagnostic (text shows the first
        /// 50) as one JSON document on stdout.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text, conflicts_with = "online")]
        format: ReportFormat,
    },
    /// Show what would change against the live API.
    Plan(PlanArgs),
    /// Make the live integrations match the manifest (or a saved plan).
    Apply(ApplyArgs),
    /// Keep the live integrations equal to the manifest: a daemon.
    Watch(Box<WatchArgs>),
    /// Print the live Bitbucket integrations as a manifest (to adopt existing integrations).
    Export(ExportArgs),
    /// Print a shell completion script: `bbsync completions bash > /etc/bash_completion.d/bbsync`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Render a saved plan (`plan --out PLANFILE`) again, in any format: a CI job can post one
    /// plan as a comment and keep it as a file. The live state is not read.
    Show(ShowArgs),
    /// Print the manifest's JSON Schema (`--plan`: the plan file's).
    Schema {
        /// Print the JSON Schema of plan files (`plan --format json`, `plan --out`) instead.
        #[arg(long)]
        plan: bool,
    },
    /// Run the built-in fake Platform.sh API, to try bbsync without an account.
    Sandbox(SandboxArgs),
    /// Plan and apply an example against an in-process sandbox: no token or network needed.
    Demo,
}

/// `bbsync show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The plan file, as `plan --out` wrote it.
    #[arg(value_name = "PLANFILE")]
    pub planfile: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// How Markdown is written.
    #[command(flatten)]
    pub markdown: MarkdownArgs,
}

/// `--markdown-limit` and `--markdown-flavor`, for `plan` and `show`.
#[derive(Debug, Args)]
pub(crate) struct MarkdownArgs {
    /// With `--format markdown`: shorten the output to at most this many characters, so that it
    /// can be posted as a pull-request comment (GitHub refuses more than 65,536). 0: no limit.
    #[arg(long, value_name = "CHARS", default_value_t = crate::render::MARKDOWN_LIMIT, value_parser = parse_markdown_limit)]
    pub markdown_limit: usize,
    /// With `--format markdown`: `bitbucket` (the default) is CommonMark that Bitbucket Cloud
    /// and Data Center render in pull-request comments; `github` adds GitHub's alerts and
    /// collapsible details.
    #[arg(long, value_enum, value_name = "FLAVOR", default_value_t = crate::render::Flavor::Bitbucket)]
    pub markdown_flavor: crate::render::Flavor,
}

impl MarkdownArgs {
    /// The limit to render within, less `reserved` characters kept for a header; `None` for
    /// no limit (`--markdown-limit 0`).
    pub(crate) fn limit(&self, reserved: usize) -> Option<usize> {
        (self.markdown_limit > 0).then(|| self.markdown_limit.saturating_sub(reserved))
    }
}

/// `bbsync plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// The manifest.
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// How Markdown is written (also for `--pr-comment`).
    #[command(flatten)]
    pub markdown: MarkdownArgs,
    /// Also post the plan (Markdown) to the pull request that Bitbucket Pipelines names
    /// (`BITBUCKET_WORKSPACE`, `BITBUCKET_REPO_SLUG`, `BITBUCKET_PR_ID`), with
    /// `BBSYNC_BITBUCKET_TOKEN` (a repository or workspace access token), at
    /// `--bitbucket-api-url`; later runs update the same comment.
    #[arg(long)]
    pub pr_comment: bool,
    /// Also write the plan (JSON, no secret values) to this file, for `bbsync apply PLANFILE`.
    #[arg(long, value_name = "PLANFILE")]
    pub out: Option<PathBuf>,
    /// Exit 2 when there are changes, 0 when there are none (1 on errors).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Only this project (repeatable): a partial plan.
    #[arg(long = "project", value_name = "ID")]
    pub projects: Vec<ProjectId>,
    /// Plan sending the current credentials to every existing managed integration.
    #[arg(long)]
    pub rotate_credentials: bool,
}

/// `bbsync apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// A plan saved by `bbsync plan --out`: apply exactly that (refused if stale).
    #[arg(value_name = "PLANFILE", conflicts_with_all = ["projects", "rotate_credentials", "auto_approve"])]
    pub plan_file: Option<PathBuf>,
    /// The manifest.
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Apply without asking (required without a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Only this project (repeatable).
    #[arg(long = "project", value_name = "ID")]
    pub projects: Vec<ProjectId>,
    /// Do not wait for the activities each write starts.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest wait for a write's activities; one still unfinished then fails its action.
    #[arg(long, value_parser = parse_activity_timeout, default_value = "10m", conflicts_with = "no_wait")]
    pub activity_timeout: std::time::Duration,
    /// Send the current credentials to every existing managed integration.
    #[arg(long)]
    pub rotate_credentials: bool,
    /// Stop before writing anything if more integrations would be deleted (replaces count).
    /// Default: no limit for `absent`, 10 when the plan prunes.
    #[arg(long, value_name = "N")]
    pub max_deletes: Option<usize>,
    /// Stop before writing anything if Platform.sh would delete more environments than this at
    /// the first fetch a write causes (or if which is unknown).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_environment_deletes: usize,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// `bbsync export`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["projects", "organization"]))]
pub(crate) struct ExportArgs {
    /// Export this project (repeatable).
    #[arg(long = "project", value_name = "ID")]
    pub projects: Vec<ProjectId>,
    /// Export every project of this organization.
    #[arg(long, value_name = "ORG")]
    pub organization: Option<crate::model::ids::OrganizationId>,
    /// Also write options equal to their defaults, and options bbsync does not manage.
    #[arg(long)]
    pub full: bool,
    /// Write the manifest to this file instead of stdout (refused if it exists, unless
    /// `--force`).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// With `-o`: overwrite the file if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}

/// `bbsync watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The manifest.
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Time between full resyncs (jittered by 10%): `30s`, `5m`, `1h`.
    #[arg(long, value_parser = parse_interval, default_value = "5m")]
    pub interval: std::time::Duration,
    /// Serve /healthz, /readyz, /metrics and /status here (`--listen` alone: 127.0.0.1:9464;
    /// `:9464`: loopback on that port).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9464", value_parser = parse_listen)]
    pub listen: Option<std::net::SocketAddr>,
    /// Detect and report drift; never write.
    #[arg(long)]
    pub plan_only: bool,
    /// Block a run that would delete more integrations than this (replaces count).
    #[arg(long, value_name = "N")]
    pub max_deletes: Option<usize>,
    /// Block a run if Platform.sh would delete more environments than this at the first fetch
    /// a write causes (or if which is unknown).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_environment_deletes: usize,
    /// Do not wait for the activities each write starts.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest wait for a write's activities; one still unfinished then fails its action.
    #[arg(long, value_parser = parse_activity_timeout, default_value = "10m", conflicts_with = "no_wait")]
    pub activity_timeout: std::time::Duration,
    /// Quiet time that ends a burst of manifest changes.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub debounce: std::time::Duration,
    /// A changed manifest is acted on only once it has stayed the same this long (a half-written
    /// file is never planned); a change that drops projects is held this long again before
    /// its deletes, then confirmed from disk.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub settle: std::time::Duration,
    /// Keep the last valid manifest in this directory, so that a restart while the manifest on
    /// disk is invalid still enforces it (env BBSYNC_STATE_DIR).
    #[arg(long, value_name = "DIR", env = "BBSYNC_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Follow this git repository with the daemon's own checkout, instead of watching files:
    /// `-f` paths are then relative to its root (env BBSYNC_GIT_URL). An HTTPS token comes
    /// from BBSYNC_GIT_TOKEN (else BBSYNC_BITBUCKET_TOKEN), never from the URL.
    #[arg(
        long,
        value_name = "URL",
        env = "BBSYNC_GIT_URL",
        help_heading = "Git source"
    )]
    pub git_url: Option<String>,
    /// The branch or tag to follow (default: the repository's default branch).
    #[arg(
        long,
        value_name = "REF",
        requires = "git_url",
        help_heading = "Git source"
    )]
    pub git_ref: Option<String>,
    /// Time between fetches (a webhook delivery fetches at once).
    #[arg(long, value_parser = parse_interval, default_value = "1m", help_heading = "Git source")]
    pub git_interval: std::time::Duration,
    /// The SSH private key for an `ssh://` or `git@host:path` URL (env BBSYNC_GIT_SSH_KEY).
    #[arg(
        long,
        value_name = "FILE",
        env = "BBSYNC_GIT_SSH_KEY",
        requires = "git_url",
        help_heading = "Git source"
    )]
    pub git_ssh_key: Option<PathBuf>,
    /// The `known_hosts` file the SSH server's key must be in (env BBSYNC_GIT_KNOWN_HOSTS;
    /// default: ssh's own). Host keys are always checked.
    #[arg(
        long,
        value_name = "FILE",
        env = "BBSYNC_GIT_KNOWN_HOSTS",
        requires = "git_url",
        help_heading = "Git source"
    )]
    pub git_known_hosts: Option<PathBuf>,
    /// With BBSYNC_BITBUCKET_TOKEN, post each run as a commit status in this Bitbucket Cloud
    /// repository (default: the one `--git-url` names on bitbucket.org).
    #[arg(long, value_name = "WORKSPACE/SLUG", requires = "git_url", value_parser = parse_repository, help_heading = "Git source")]
    pub commit_status_repo: Option<(String, String)>,
    /// Where the commit statuses link to (this daemon's `/status` behind a proxy, a dashboard).
    #[arg(
        long,
        value_name = "URL",
        requires = "git_url",
        help_heading = "Git source"
    )]
    pub public_url: Option<url::Url>,
    /// Serve `POST /hooks/bitbucket` here, and nothing else: a signed push fetches and runs at
    /// once. Needs BBSYNC_WEBHOOK_SECRET. Apart from `--listen`, so that `/metrics` and
    /// `/status` never face the Internet (`:9465`: loopback; `0.0.0.0:9465` behind an Ingress).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, requires = "git_url", help_heading = "Git source")]
    pub webhook_listen: Option<std::net::SocketAddr>,
}

/// `WORKSPACE/SLUG`.
pub(crate) fn parse_repository(text: &str) -> Result<(String, String), String> {
    use crate::watch::git::is_name;
    match text.split_once('/') {
        Some((workspace, slug)) if is_name(workspace) && is_name(slug) => {
            Ok((workspace.to_owned(), slug.to_owned()))
        }
        _ => Err(format!(
            "`{text}` is not WORKSPACE/SLUG (e.g. `acme/infra`)"
        )),
    }
}

/// `127.0.0.1:9464`, `[::1]:9464`, or `:9464` (loopback).
pub(crate) fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    let full = if text.starts_with(':') {
        format!("127.0.0.1{text}")
    } else {
        text.to_owned()
    };
    full.parse()
        .map_err(|_| format!("`{text}` is not an address (try `127.0.0.1:9464` or `:9464`)"))
}

/// `0` (no limit) or at least 1,000 characters: the summary, the alerts and the note about what
/// was left out always take up to about 750.
pub(crate) fn parse_markdown_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(limit) if limit == 0 || limit >= 1000 => Ok(limit),
        Ok(_) => Err("must be 0 (no limit) or at least 1000 characters".to_owned()),
        Err(_) => Err(format!("`{text}` is not a number of characters")),
    }
}

/// `bbsync sandbox`.
#[derive(Debug, Args)]
pub(crate) struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: std::net::SocketAddr,
    /// Initial state: projects, organizations, integrations (JSON or YAML).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// The API token to accept (overrides the seed's).
    #[arg(long)]
    pub token: Option<String>,
    /// Latency added to every API request (`50ms`, `1s`).
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    pub latency: std::time::Duration,
    /// Fraction of API requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Fraction of API requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// `Retry-After` of those 429s, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub retry_after: f64,
    /// A token bucket over every API request: at most this many per second on average, those
    /// over it answered 429 with `Retry-After` (whole seconds, at least 1).
    #[arg(long, value_name = "RPS")]
    pub rate_limit: Option<f64>,
    /// What that bucket holds: requests allowed at once after a quiet spell.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,
    /// Fraction of creates carried out whose answer is lost (connection dropped).
    #[arg(long, default_value_t = 0.0)]
    pub drop_post_rate: f64,
    /// Fraction of writes answered only after `--slow-by`.
    #[arg(long, default_value_t = 0.0)]
    pub slow_rate: f64,
    /// How late a slow answer is.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub slow_by: std::time::Duration,
    /// Seed of the fault generator.
    #[arg(long, default_value_t = 1)]
    pub fault_seed: u64,
    /// Access token lifetime.
    #[arg(long, value_parser = parse_duration, default_value = "15m")]
    pub token_lifetime: std::time::Duration,
    /// Time activities take to complete.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub activity_delay: std::time::Duration,
    /// Projects per page of organization listings.
    #[arg(long, default_value_t = 20)]
    pub page_size: usize,
}

/// The longest duration any flag takes: a week. Longer is a typo, and would overflow the
/// arithmetic of deadlines (`Instant + Duration`).
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// `--timeout`: a duration from 1ms to a week (0 would fail every request).
pub(crate) fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration(text)? {
        std::time::Duration::ZERO => {
            Err("must be more than 0 (a zero timeout fails every request)".to_owned())
        }
        timeout => Ok(timeout),
    }
}

/// `--activity-timeout`: a duration from 1ms to a week (0 would fail every write that starts
/// an activity; `--no-wait` is how not to wait).
pub(crate) fn parse_activity_timeout(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration(text)? {
        std::time::Duration::ZERO => {
            Err("must be more than 0 (to not wait at all, use `--no-wait`)".to_owned())
        }
        timeout => Ok(timeout),
    }
}

/// The shortest `--interval`: a shorter one re-reads every project without pause, a few
/// thousand API requests a second for a large organization (DESIGN §4).
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// `--interval`: at least [`MIN_INTERVAL`].
pub(crate) fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration(text)? {
        interval if interval < MIN_INTERVAL => Err(
            "must be at least 10s (a shorter interval re-reads every project without pause); file changes and SIGHUP start a run at once"
                .to_owned(),
        ),
        interval => Ok(interval),
    }
}

/// `--max-rps`: 0 (no cap), or 0.01 to 10000 requests per second.
pub(crate) fn parse_max_rps(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rps) if rps == 0.0 || (0.01..=10_000.0).contains(&rps) => Ok(rps),
        Ok(_) => Err("must be 0 (no cap) or from 0.01 to 10000 requests per second".to_owned()),
        Err(_) => Err(format!("`{text}` is not a number of requests per second")),
    }
}

/// Parses `250ms`, `2s`, `5m`, `1h`, at most a week. A bare number is refused: `5` could be
/// meant as seconds or minutes (DESIGN §4).
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => {
            return Err(format!(
                "`{text}` has no unit: write `{text}s`, `{text}m` or `{text}ms`"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try `500ms`, `30s`, `5m`)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ));
        }
    };
    if seconds.is_finite() && seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!("`{text}` is longer than the limit, a week (168h)"));
    }
    std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("`{text}` is not a valid duration"))
}
