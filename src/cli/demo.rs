//! `bbsync demo`: bbsync's main job against an in-process sandbox, explained as it goes.

use super::output;
use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Error, Exit, Settings, stdout_color};
use crate::apply::ApplyOptions;
use crate::live::{BitbucketClient, BitbucketConfig, Client, ClientConfig};
use crate::model::secret::Secret;
use crate::model::{self, Env};
use crate::plan::Plan;
use crate::reconcile::{PassOptions, Quiet, Reconciler, Source};
use crate::render::report_text;
use crate::render::{self, Painter};
use crate::sandbox::{Sandbox, SandboxConfig, Seed};

/// The demo manifest (also `examples/demo.yaml`).
pub(crate) const MANIFEST: &str = include_str!("../../examples/demo.yaml");

/// The sandbox's starting state: what the demo organization has before bbsync runs.
pub(crate) fn seed() -> Seed {
    let cloud = |repository: &str, build: bool| {
        json!({"type": "bitbucket", "repository": repository, "app_credentials": {"key": "demo-consumer-key"},
               "fetch_branches": true, "prune_branches": true, "build_pull_requests": build,
               "resync_pull_requests": false, "pull_requests_clone_parent_data": true,
               "environment_init_resources": "default", "pull_requests_max_pages": null})
    };
    let org = "01JDEM0RG0ACME00000000000D";
    serde_json::from_value(json!({
        "token": "demo-token",
        "organizations": [{"id": org}],
        "projects": [
            {"id": "aaaawebsite01", "title": "Website", "organization": org, "integrations": [cloud("acme/website", true)]},
            {"id": "bbbbdocs00002", "title": "Docs", "organization": org, "integrations": [cloud("acme/docs", false)]},
            {"id": "ccccshop00003", "title": "Shop", "organization": org, "integrations": []},
            {"id": "ddddlegacy004", "title": "Legacy", "organization": org, "integrations": [cloud("acme/legacy", true)]},
            {"id": "eeeeblog00005", "title": "Blog", "organization": org, "integrations": [
                cloud("acme/blog", true),
                {"type": "github", "repository": "acme/blog-theme", "build_pull_requests": true}
            ]},
            {"id": "ffffintra0006", "title": "Intranet", "organization": org, "integrations": [cloud("acme/intranet", true)]},
            {"id": "ggggapp000007", "title": "App", "organization": org, "integrations": []},
            {"id": "hhhhwiki00008", "title": "Wiki", "organization": org, "integrations": [], "environments": [
                {"name": "main", "is_main": true, "deployment_target": "local"},
                {"name": "staging-2019", "deployment_target": "local"}
            ]}
        ],
        // The Bitbucket side: the demo consumer, owned by a workspace admin; a second consumer
        // left *public* by mistake, which the pre-flight catches before any write; the
        // company's Bitbucket Server with the bot's personal token.
        "bitbucket": {
            "consumers": [
                {"key": "demo-consumer-key", "secret": "demo-consumer-secret", "owner": "acme-bot"},
                {"key": "demo-public-key", "secret": "demo-consumer-secret", "owner": "acme-bot", "private": false}
            ],
            "workspaces": [{"slug": "acme", "admins": ["acme-bot"], "repositories": [
                {"slug": "website"}, {"slug": "docs"}, {"slug": "shop"}, {"slug": "legacy"},
                {"slug": "blog"}, {"slug": "intranet"}, {"slug": "app"},
                {"slug": "wiki", "branches": ["main"]}
            ]}],
            "server_users": [{"name": "platform-bot", "tokens": [{"token": "demo-server-token"}]}],
            "server_projects": [{"key": "INTRA", "repositories": [{"slug": "portal"}]}]
        }
    }))
    .expect("the demo seed is valid")
}

/// The variables the demo manifest names; the process environment is not used.
fn demo_env() -> Env {
    Env::new([
        ("DEMO_BITBUCKET_KEY", "demo-consumer-key"),
        ("DEMO_BITBUCKET_SECRET", "demo-consumer-secret"),
        ("DEMO_BBS_TOKEN", "demo-server-token"),
        ("DEMO_PUBLIC_KEY", "demo-public-key"),
    ])
}

