//! A small builder for running the `bbsync` binary in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One `bbsync` invocation.
pub struct Run {
    command: Command,
    forbidden: Vec<String>,
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
    /// `bbsync ARGS...` in `dir`, with a clean environment (no colors, no tokens).
    pub fn new(dir: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(binary());
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("HOME", dir);
        Self {
            command,
            forbidden: Vec::new(),
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
        } = self.command.output().expect("the binary runs");
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
        outcome
    }
}
