//! `watch --git-url`: the daemon's own checkout of one ref of a git repository (DESIGN §7).
//!
//! The repository is fetched shallowly (`--depth 1`, one ref, no tags) into a bare repository
//! under the checkout directory, and each new commit is written out into a tree of its own,
//! `trees/<sha>`. The manifest is read through the symbolic link `current`, which is switched
//! to the new tree with one `rename(2)`: a reader sees the old commit's files or the new one's,
//! never a mix. Only the daemon's loop switches it, between runs.
//!
//! git is done by the `git` binary, as Argo CD does (its repo-server shells out to git), rather
//! than a library such as `gix`: it speaks every transport and authentication the operator's
//! git speaks (HTTPS with tokens or proxies, SSH with keys and `known_hosts`), it is the git the
//! operator can run by hand to reproduce a failure, and it adds nothing to bbsync's build.
//! `gix` would add over a hundred crates, and its SSH transport runs the `ssh` binary anyway.
//!
//! Credentials never reach a command line (which `ps` shows) or a log:
//! - an HTTPS token is handed to git by a credential helper that reads it from the child's
//!   environment, for the URL's own scheme and host only (a redirect elsewhere gets nothing);
//! - an SSH key is named by its path, in `GIT_SSH_COMMAND`;
//! - a URL with a password in it is refused before anything runs ([`check_url`]);
//! - git's own messages are redacted of the token before they are shown.
//!
//! The child gets a minimal environment (`PATH`, `HOME`, proxies, CA settings, the SSH agent):
//! bbsync's Platform.sh token is not passed to git, nor to the `ssh` it runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::model::secret::Secret;

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct GitSource {
    /// The repository, as given (never with a password: [`check_url`]).
    pub url: String,
    /// The ref to follow (`main`, `refs/heads/main`, a tag); the remote's `HEAD` when `None`.
    pub reference: Option<String>,
    /// Time between fetches.
    pub interval: Duration,
    /// The checkout's own directory (the bare repository, the trees, `current`).
    pub dir: PathBuf,
    /// An HTTPS access token, and the user name it goes with.
    pub token: Option<(String, Secret)>,
    /// An SSH private key for `ssh://` and `user@host:path` URLs.
    pub ssh_key: Option<PathBuf>,
    /// The `known_hosts` file the SSH host key is checked against (else ssh's own).
    pub known_hosts: Option<PathBuf>,
    /// The environment variables git is given (proxies, CA files, `PATH`, `HOME`).
    pub inherit: Vec<(String, String)>,
    /// The longest one git command may take.
    pub timeout: Duration,
}

/// The user name Bitbucket Cloud expects with a repository, project or workspace access token
/// over HTTPS (Atlassian, "Using Access Tokens": `git clone
/// https://x-token-auth:{access_token}@bitbucket.org/...`).
pub const TOKEN_USER: &str = "x-token-auth";

/// The variables passed through to git: what it and `ssh` need to reach a server, nothing else.
pub const INHERITED: [&str; 14] = [
    "PATH",
    "HOME",
    "USER",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
];

/// The ref that holds the commit fetched last, in the checkout's bare repository.
const FETCHED: &str = "refs/bbsync/fetched";

/// The symbolic link the manifest is read through.
const CURRENT: &str = "current";

/// What a fetch or a switch could not do, in words fit for a log (no credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitError(pub String);

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refuses a URL that carries a password (`https://user:secret@host/...`): it would be in the
/// process list, the shell history and the pod spec. Returns the URL as logs may show it.
pub fn check_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("the git URL is empty".to_owned());
    }
    if url.starts_with('-') {
        return Err(format!("`{url}` is not a git URL"));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git" | "file") {
            return Err(format!(
                "`{scheme}://` is not a git transport bbsync uses (https, ssh, file)"
            ));
        }
        if let Ok(parsed) = url::Url::parse(url) {
            if parsed.password().is_some() {
                return Err("the git URL has a password in it; give the token in BBSYNC_GIT_TOKEN (or BBSYNC_BITBUCKET_TOKEN) instead, and keep only the user name in the URL".to_owned());
            }
            if scheme == "http" && !is_loopback(&parsed) {
                return Err("an http:// git URL sends the token in clear; use https://".to_owned());
            }
        }
    } else if url.contains("::") {
        // `ext::sh -c ...` and other remote helpers run commands.
        return Err(format!(
            "`{url}` names a git remote helper; use an https:// or ssh:// URL"
        ));
    }
    Ok(url.to_owned())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether `url` is fetched over HTTP(S), where a token applies.
fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// The user name in an HTTPS URL (`https://x-token-auth@bitbucket.org/...`), if any.
pub fn url_user(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let user = parsed.username();
    (!user.is_empty()).then(|| user.to_owned())
}

/// The Bitbucket Cloud repository (`workspace`, `slug`) a git URL names, for commit statuses:
/// `https://[user@]bitbucket.org/WS/SLUG[.git]`, `ssh://git@bitbucket.org/WS/SLUG.git`,
/// `git@bitbucket.org:WS/SLUG.git`. None for any other host.
pub fn bitbucket_cloud_repository(url: &str) -> Option<(String, String)> {
    let path = if let Some(rest) = url.split_once("://").map(|(_, rest)| rest) {
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit('@').next()?;
        let host = host.split(':').next()?;
        if !host.eq_ignore_ascii_case("bitbucket.org") {
            return None;
        }
        path
    } else {
        // scp-like: `git@bitbucket.org:WS/SLUG.git`
        let (authority, path) = url.split_once(':')?;
        let host = authority.rsplit('@').next()?;
        if !host.eq_ignore_ascii_case("bitbucket.org") {
            return None;
        }
        path
    };
    let path = path.trim_matches('/');
    let (workspace, slug) = path.split_once('/')?;
    let slug = slug.strip_suffix(".git").unwrap_or(slug);
    (is_name(workspace) && is_name(slug)).then(|| (workspace.to_owned(), slug.to_owned()))
}

