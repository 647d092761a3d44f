//! The environment as the parser reads it: a map of variables, with the
//! names asked for recorded (the settings table must list exactly those),
//! and readers that name the variable in every error.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;

/// The variables, and the names the parser asked for (every one must be in
/// [`super::settings::service`]).
pub(super) struct Vars {
    vars: HashMap<String, String>,
    pub(super) read: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl Vars {
    pub(super) fn new(vars: HashMap<String, String>) -> Self {
        Self {
            vars,
            read: Default::default(),
        }
    }

    /// The value as set (perhaps empty).
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        self.read.borrow_mut().insert(name.to_owned());
        self.vars.get(name).cloned()
    }

    pub(super) fn optional(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.trim().is_empty())
    }

    /// A store URL: unset means the embedded store, but set-and-empty is a
    /// mistake (e.g. a blank line in an env file) that must not silently pick it.
    pub(super) fn store_url(&self, name: &str) -> anyhow::Result<Option<String>> {
        match self.raw(name) {
            Some(value) if value.trim().is_empty() => {
                bail!("{name}: is set but empty (unset it to use the embedded store)")
            }
            Some(value) => Ok(Some(value.trim().to_owned())),
            None => Ok(None),
        }
    }

    pub(super) fn string(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn parse<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{name}: invalid value {raw:?}: {e}")),
        }
    }

    /// A positive number of seconds, at most `max`.
    pub(super) fn seconds(&self, name: &str, default: u64, max: u64) -> anyhow::Result<Duration> {
        let secs: u64 = self.parse(name, default)?;
        if secs == 0 || secs > max {
            bail!("{name}: must be between 1 and {max} seconds");
        }
        Ok(Duration::from_secs(secs))
    }
}
