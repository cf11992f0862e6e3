//! The environment variables a manifest may reference (`${NAME}`), as one value.
//!
//! It is read from the process once, by the settings module (`cli::settings`), and passed
//! down: nothing else in bbsync reads the process environment. Tests build one from pairs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A snapshot of environment variables. Cheap to clone. Its `Debug` shows names, never values.
#[derive(Clone, Default)]
pub struct Env {
    vars: Arc<BTreeMap<String, String>>,
}

impl Env {
    /// An environment holding `vars`.
    pub fn new<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: Arc::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
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
}
