//! `bbsync sandbox`: the fake API, standalone, for trying bbsync by hand.

use super::args::SandboxArgs;
use super::{Error, Exit};
use crate::sandbox::{Faults, Sandbox, SandboxConfig, Seed};

/// Runs the sandbox until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: &SandboxArgs) -> Result<Exit, Error> {
    let mut seed = match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::setup(format!("cannot read the seed `{}`", path.display()), e)
            })?;
            serde_saphyr::from_str::<Seed>(&text)
                .map_err(|e| Error::setup(format!("the seed `{}` is invalid", path.display()), e))?
        }
        None => Seed::default(),
    };
    if let Some(token) = &args.token {
        seed.token = Some(token.clone());
    }
    for (name, rate) in [
        ("--fail-rate", args.fail_rate),
        ("--rate-limit-rate", args.rate_limit_rate),
        ("--drop-post-rate", args.drop_post_rate),
        ("--slow-rate", args.slow_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(Error::Usage(format!(
                "{name} must be between 0 and 1, not {rate}"
            )));
        }
    }
    if args
        .rate_limit
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
    {
        return Err(Error::Usage(
            "--rate-limit must be a number of requests per second above 0".to_owned(),
        ));
    }
    let sandbox = Sandbox::start(SandboxConfig {
        listen: args.listen,
        seed,
        faults: Faults {
            latency: args.latency,
            error_rate: args.fail_rate,
            rate_limit_rate: args.rate_limit_rate,
            retry_after: args.retry_after,
            rate_limit: args.rate_limit,
            rate_burst: args.rate_burst,
            drop_post_rate: args.drop_post_rate,
            slow_rate: args.slow_rate,
            slow_by: args.slow_by,
            seed: args.fault_seed,
        },
        token_lifetime: args.token_lifetime,
        activity_delay: args.activity_delay,
        page_size: args.page_size,
    })
    .await
    .map_err(|e| Error::setup(format!("cannot listen on {}", args.listen), e))?;
    let projects = sandbox.world().projects.len();
    println!(
        "bbsync sandbox: a fake Platform.sh API with {projects} project(s) at {}",
        sandbox.url()
    );
    println!("Point bbsync at it from another shell:");
    println!(
        "  export BBSYNC_API_URL={} BBSYNC_AUTH_URL={}",
        sandbox.url(),
        sandbox.url()
    );
    println!("  export PLATFORMSH_CLI_TOKEN={}", sandbox.token());
    println!("State: {}/__sandbox/state   Stop: Ctrl-C", sandbox.url());
    shutdown_signal().await;
    sandbox.stop().await;
    Ok(Exit::Ok)
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
