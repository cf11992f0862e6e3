//! `-f DIR`: which files of a directory are read as manifests (issue 19 item 6).

use bbsync::sandbox::Faults;

use crate::common::Run;
use crate::sync::{Api, MANIFEST, world};

const PIPELINES: &str = "image: rust:1.89\npipelines:\n  pull-requests:\n    '**':\n      - step:\n          script:\n            - bbsync plan -f .\n";

/// r19: a directory holding a manifest and `bitbucket-pipelines.yml` plans the manifest alone;
/// `-v` lists the file skipped, and without `-v` nothing is said of it.
#[test]
fn r19_a_directory_walk_reads_only_bbsync_manifests() {
    let api = Api::start(world(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("integrations.yaml"), MANIFEST).unwrap();
    std::fs::write(dir.path().join("bitbucket-pipelines.yml"), PIPELINES).unwrap();
    std::fs::create_dir(dir.path().join("k8s")).unwrap();
    std::fs::write(
        dir.path().join("k8s/app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: apps/v1\nkind: Deployment\n",
    )
    .unwrap();
    let out = api
        .run_quietly(dir.path(), &["plan", "-f", ".", "-v"])
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout.starts_with("Plan: 1 to create"),
        "{}",
        out.stdout
    );
    for skipped in ["bitbucket-pipelines.yml", "app.yaml"] {
        assert!(
            out.stderr.lines().any(|l| l.contains("skipped")
                && l.contains(skipped)
                && l.contains("not a bbsync manifest")),
            "{skipped} is listed at -v:\n{}",
            out.stderr
        );
    }
    let quiet = api.run_quietly(dir.path(), &["plan", "-f", "."]).run();
    assert_eq!(quiet.code, 0, "{quiet:#?}");
    assert!(!quiet.stderr.contains("skipped"), "{}", quiet.stderr);
}

/// A file named with `-f` is always read, and fails as a manifest would; a directory whose
/// YAML files are all something else is an error that says how to list them.
#[test]
fn a_file_named_with_f_is_always_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bitbucket-pipelines.yml"), PIPELINES).unwrap();
    let named = Run::new(dir.path(), &["validate", "-f", "bitbucket-pipelines.yml"]).run();
    assert_eq!(named.code, 4, "{named:#?}");
    assert!(
        named
            .stderr
            .contains("bitbucket-pipelines.yml:1:1: unknown field `image`"),
        "{}",
        named.stderr
    );
    let walked = Run::new(dir.path(), &["validate", "-f", "."]).run();
    assert_eq!(walked.code, 4, "{walked:#?}");
    assert!(
        walked.stderr.contains("no bbsync manifest found"),
        "{}",
        walked.stderr
    );
    assert!(walked.stderr.contains("-v"), "{}", walked.stderr);
}

/// A manifest caught half-written in a directory (empty, or cut before its first key) is
/// read and reported, never skipped: skipping it would drop its projects from the plan.
#[test]
fn a_half_written_manifest_in_a_directory_is_read_not_skipped() {
    for text in ["", "vers", "projects:\n  abc:\n"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "version: 1\nprojects:\n  abc:\n    absent: true\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yaml"), text).unwrap();
        let out = Run::new(dir.path(), &["validate", "-f", "."]).run();
        assert_eq!(out.code, 4, "{text:?}: {out:#?}");
        assert!(out.stderr.contains("b.yaml"), "{text:?}: {}", out.stderr);
    }
}
