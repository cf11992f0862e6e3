//! The daemon against hostile timing: manifests written in pieces (issue 13, item 1).

use std::path::Path;
use std::time::{Duration, Instant};

use bbsync::sandbox::Faults;
use serde_json::{Value, json};

use crate::sync::Api;
use crate::watch::Daemon;

fn cloud(repository: &str) -> Value {
    json!({"type": "bitbucket", "repository": repository, "app_credentials": {"key": "consumer-key"},
           "fetch_branches": true, "prune_branches": true, "build_pull_requests": true, "resync_pull_requests": false})
}

const ORG: &str = "01J7ZQ4M1B6C8D9E0F2G3H4J5K";
const PROJECTS: [(&str, &str); 5] = [
    ("aaaa", "acme/website"),
    ("bbbb", "acme/docs"),
    ("cccc", "acme/shop"),
    ("dddd", "acme/blog"),
    ("eeee", "acme/intranet"),
];

/// An organization of five projects, each mirroring its repository.
fn organization() -> Value {
    let projects: Vec<Value> = PROJECTS
        .iter()
        .map(|(id, repo)| json!({"id": id, "organization": ORG, "integrations": [cloud(repo)]}))
        .collect();
    json!({"organizations": [{"id": ORG}], "projects": projects})
}

/// The manifest for `projects`, pruning the rest of the organization.
fn manifest(projects: &[(&str, &str)]) -> String {
    let mut text = format!("version: 1\norganization: {ORG}\nprune: true\nprojects:\n");
    for (id, repo) in projects {
        text.push_str(&format!(
            "  {id}:\n    bitbucket:\n      app_credentials: {{key: \"${{BITBUCKET_KEY}}\", secret: \"${{BITBUCKET_SECRET}}\"}}\n      repository: {repo}\n"
        ));
    }
    text
}

fn wait_until(what: &str, daemon: &Daemon, ready: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !ready(&daemon.runs()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}\n{}",
            daemon.runs(),
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("integrations.yaml"), text).unwrap();
}

/// The attack: a manifest rewritten in place in two steps, a few seconds apart. The first half
/// lists one project with a truncated repository. Acting on it pruned 4 integrations and
/// PATCHed `acme/webs`; now the content must settle first, so nothing is written.
#[test]
fn a_manifest_written_in_two_steps_is_never_acted_on_half_written() {
    let api = Api::start(organization(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let full = manifest(&PROJECTS);
    write(dir.path(), &full);
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h", "--settle", "3s"]);
    wait_until("the first run", &daemon, |runs| runs.len() == 1);
    assert_eq!(daemon.runs()[0]["result"], "ok", "{:#?}", daemon.runs());
    assert_eq!(api.writes(), 0, "in sync at the start");

    // The first half ends inside the first project's repository: a valid manifest of one
    // project, with its repository cut short.
    let half = &full[..full.find("acme/website").unwrap() + "acme/webs".len()];
    write(dir.path(), half);
    std::thread::sleep(Duration::from_millis(1500));
    write(dir.path(), &full);
    wait_until("a run on the whole file", &daemon, |runs| {
        runs.len() >= 2 && runs.last().is_some_and(|r| r["result"] == "ok")
    });
    assert_eq!(
        api.writes(),
        0,
        "nothing was pruned or patched on the half-written file:\n{}",
        daemon.logs()
    );
    assert!(
        daemon.logs().contains("waiting for it to settle"),
        "{}",
        daemon.logs()
    );
    assert_eq!(daemon.terminate(), 0);
}

/// A change that drops projects is held one more settle window and confirmed from disk before
/// its deletes: reverted within the hold, nothing is deleted; left in place, the deletes run.
#[test]
fn dropping_projects_is_confirmed_from_disk_before_deleting() {
    let api = Api::start(organization(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let full = manifest(&PROJECTS);
    write(dir.path(), &full);
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h", "--settle", "2s"]);
    wait_until("the first run", &daemon, |runs| runs.len() == 1);

    // Drop two projects, then put them back while the deletes are held.
    let fewer = manifest(&PROJECTS[..3]);
    write(dir.path(), &fewer);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !daemon.logs().contains("holding the deletes") {
        assert!(
            Instant::now() < deadline,
            "the deletes are held:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    write(dir.path(), &full);
    wait_until("the superseded run and the next", &daemon, |runs| {
        runs.iter().any(|r| r["result"] == "superseded")
            && runs.last().is_some_and(|r| r["result"] == "ok")
    });
    assert_eq!(
        api.writes(),
        0,
        "reverted in time: nothing deleted\n{}",
        daemon.logs()
    );

    // Dropped for good: after the hold, the two prunes run.
    let before = daemon.runs().len();
    write(dir.path(), &fewer);
    wait_until("the pruning run", &daemon, |runs| {
        runs.len() > before && runs.last().is_some_and(|r| r["result"] == "ok")
    });
    assert_eq!(api.writes(), 2, "{}", daemon.logs());
    assert_eq!(daemon.terminate(), 0);
}
