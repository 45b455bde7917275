//! SIGHUP: the configuration is read again (file, environment and flags as
//! at start), validated whole, then applied at once by every hook; on any
//! error nothing changes. Keys that cannot change without a restart are
//! named in the log when they changed.
//!
//! A setting that can change at run time is listed in [`RELOADABLE`] and
//! applied by a [`Hook`] registered with [`Reloader::hook`] (the daemon
//! registers its hooks in daemon.rs).

use std::collections::BTreeMap;

use super::Config;

/// Keys applied by a reload; every other key needs a restart.
pub const RELOADABLE: &[&str] = &[
    "pools.generic_workers",
    "pools.max_workers_total",
    "log.level",
    "auth.api_rate",
    "auth.tokens",
    "server.allowed_hosts",
    "server.max_connections",
];

/// Whether a reload applies `key` (`[limits]` defaults all are).
pub fn is_reloadable(key: &str) -> bool {
    RELOADABLE.contains(&key) || key.starts_with("limits.") || key == "limits"
}

/// Applies part of a new configuration.
pub trait Hook: Send + Sync {
    /// What it applies, for log lines.
    fn name(&self) -> &'static str;
    /// Whether `new` can be applied; nothing may change yet. Every hook is
    /// asked before any applies.
    fn check(&self, _new: &Config) -> Result<(), String> {
        Ok(())
    }
    /// Apply `new` over `current` (after every hook's check passed).
    fn apply(&self, current: &Config, new: &Config);
}

#[derive(Debug, thiserror::Error)]
#[error("{hook}: {problem}")]
pub struct HookError {
    pub hook: &'static str,
    pub problem: String,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Keys whose new value is now in force.
    pub applied: Vec<String>,
    /// Keys whose new value waits for a restart.
    pub need_restart: Vec<String>,
}

#[derive(Default)]
pub struct Reloader {
    hooks: Vec<Box<dyn Hook>>,
}

impl Reloader {
    pub fn hook(&mut self, hook: impl Hook + 'static) {
        self.hooks.push(Box::new(hook));
    }

    /// Check `new` with every hook, then apply it with all of them; the
    /// caller keeps `new` as the current configuration on Ok. `started` is
    /// the configuration the daemon started with (what keys that need a
    /// restart still hold), `current` the one last applied.
    pub fn reload(
        &self,
        started: &Config,
        current: &Config,
        new: &Config,
    ) -> Result<Outcome, HookError> {
        for hook in &self.hooks {
            hook.check(new).map_err(|problem| HookError {
                hook: hook.name(),
                problem,
            })?;
        }
        for hook in &self.hooks {
            hook.apply(current, new);
        }
        let reloadable = |k: &String| is_reloadable(k);
        Ok(Outcome {
            applied: changed_keys(current, new)
                .into_iter()
                .filter(reloadable)
                .collect(),
            need_restart: changed_keys(started, new)
                .into_iter()
                .filter(|k| !reloadable(k))
                .collect(),
        })
    }
}

/// The dotted keys (`section.key`) whose values differ.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (flatten(old), flatten(new));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn flatten(config: &Config) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    if let Ok(toml::Value::Table(sections)) = toml::Value::try_from(config) {
        for (section, value) in sections {
            match value {
                toml::Value::Table(keys) => {
                    for (key, v) in keys {
                        out.insert(format!("{section}.{key}"), v);
                    }
                }
                other => {
                    out.insert(section, other);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_name_sections() {
        let old = Config::default();
        let mut new = old.clone();
        new.pools.max_workers_total = 9;
        new.server.listen = "127.0.0.1:1".parse().expect("addr");
        new.storage.data_dir = Some("/srv/hearth".into());
        assert_eq!(
            changed_keys(&old, &new),
            [
                "pools.max_workers_total",
                "server.listen",
                "storage.data_dir"
            ]
        );
    }

    #[test]
    fn every_reloadable_key_exists() {
        let keys = flatten(&Config::default());
        for key in RELOADABLE {
            assert!(keys.contains_key(*key), "{key} is not a configuration key");
        }
    }
}