/// Runs the demo.
pub(crate) async fn run(settings: &Settings) -> Result<Exit, Error> {
    let started = Instant::now();
    let painter = Painter::new(stdout_color());
    let bold = anstyle::Style::new().bold();
    let mut out = output::stdout();
    let sandbox = Sandbox::start(SandboxConfig {
        seed: seed(),
        activity_delay: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| Error::setup("cannot start the demo sandbox", e))?;
    let file = crate::manifest::parse("examples/demo.yaml", MANIFEST.as_bytes())
        .expect("the built-in demo manifest parses");
    let built = model::build(std::slice::from_ref(&file), &demo_env());
    let desired = built.state.expect("the built-in demo manifest is valid");
    let mut config = ClientConfig::new(sandbox.url(), sandbox.url(), Secret::new(sandbox.token()));
    config.activity_poll = Duration::from_millis(100);
    config.concurrency = settings.api.concurrency;
    // The Bitbucket fake is served by the sandbox too; the demo's fictitious Server as well.
    let mut bitbucket = BitbucketConfig::new(sandbox.url(), sandbox.url());
    bitbucket.server_override = Some(sandbox.url().to_owned());
    let client = Client::new(config)?;
    bitbucket.throttle = Some(client.throttle().clone());
    let reconciler =
        Reconciler::new(client, demo_env()).with_bitbucket(BitbucketClient::new(bitbucket)?);

    writeln!(out, "{}", painter.paint(bold, "bbsync demo"))?;
    writeln!(
        out,
        "A sandbox Platform.sh API is running in this process at {}, holding an organization\nwith 8 projects, and a sandbox Bitbucket. The manifest is examples/demo.yaml (7 projects). No token or\nnetwork is used.\n",
        sandbox.url()
    )?;

    writeln!(out, "{}", painter.paint(bold, "$ bbsync plan"))?;
    let first = plan_once(&reconciler, &desired).await;
    write!(out, "{}", render::plan_text(&first, painter, false))?;

    writeln!(
        out,
        "\n{}",
        painter.paint(bold, "$ bbsync apply --auto-approve")
    )?;
    let options = PassOptions {
        apply: Some(ApplyOptions::new(8)),
        ..PassOptions::default()
    };
    let report = reconciler
        .pass(
            Source::Manifest(&desired),
            &options,
            &mut Quiet,
            &CancellationToken::new(),
        )
        .await
        .report
        .unwrap_or_default();
    write!(out, "{}", report_text(&report, painter, false))?;

    writeln!(out, "\n{}", painter.paint(bold, "$ bbsync plan    # again"))?;
    let second = plan_once(&reconciler, &desired).await;
    write!(out, "{}", render::plan_text(&second, painter, false))?;

    // A project with environments of its own joins the manifest: its first fetch would delete
    // one, and the guard stops the whole apply; the first sync without pruning keeps it.
    let wiki = "  hhhhwiki00008:                  # has environments; `staging-2019` matches no branch\n    bitbucket:\n      repository: acme/wiki\n      app_credentials: {key: \"${DEMO_BITBUCKET_KEY}\", secret: \"${DEMO_BITBUCKET_SECRET}\"}\n";
    let with = |extra: &str| {
        let text = format!("{MANIFEST}{extra}");
        let file = crate::manifest::parse("examples/demo.yaml", text.as_bytes())
            .expect("the demo manifest parses");
        model::build(std::slice::from_ref(&file), &demo_env())
            .state
            .expect("the demo manifest is valid")
    };
    writeln!(
        out,
        "\n{}",
        painter.paint(
            bold,
            "$ bbsync apply --auto-approve    # hhhhwiki00008 added to the manifest"
        )
    )?;
    let guarded = reconciler
        .pass(
            Source::Manifest(&with(wiki)),
            &options,
            &mut Quiet,
            &CancellationToken::new(),
        )
        .await;
    if let Some(line) = guarded
        .plan
        .actions
        .iter()
        .find_map(crate::render::text::environment_line)
    {
        writeln!(out, "  {line}")?;
    }
    let stopped = match &guarded.stop {
        Some(crate::reconcile::Stop::Guard(violation)) => {
            writeln!(out, "error: refused (exit 3): {violation}")?;
            true
        }
        _ => false,
    };
    writeln!(
        out,
        "\n{}",
        painter.paint(
            bold,
            "$ bbsync apply --auto-approve    # with `prune_branches: false` for the first sync"
        )
    )?;
    let kept = reconciler
        .pass(
            Source::Manifest(&with(&format!("{wiki}      prune_branches: false\n"))),
            &options,
            &mut Quiet,
            &CancellationToken::new(),
        )
        .await
        .report
        .unwrap_or_default();
    write!(out, "{}", report_text(&kept, painter, false))?;
    let survived = sandbox
        .world()
        .projects
        .get("hhhhwiki00008")
        .is_some_and(|p| p.seed.environments.iter().any(|e| e.name == "staging-2019"));
    let github_untouched = sandbox
        .world()
        .projects
        .get("eeeeblog00005")
        .is_some_and(|p| p.integrations.iter().any(|i| i.kind() == "github"));
    writeln!(out, "\n{}", painter.paint(bold, "What happened"))?;
    writeln!(
        out,
        "- The first plan compared the manifest with the live API: a drifted option on bbbbdocs00002\n  (pull-request builds turned off by hand), a missing integration on ccccshop00003, an\n  integration to delete on ddddlegacy004, and a type change (Cloud to Server) on ffffintra0006.\n- Before anything was written, the Bitbucket pre-flight checked each consumer that would be sent:\n  the one for ggggapp000007 is public, which Platform.sh cannot use, so that project is an error and\n  nothing was sent for it (tick \"This is a private consumer\" in Bitbucket to fix it).\n- apply carried out exactly the rest, waited for each write's activities, checked that Bitbucket has\n  each new integration's webhook, and reported per project.\n- The second plan is empty but for that consumer: the live state now matches the manifest.\n- Adding hhhhwiki00008, whose environment `staging-2019` matches no branch of acme/wiki: Platform.sh\n  would delete it, with its data, at the first fetch. The plan said so, and apply refused to write\n  anything ({}); with `prune_branches: false` for the first sync it was created and the environment\n  {}.\n- The GitHub integration on eeeeblog00005 was {} bbsync manages only Bitbucket integrations.\n- Secrets were read from the environment at apply time and never printed: plans show `${{NAME}}`.",
        if stopped {
            "exit 3, --max-environment-deletes"
        } else {
            "NOT refused (a bug!)"
        },
        if survived {
            "survived"
        } else {
            "was lost (a bug!)"
        },
        if github_untouched {
            "left alone:"
        } else {
            "NOT left alone (a bug!):"
        }
    )?;
    writeln!(out, "\n{}", painter.paint(bold, "Next: your own account"))?;
    writeln!(
        out,
        "  cp integrations.yaml.example integrations.yaml   # list your projects and repositories\n  export PLATFORMSH_CLI_TOKEN=...                  # Console > My profile > API tokens\n  export BITBUCKET_KEY=... BITBUCKET_SECRET=...    # your Bitbucket OAuth consumer\n  bbsync validate && bbsync plan                   # read-only; then: bbsync apply\n\n(demo finished in {:.1}s)",
        started.elapsed().as_secs_f64()
    )?;
    sandbox.stop().await;
    // Converged: nothing left to do but the project the pre-flight stopped, on purpose, and
    // nothing else failed.
    let only_the_public_consumer = |plan: &Plan| {
        plan.actions
            .iter()
            .filter(|a| a.action == crate::plan::ActionKind::Error)
            .all(|a| a.project.as_str() == "ggggapp000007")
            && plan.errors.is_empty()
    };
    let applied_the_rest = report.actions.iter().all(|a| {
        a.project.as_str() == "ggggapp000007"
            || !matches!(
                a.outcome,
                crate::apply::Outcome::Failed | crate::apply::Outcome::Unknown
            )
    });
    let converged = stopped
        && survived
        && !second.has_changes()
        && only_the_public_consumer(&first)
        && only_the_public_consumer(&second)
        && applied_the_rest
        && github_untouched;
    Ok(if converged { Exit::Ok } else { Exit::Failed })
}

async fn plan_once(reconciler: &Reconciler, desired: &model::DesiredState) -> Plan {
    let pass = reconciler
        .pass(
            Source::Manifest(desired),
            &PassOptions::default(),
            &mut Quiet,
            &CancellationToken::new(),
        )
        .await;
    pass.plan
}
