//! Flags and environment resolved once into the [`Settings`] every command takes, as ripgrep
//! turns `LowArgs` into `HiArgs` and uv resolves its `GlobalSettings`.
//!
//! This is the only module that reads the process environment (`std::env`): the manifest's
//! `${NAME}` values, the API token and the log filter all come from the one [`Env`] snapshot
//! taken here. Clap reads the variables its flags name (`BBSYNC_API_URL`, ...) while parsing.

use std::path::PathBuf;
use std::time::Duration;

use super::args::{Global, LogFormat};
use super::error::Error;
use crate::live::{BitbucketClient, BitbucketConfig, Client, ClientConfig};
use crate::model::Env;
use crate::model::secret::Secret;

/// The variables that hold the Platform.sh API token, in the order they are tried.
pub(crate) const TOKEN_VARIABLES: [&str; 2] = ["PLATFORMSH_CLI_TOKEN", "UPSUN_CLI_TOKEN"];

/// The API URL when neither `--api-url` nor `BBSYNC_API_URL` is set and no fallback variable is.
pub(crate) const DEFAULT_API_URL: &str = "https://api.platform.sh";

/// The auth server when neither `--auth-url` nor `BBSYNC_AUTH_URL` is set and no fallback is.
pub(crate) const DEFAULT_AUTH_URL: &str = "https://auth.api.platform.sh";

/// The official CLI's variables for the API URL, tried in this order after `--api-url` and
/// `BBSYNC_API_URL`. legacy-cli `Config::applyEnvironmentOverrides` maps `{PREFIX}API_URL` to
/// `api.base_url`, as does its generic `{PREFIX}SECTION_KEY` rule (`{PREFIX}API_BASE_URL`),
/// applied before it; the prefix is `PLATFORMSH_CLI_` for `platform` (legacy-cli `config.yaml`)
/// and `UPSUN_CLI_` for `upsun` (upsun/cli `internal/config/upsun-cli.yaml`). The
/// `PLATFORMSH_CLI_` ones come first, as the token's do ([`TOKEN_VARIABLES`]).
pub(crate) const API_URL_VARIABLES: [&str; 4] = [
    "PLATFORMSH_CLI_API_URL",
    "PLATFORMSH_CLI_API_BASE_URL",
    "UPSUN_CLI_API_URL",
    "UPSUN_CLI_API_BASE_URL",
];

/// The official CLI's variables for the auth server, likewise: `{PREFIX}AUTH_URL` and the
/// generic `{PREFIX}API_AUTH_URL`, both `api.auth_url` (legacy-cli
/// `Config::applyEnvironmentOverrides`), from which the CLI derives the token URL
/// `/oauth2/token` (`Config::applyUrlDefaults`), as bbsync does.
pub(crate) const AUTH_URL_VARIABLES: [&str; 4] = [
    "PLATFORMSH_CLI_AUTH_URL",
    "PLATFORMSH_CLI_API_AUTH_URL",
    "UPSUN_CLI_AUTH_URL",
    "UPSUN_CLI_API_AUTH_URL",
];

/// The first of: the flag (or bbsync's own variable, which clap read into it), the official
/// CLI's `fallbacks` in order, `default`. Blank values count as unset.
fn url_setting(given: Option<&str>, env: &Env, fallbacks: &[&str], default: &str) -> String {
    given
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .or_else(|| fallbacks.iter().find_map(|name| env.non_blank(name)))
        .unwrap_or(default)
        .to_owned()
}

/// Everything a command needs to know about how it was asked to run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How to reach the Platform.sh API.
    pub api: ApiSettings,
    /// The environment the manifest's `${NAME}` references are resolved from.
    pub env: Env,
    /// Only errors on stderr (`-q`).
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// How log lines look.
    pub log_format: LogFormat,
    /// The tracing filter: `BBSYNC_LOG`, or one made from `-v`/`-q`.
    pub log_filter: String,
}