/// Whether `text` can be a Bitbucket workspace or repository slug: letters, digits, `-`, `_`,
/// `.`, and not `.` or `..` (it goes into API paths).
pub fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text != "."
        && text != ".."
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `text` is a full commit ID (40 hex digits, SHA-1; 64 for SHA-256 repositories).
pub fn is_commit(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The daemon's checkout.
#[derive(Debug)]
pub struct Checkout {
    source: GitSource,
    /// The commit `current` points at.
    current: Option<String>,
}

impl Checkout {
    /// Opens the checkout in `source.dir` (made if needed), taking up the commit a previous run
    /// left checked out there.
    pub fn open(mut source: GitSource) -> std::io::Result<Self> {
        // git runs inside the bare repository: every path it is given must be absolute.
        source.dir = std::path::absolute(&source.dir)?;
        // A checkout of another repository or ref (the flags changed, the state directory
        // stayed) is not taken up: its commit would be applied as this one's.
        let marker = source.dir.join("source");
        let identity = format!(
            "{}\n{}\n",
            source.url,
            source.reference.as_deref().unwrap_or("HEAD")
        );
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(identity.as_str()) {
            for stale in ["repo.git", "trees", CURRENT] {
                let path = source.dir.join(stale);
                let _ = std::fs::remove_dir_all(&path);
                let _ = std::fs::remove_file(&path);
            }
            std::fs::create_dir_all(&source.dir)?;
            std::fs::write(&marker, &identity)?;
        }
        std::fs::create_dir_all(source.dir.join("trees"))?;
        let current = std::fs::read_link(source.dir.join(CURRENT))
            .ok()
            .and_then(|target| {
                let name = target.file_name()?.to_str()?.to_owned();
                (is_commit(&name) && source.dir.join("trees").join(&name).is_dir()).then_some(name)
            });
        Ok(Self { source, current })
    }

    /// The directory the manifest paths are relative to: the commit checked out.
    pub fn root(&self) -> PathBuf {
        self.source.dir.join(CURRENT)
    }

    /// The commit checked out, if any.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The repository and ref, as one string: a saved manifest of another one is not used.
    pub fn identity(&self) -> String {
        format!("{}#{}", self.source.url, self.reference())
    }

    /// Where and how it fetches.
    pub fn source(&self) -> &GitSource {
        &self.source
    }

    /// The ref followed, as shown.
    pub fn reference(&self) -> &str {
        self.source.reference.as_deref().unwrap_or("HEAD")
    }

    fn bare(&self) -> PathBuf {
        self.source.dir.join("repo.git")
    }

    /// Fetches the ref, shallowly; returns the commit it points at.
    pub async fn fetch(&self) -> Result<String, GitError> {
        let bare = self.bare();
        if !bare.join("HEAD").exists() {
            self.git(&self.source.dir, &["init", "--quiet", "--bare", "repo.git"])
                .await?;
        }
        let refspec = format!("+{}:{FETCHED}", self.reference());
        self.git(
            &bare,
            &[
                "fetch",
                "--quiet",
                "--depth",
                "1",
                "--no-tags",
                "--no-recurse-submodules",
                "--",
                &self.source.url,
                &refspec,
            ],
        )
        .await
        .map_err(|GitError(e)| {
            GitError(format!(
                "cannot fetch `{}` from {}: {e}",
                self.reference(),
                self.source.url
            ))
        })?;
        let commit = self
            .git(
                &bare,
                &["rev-parse", "--verify", &format!("{FETCHED}^{{commit}}")],
            )
            .await?;
        let commit = commit.trim().to_owned();
        if !is_commit(&commit) {
            return Err(GitError(format!("git named the fetched commit `{commit}`")));
        }
        Ok(commit)
    }

    /// Checks `commit` out into a tree of its own and points `current` at it, atomically;
    /// removes the other trees.
    pub async fn switch(&mut self, commit: &str) -> Result<(), GitError> {
        if !is_commit(commit) {
            return Err(GitError(format!("`{commit}` is not a commit ID")));
        }
        if self.current.as_deref() == Some(commit) {
            return Ok(());
        }
        let trees = self.source.dir.join("trees");
        let tree = trees.join(commit);
        if !tree.is_dir() {
            let staging = trees.join(format!(".new-{commit}"));
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging).map_err(|e| io_error("make", &staging, &e))?;
            let index = self.source.dir.join("checkout.index");
            let _ = std::fs::remove_file(&index);
            let work_tree = format!("--work-tree={}", staging.display());
            let result = self
                .git_with(
                    &self.bare(),
                    &[
                        &work_tree, "checkout", "--quiet", "--force", commit, "--", ".",
                    ],
                    &[("GIT_INDEX_FILE", index.as_os_str())],
                )
                .await;
            let _ = std::fs::remove_file(&index);
            if let Err(GitError(e)) = result {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(GitError(format!("cannot check out {commit}: {e}")));
            }
            std::fs::rename(&staging, &tree).map_err(|e| io_error("rename", &staging, &e))?;
        }
        point_current(&self.source.dir, commit)?;
        self.current = Some(commit.to_owned());
        // Old trees are no longer read: the loop switches only between runs.
        if let Ok(entries) = std::fs::read_dir(&trees) {
            for entry in entries.flatten() {
                if entry.file_name() != std::ffi::OsStr::new(commit) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    async fn git(&self, cwd: &Path, args: &[&str]) -> Result<String, GitError> {
        self.git_with(cwd, args, &[]).await
    }

    /// Runs git in `cwd` with `args`, in the minimal environment, with the credentials, within
    /// the timeout; its standard output, or its message (redacted, cut) on failure.
    async fn git_with(
        &self,
        cwd: &Path,
        args: &[&str],
        extra: &[(&str, &std::ffi::OsStr)],
    ) -> Result<String, GitError> {
        let mut command = tokio::process::Command::new("git");
        command
            .current_dir(cwd)
            .env_clear()
            .envs(self.source.inherit.iter().map(|(k, v)| (k, v)))
            .env("LC_ALL", "C")
            // Never wait on a prompt for a user name or a host key.
            .env("GIT_TERMINAL_PROMPT", "0")
            // No remote helper that runs commands (`ext::`), whatever the URL.
            .env("GIT_ALLOW_PROTOCOL", "https:http:ssh:git:file")
            // Neither the machine's nor the user's git configuration applies: no credential
            // helper of theirs is handed the token to store, no filter of theirs runs.
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut config: Vec<(String, String)> = vec![
            // A commit's hooks never run, and its symbolic links are checked out as plain files
            // holding the link's target: a manifest can never be a link to a file elsewhere on
            // this machine (its text would be shown in diagnostics).
            ("core.hooksPath".to_owned(), "/dev/null".to_owned()),
            ("core.symlinks".to_owned(), "false".to_owned()),
            ("core.autocrlf".to_owned(), "false".to_owned()),
            ("advice.detachedHead".to_owned(), "false".to_owned()),
        ];
        if let (Some((user, token)), true) = (&self.source.token, is_http(&self.source.url))
            && let Ok(url) = url::Url::parse(&self.source.url)
        {
            // `credential.<url>.helper` applies to that scheme and host only (git-config(1),
            // "credential.<url>.*").
            // With the port when the URL has one: git matches it too.
            let scope = match url.port() {
                Some(port) => format!(
                    "{}://{}:{port}",
                    url.scheme(),
                    url.host_str().unwrap_or_default()
                ),
                None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
            };
            config.push((
                    format!("credential.{scope}.helper"),
                    "!f() { test \"$1\" = get && echo \"username=$BBSYNC_GIT_USERNAME\" && echo \"password=$BBSYNC_GIT_PASSWORD\"; }; f".to_owned(),
                ));
            command
                .env("BBSYNC_GIT_USERNAME", user)
                .env("BBSYNC_GIT_PASSWORD", token.expose());
        }
        if self.source.ssh_key.is_some() || self.source.known_hosts.is_some() {
            command.env("GIT_SSH_COMMAND", ssh_command(&self.source));
        }
        // As `-c` options (git(1)), which every git honours (`GIT_CONFIG_COUNT` needs 2.31):
        // none holds a secret, the token stays in the environment.
        for (key, value) in &config {
            command.arg("-c").arg(format!("{key}={value}"));
        }
        command.args(args);
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command.spawn().map_err(|e| {
            GitError(if e.kind() == std::io::ErrorKind::NotFound {
                "the `git` program is not installed (bbsync watch --git-url runs it)".to_owned()
            } else {
                format!("cannot run git: {e}")
            })
        })?;
        let output = match tokio::time::timeout(self.source.timeout, child.wait_with_output()).await
        {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(GitError(format!("git failed: {e}"))),
            Err(_) => {
                return Err(GitError(format!(
                    "git took more than {} s",
                    self.source.timeout.as_secs()
                )));
            }
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(GitError(self.message(&output.stderr)))
    }

    /// git's message: its lines joined, cleaned and redacted of the token as API text is
    /// ([`crate::live::clean_text`]), cut for showing.
    fn message(&self, stderr: &[u8]) -> String {
        let text: Vec<String> = String::from_utf8_lossy(stderr)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(crate::live::clean_text)
            .collect();
        let mut text = text.join("; ");
        if let Some((_, token)) = &self.source.token {
            text = crate::live::redact(&text, token.expose());
        }
        if text.is_empty() {
            "git failed and said nothing".to_owned()
        } else {
            crate::live::shown(&text)
        }
    }
}

/// The `ssh` command git runs: the key alone (no agent key or default key tried first), no
/// prompt, and the host key checked strictly.
fn ssh_command(source: &GitSource) -> String {
    let mut command = "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes".to_owned();
    if let Some(key) = &source.ssh_key {
        command.push_str(" -o IdentitiesOnly=yes -i ");
        command.push_str(&shell_quote(&key.display().to_string()));
    }
    if let Some(known_hosts) = &source.known_hosts {
        command.push_str(" -o UserKnownHostsFile=");
        command.push_str(&shell_quote(&known_hosts.display().to_string()));
    }
    command
}

/// `text` as one word for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn io_error(what: &str, path: &Path, error: &std::io::Error) -> GitError {
    GitError(format!("cannot {what} {}: {error}", path.display()))
}

/// Points `dir/current` at `trees/<commit>` with one rename: readers see one tree or the other.
#[cfg(unix)]
fn point_current(dir: &Path, commit: &str) -> Result<(), GitError> {
    let staging = dir.join(".current.new");
    let _ = std::fs::remove_file(&staging);
    std::os::unix::fs::symlink(Path::new("trees").join(commit), &staging)
        .map_err(|e| io_error("link", &staging, &e))?;
    std::fs::rename(&staging, dir.join(CURRENT)).map_err(|e| io_error("rename", &staging, &e))
}

#[cfg(not(unix))]
fn point_current(_dir: &Path, _commit: &str) -> Result<(), GitError> {
    Err(GitError(
        "watch --git-url needs a Unix system (it switches commits with a symbolic link)".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_passwords_or_helpers_are_refused() {
        assert!(check_url("https://x-token-auth:s3cret@bitbucket.org/a/b.git").is_err());
        assert!(check_url("ext::sh -c touch% /tmp/pwned").is_err());
        assert!(check_url("http://git.example.com/a.git").is_err());
        assert!(check_url("-uhelp").is_err());
        assert!(check_url("http://127.0.0.1:8080/a.git").is_ok());
        assert!(check_url("https://x-token-auth@bitbucket.org/a/b.git").is_ok());
        assert!(check_url("git@bitbucket.org:a/b.git").is_ok());
        assert!(check_url("file:///srv/git/a.git").is_ok());
    }

    #[test]
    fn the_bitbucket_repository_is_read_from_every_url_form() {
        let expected = Some(("acme".to_owned(), "infra".to_owned()));
        for url in [
            "https://bitbucket.org/acme/infra.git",
            "https://x-token-auth@bitbucket.org/acme/infra",
            "ssh://git@bitbucket.org/acme/infra.git",
            "git@bitbucket.org:acme/infra.git",
        ] {
            assert_eq!(bitbucket_cloud_repository(url), expected, "{url}");
        }
        assert_eq!(
            bitbucket_cloud_repository("https://git.example.com/acme/infra.git"),
            None
        );
        assert_eq!(
            bitbucket_cloud_repository("file:///srv/acme/infra.git"),
            None
        );
        assert_eq!(
            bitbucket_cloud_repository("https://bitbucket.org/acme/../x"),
            None
        );
    }

    #[test]
    fn the_ssh_command_quotes_paths_and_checks_host_keys() {
        let source = GitSource {
            url: "git@bitbucket.org:a/b.git".to_owned(),
            reference: None,
            interval: Duration::from_secs(60),
            dir: PathBuf::from("/tmp/x"),
            token: None,
            ssh_key: Some(PathBuf::from("/keys/it's key")),
            known_hosts: Some(PathBuf::from("/etc/kh")),
            inherit: Vec::new(),
            timeout: Duration::from_secs(60),
        };
        assert_eq!(
            ssh_command(&source),
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i '/keys/it'\\''s key' -o UserKnownHostsFile='/etc/kh'"
        );
    }

    fn source(dir: &Path, url: &str) -> GitSource {
        GitSource {
            url: url.to_owned(),
            reference: Some("main".to_owned()),
            interval: Duration::from_secs(60),
            dir: dir.to_owned(),
            token: None,
            ssh_key: None,
            known_hosts: None,
            inherit: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_checkout_of_another_repository_is_not_taken_up() {
        let dir = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let first = Checkout::open(source(dir.path(), "file:///a.git")).unwrap();
        assert!(first.current().is_none());
        std::fs::create_dir_all(dir.path().join("trees").join(commit)).unwrap();
        point_current(dir.path(), commit).unwrap();
        let again = Checkout::open(source(dir.path(), "file:///a.git")).unwrap();
        assert_eq!(
            again.current(),
            Some(commit),
            "the same repository: taken up"
        );
        let other = Checkout::open(source(dir.path(), "file:///b.git")).unwrap();
        assert_eq!(other.current(), None, "another repository: started afresh");
        assert!(!dir.path().join("trees").join(commit).exists());
        assert!(other.root().is_absolute());
    }
}
