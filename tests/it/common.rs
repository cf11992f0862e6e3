//! A small builder for running the `bbsync` binary in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One `bbsync` invocation.
pub struct Run {
    command: Command,
    /// The arguments and the directory, to find the plans the run writes.
    args: Vec<String>,
    dir: PathBuf,
    forbidden: Vec<String>,
    deadline: Option<Duration>,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// stdout and stderr together, for leak scans.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The path of the compiled binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bbsync"))
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Run {
    /// `bbsync ARGS...` in `dir`, with a clean environment (no colors, no tokens). The rate
    /// cache is a directory of this run's own under `dir`, so no run starts with a limit an
    /// earlier one measured (and none touches the real home): a test that wants one shared
    /// sets `BBSYNC_CACHE_DIR` itself ([`Run::env`]).
    pub fn new(dir: &Path, args: &[&str]) -> Self {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut command = Command::new(binary());
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("HOME", dir)
            .env("BBSYNC_CACHE_DIR", dir.join(format!(".bbsync-cache-{run}")));
        Self {
            command,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            dir: dir.to_owned(),
            forbidden: Vec::new(),
            deadline: None,
        }
    }

    /// Removes an environment variable (the builder sets `NO_COLOR` by default).
    pub fn env_remove(mut self, name: &str) -> Self {
        self.command.env_remove(name);
        self
    }

    /// Fails the test if any of `values` appears in stdout or stderr.
    pub fn forbid(mut self, values: &[&str]) -> Self {
        self.forbidden
            .extend(values.iter().map(|v| (*v).to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.command.env(name, value);
        self
    }

    /// Fails the test, killing the process, if it runs longer than `limit`: for inputs that
    /// used to hang, so that a regression fails instead of blocking the suite.
    pub fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
        self
    }

    /// Runs to completion with stdout a pipe whose reader is already gone (`bbsync ... | head`
    /// after `head` exited): every write to stdout fails with a broken pipe.
    pub fn run_with_stdout_closed(mut self) -> Outcome {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        self.command.stdout(writer);
        self.run()
    }

    /// Runs to completion.
    pub fn run(mut self) -> Outcome {
        let Output {
            status,
            stdout,
            stderr,
        } = match self.deadline {
            None => self.command.output().expect("the binary runs"),
            Some(limit) => output_within(&mut self.command, limit),
        };
        let outcome = Outcome {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        for value in &self.forbidden {
            assert!(
                !outcome.all().contains(value.as_str()),
                "a secret reached the output:\n{}",
                outcome.all()
            );
        }
        assert!(
            !outcome.stderr.contains("panicked"),
            "bbsync panicked:\n{}",
            outcome.stderr
        );
        self.check_plans(&outcome);
        outcome
    }

    /// Validates every plan the run wrote against the published plan schema
    /// (`schema/plan.schema.json`): the JSON on stdout of `plan --format json`, and the file of
    /// `plan --out`.
    fn check_plans(&self, outcome: &Outcome) {
        if !self.args.iter().any(|a| a == "plan") {
            return;
        }
        let json = self
            .args
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] == "json")
            || self.args.iter().any(|a| a == "--format=json");
        if json && let Ok(plan) = serde_json::from_str::<serde_json::Value>(&outcome.stdout) {
            check_plan(&plan, "stdout");
        }
        let out = self
            .args
            .windows(2)
            .find(|w| w[0] == "--out")
            .map(|w| &w[1]);
        if let Some(out) = out
            && let Ok(text) = std::fs::read_to_string(self.dir.join(out))
        {
            let plan = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the plan file `{out}` is not JSON ({e}):\n{text}"));
            check_plan(&plan, out);
        }
    }
}

/// The published plan schema, compiled once.
fn plan_schema() -> &'static jsonschema::Validator {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("schema/plan.schema.json"))
            .expect("schema/plan.schema.json");
        let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the plan schema is a valid JSON Schema")
    })
}

/// Fails the test unless `plan` (read from `source`) matches the published plan schema.
pub fn check_plan(plan: &serde_json::Value, source: &str) {
    let errors: Vec<String> = plan_schema()
        .iter_errors(plan)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the plan in {source} does not match schema/plan.schema.json:\n{}\n{plan:#}",
        errors.join("\n")
    );
}

/// `command.output()`, killing the process and failing the test past `limit`.
fn output_within(command: &mut Command, limit: Duration) -> Output {
    use std::io::Read as _;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bbsync did not finish within {limit:?} (it hangs)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    }
}