/// How to reach the Platform.sh API.
#[derive(Debug, Clone)]
pub(crate) struct ApiSettings {
    /// `--api-url`.
    pub api_url: String,
    /// `--auth-url`.
    pub auth_url: String,
    /// The API token, when one is set.
    pub token: Option<Secret>,
    /// `--concurrency`.
    pub concurrency: usize,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--max-rps`, when it caps anything.
    pub max_rps: Option<f64>,
    /// `--max-throttle-wait`.
    pub max_throttle_wait: Duration,
    /// `--bitbucket-api-url`.
    pub bitbucket_api_url: String,
    /// `--bitbucket-auth-url`.
    pub bitbucket_auth_url: String,
    /// `--skip-bitbucket-checks`.
    pub skip_bitbucket_checks: bool,
    /// The rate cache's directory, unless it is off ([`rate_cache_dir`]).
    pub rate_cache: Option<PathBuf>,
}

/// The rate cache's directory (`src/live/rate_cache.rs`): `BBSYNC_CACHE_DIR` (`off` turns the
/// cache off), else `$XDG_CACHE_HOME/bbsync`, else `$HOME/.cache/bbsync`, as the XDG Base
/// Directory specification places a cache (which also says a relative `XDG_CACHE_HOME` is
/// ignored); `None` when none applies.
pub(crate) fn rate_cache_dir(env: &Env) -> Option<PathBuf> {
    if let Some(dir) = env.non_blank("BBSYNC_CACHE_DIR") {
        return (dir != "off").then(|| PathBuf::from(dir));
    }
    if let Some(xdg) = env
        .non_blank("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
    {
        return Some(xdg.join("bbsync"));
    }
    env.non_blank("HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .map(|home| home.join(".cache").join("bbsync"))
}

impl Settings {
    /// Settings from `global` and the process environment.
    pub(crate) fn from_process(global: &Global, daemon: bool) -> Self {
        // Variables that are not valid Unicode cannot be named by `${NAME}`; they are skipped.
        let env = Env::new(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }));
        Self::resolve(global, env, daemon)
    }

    /// Settings from `global` and `env`; `daemon` logs at info by default.
    pub(crate) fn resolve(global: &Global, env: Env, daemon: bool) -> Self {
        let token = TOKEN_VARIABLES
            .into_iter()
            .find_map(|name| env.non_blank(name))
            .map(|token| Secret::new(token.to_owned()));
        let level = match (global.quiet, global.verbose) {
            (true, _) => "error",
            // A daemon's one line per run and per action are its output.
            (false, 0) if daemon => "info",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            (false, _) => "trace",
        };
        let log_filter = env
            .non_blank("BBSYNC_LOG")
            .map_or_else(|| format!("bbsync={level},warn"), str::to_owned);
        Self {
            api: ApiSettings {
                api_url: url_setting(
                    global.api_url.as_deref(),
                    &env,
                    &API_URL_VARIABLES,
                    DEFAULT_API_URL,
                ),
                auth_url: url_setting(
                    global.auth_url.as_deref(),
                    &env,
                    &AUTH_URL_VARIABLES,
                    DEFAULT_AUTH_URL,
                ),
                token,
                concurrency: usize::from(global.concurrency),
                timeout: global.timeout,
                max_rps: global.max_rps.filter(|r| *r > 0.0),
                max_throttle_wait: global.max_throttle_wait,
                bitbucket_api_url: global.bitbucket_api_url.clone(),
                bitbucket_auth_url: global.bitbucket_auth_url.clone(),
                skip_bitbucket_checks: global.skip_bitbucket_checks,
                rate_cache: rate_cache_dir(&env),
            },
            env,
            quiet: global.quiet,
            verbose: global.verbose,
            log_format: global.log_format,
            log_filter,
        }
    }

    /// The process's one API client (one token exchange, shared limits).
    pub(crate) fn client(&self) -> Result<Client, Error> {
        let token = self.api.token.clone().ok_or(Error::NoToken)?;
        let mut config = ClientConfig::new(&self.api.api_url, &self.api.auth_url, token);
        config.concurrency = self.api.concurrency;
        config.max_rps = self.api.max_rps;
        config.max_throttle_wait = self.api.max_throttle_wait;
        config.rate_cache = self.api.rate_cache.clone();
        config.timeout = self.api.timeout;
        Ok(Client::new(config)?)
    }

    /// The process's one Bitbucket client, for the pre-flight checks (its cache lasts the run),
    /// sharing `client`'s throttle: one throttle for every request of the process.
    pub(crate) fn bitbucket(&self, client: &Client) -> Result<BitbucketClient, Error> {
        let mut config =
            BitbucketConfig::new(&self.api.bitbucket_api_url, &self.api.bitbucket_auth_url);
        config.timeout = self.api.timeout;
        config.throttle = Some(client.throttle().clone());
        Ok(BitbucketClient::new(config)?)
    }

    /// The reconcile pass, with both clients.
    pub(crate) fn reconciler(&self) -> Result<crate::reconcile::Reconciler, Error> {
        let client = self.client()?;
        let bitbucket = self.bitbucket(&client)?;
        let reconciler = crate::reconcile::Reconciler::new(client, self.env.clone());
        Ok(if self.api.skip_bitbucket_checks {
            reconciler.skipping_bitbucket_checks()
        } else {
            reconciler.with_bitbucket(bitbucket)
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::Cli;

    fn settings(args: &[&str], env: &[(&str, &str)]) -> Settings {
        let cli = Cli::try_parse_from(args).expect("valid arguments");
        Settings::resolve(&cli.global, Env::new(env.iter().copied()), false)
    }

    #[test]
    fn the_rate_cache_is_placed_as_the_xdg_specification_says() {
        let dir = |env: &[(&str, &str)]| settings(&["bbsync", "schema"], env).api.rate_cache;
        assert_eq!(
            dir(&[("HOME", "/home/u")]),
            Some(PathBuf::from("/home/u/.cache/bbsync"))
        );
        assert_eq!(
            dir(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/var/cache/u")]),
            Some(PathBuf::from("/var/cache/u/bbsync"))
        );
        // A relative XDG_CACHE_HOME is ignored.
        assert_eq!(
            dir(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "cache")]),
            Some(PathBuf::from("/home/u/.cache/bbsync"))
        );
        assert_eq!(
            dir(&[("BBSYNC_CACHE_DIR", "/tmp/c"), ("XDG_CACHE_HOME", "/x")]),
            Some(PathBuf::from("/tmp/c"))
        );
        assert_eq!(
            dir(&[("BBSYNC_CACHE_DIR", "off"), ("HOME", "/home/u")]),
            None
        );
        assert_eq!(dir(&[]), None);
    }

    #[test]
    fn the_token_comes_from_the_first_variable_set() {
        let both = settings(
            &["bbsync", "schema"],
            &[("PLATFORMSH_CLI_TOKEN", " a "), ("UPSUN_CLI_TOKEN", "b")],
        );
        assert_eq!(both.api.token.as_ref().map(Secret::expose), Some("a"));
        let blank = settings(
            &["bbsync", "schema"],
            &[("PLATFORMSH_CLI_TOKEN", " "), ("UPSUN_CLI_TOKEN", "b")],
        );
        assert_eq!(blank.api.token.as_ref().map(Secret::expose), Some("b"));
        assert!(settings(&["bbsync", "schema"], &[]).client().is_err());
    }

    #[test]
    fn the_official_clis_url_variables_are_fallbacks() {
        let none = settings(&["bbsync", "schema"], &[]);
        assert_eq!(
            (none.api.api_url.as_str(), none.api.auth_url.as_str()),
            (DEFAULT_API_URL, DEFAULT_AUTH_URL)
        );
        let cli = [
            ("PLATFORMSH_CLI_API_URL", "https://api.cli.example"),
            ("PLATFORMSH_CLI_AUTH_URL", "https://auth.cli.example"),
            ("UPSUN_CLI_API_URL", "https://api.upsun.example"),
            ("UPSUN_CLI_AUTH_URL", "https://auth.upsun.example"),
        ];
        let fallback = settings(&["bbsync", "schema"], &cli);
        assert_eq!(fallback.api.api_url, "https://api.cli.example");
        assert_eq!(fallback.api.auth_url, "https://auth.cli.example");
        let upsun = settings(&["bbsync", "schema"], &cli[2..]);
        assert_eq!(upsun.api.api_url, "https://api.upsun.example");
        assert_eq!(upsun.api.auth_url, "https://auth.upsun.example");
        let generic = settings(
            &["bbsync", "schema"],
            &[
                ("PLATFORMSH_CLI_API_BASE_URL", "https://base.example"),
                ("PLATFORMSH_CLI_API_AUTH_URL", " "),
                ("UPSUN_CLI_API_AUTH_URL", "https://auth.generic.example"),
            ],
        );
        assert_eq!(generic.api.api_url, "https://base.example");
        assert_eq!(generic.api.auth_url, "https://auth.generic.example");
        // bbsync's own flag wins over every fallback (its variable is read by clap into it).
        let flag = settings(
            &["bbsync", "--api-url", "https://flag.example", "schema"],
            &cli,
        );
        assert_eq!(flag.api.api_url, "https://flag.example");
        assert_eq!(flag.api.auth_url, "https://auth.cli.example");
    }

    #[test]
    fn the_log_filter_follows_flags_unless_bbsync_log_is_set() {
        assert_eq!(
            settings(&["bbsync", "-vv", "schema"], &[]).log_filter,
            "bbsync=debug,warn"
        );
        assert_eq!(
            settings(&["bbsync", "-q", "schema"], &[]).log_filter,
            "bbsync=error,warn"
        );
        let set = settings(&["bbsync", "schema"], &[("BBSYNC_LOG", "trace")]);
        assert_eq!(set.log_filter, "trace");
    }
}
