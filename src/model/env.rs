//! The environment variables a manifest may reference (`${NAME}`), as one value.
//!
//! It is read from the process once, by the settings module (`cli::settings`), and passed
//! down: nothing else in bbsync reads the process environment. Tests build one from pairs.
//!
//! It also knows which values are secret, so that every output channel can redact them
//! ([`Env::redact`]): the values of bbsync's own [credentials](CREDENTIAL_VARIABLES) from the
//! start, and those of the variables a manifest uses in a secret field once it is validated
//! ([`Env::mark_secret`]). That is defence in depth: secrets are never formatted on purpose.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

/// The variables that hold bbsync's own credentials. A manifest may never reference them (its
/// values could be published in a plan), and their values are redacted from all output.
pub(crate) const CREDENTIAL_VARIABLES: [&str; 5] = [
    "PLATFORMSH_CLI_TOKEN",
    "UPSUN_CLI_TOKEN",
    "BBSYNC_BITBUCKET_TOKEN",
    "BBSYNC_WEBHOOK_SECRET",
    "BBSYNC_GIT_TOKEN",
];

/// Values shorter than this are not redacted: replacing every `a` or `42` in the output would
/// make it unreadable and protect nothing a guess would not find.
pub(crate) const MIN_REDACTED: usize = 4;

/// What a redacted value is shown as.
pub(crate) const REDACTED: &str = "[redacted]";

/// A snapshot of environment variables. Cheap to clone; clones share which values are
/// secret. Its `Debug` shows names, never values.
#[derive(Clone, Default)]
pub struct Env {
    vars: Arc<BTreeMap<String, String>>,
    /// The values to redact, longest first (so that a secret containing another is redacted
    /// whole).
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Env {
    /// An environment holding `vars`.
    pub fn new<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        let env = Self {
            vars: Arc::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            secrets: Arc::default(),
        };
        for name in CREDENTIAL_VARIABLES {
            env.mark_secret(name);
        }
        env
    }

    /// Marks the value of `name` (when set) as secret: [`Env::redact`] hides it from then on,
    /// in this environment and every clone of it.
    pub(crate) fn mark_secret(&self, name: &str) {
        let Some(value) = self.get(name) else {
            return;
        };
        let value = value.trim();
        if value.chars().count() < MIN_REDACTED {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if !secrets.iter().any(|s| s == value) {
            secrets.push(value.to_owned());
            secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        }
    }

    /// `text` with every secret value in it replaced by `[redacted]`. Borrowed when there is
    /// none.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Cow::Borrowed(text);
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    /// The value of `name`, if it is set.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of `name`, if it is set and not blank, trimmed.
    pub(crate) fn non_blank(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_debug_without_values() {
        let env = Env::new([("A", "1"), ("BLANK", "  "), ("SECRET", "hunter2")]);
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.get("B"), None);
        assert_eq!(env.non_blank("BLANK"), None);
        let debug = format!("{env:?}");
        assert!(
            debug.contains("SECRET") && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn redacts_credentials_at_once_and_marked_secrets_in_every_clone() {
        let env = Env::new([
            ("PLATFORMSH_CLI_TOKEN", "tok-123456"),
            ("BB_SECRET", " s3cr3t-value "),
            ("SHORT", "abc"),
            ("PUBLIC", "acme"),
        ]);
        let clone = env.clone();
        assert_eq!(env.redact("a tok-123456 b"), "a [redacted] b");
        assert_eq!(env.redact("s3cr3t-value"), "s3cr3t-value", "not marked yet");
        env.mark_secret("BB_SECRET");
        env.mark_secret("SHORT");
        env.mark_secret("UNSET");
        assert_eq!(clone.redact("x=s3cr3t-value;"), "x=[redacted];");
        assert_eq!(clone.redact("abc"), "abc", "too short to redact");
        assert!(matches!(clone.redact("acme"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_containing_another_is_redacted_whole() {
        let env = Env::new([("A", "secret"), ("B", "secret-and-more")]);
        env.mark_secret("A");
        env.mark_secret("B");
        assert_eq!(
            env.redact("secret-and-more secret"),
            "[redacted] [redacted]"
        );
    }
}
