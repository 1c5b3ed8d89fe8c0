//! The one rule for relative paths, applied once after loading so the rest of the gateway sees only
//! absolute paths.
//!
//! - A relative path written in the config file is relative to **the config file's directory**, and
//!   so are the defaults that are paths (`data_dir = "anchorgate-data"`), so `serve`, `audit export`
//!   and `ledger erase` given the same `--config` find the same files from any working directory.
//! - Without a config file, they are relative to the working directory.
//! - A path given as a flag or an environment variable (`--data-dir`, `--ledger-key-file`) is typed in
//!   a shell, so it is relative to the working directory, as the shell's own completion assumes.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

impl Config {
    /// Every path setting, by its name in the TOML file. The single list [`Self::resolve_paths`]
    /// works on, so a new path setting added here follows the rule everywhere.
    pub fn path_settings_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        let mut out = vec![("data_dir", &mut self.data_dir)];
        if let Some(p) = self.ledger.dir.as_mut() {
            out.push(("ledger.dir", p));
        }
        if let Some(p) = self.ledger.key_file.as_mut() {
            out.push(("ledger.key_file", p));
        }
        if let Some(tls) = self.tls.as_mut() {
            out.push(("tls.cert", &mut tls.cert));
            out.push(("tls.key", &mut tls.key));
        }
        if let Some(p) = self.upstream_client.ca_file.as_mut() {
            out.push(("upstream_client.ca_file", p));
        }
        if let Some(p) = self.policy.dir.as_mut() {
            out.push(("policy.dir", p));
        }
        for p in &mut self.validation.definitions {
            out.push(("validation.definitions", p));
        }
        if let Some(p) = self.identity.partners_file.as_mut() {
            out.push(("identity.partners_file", p));
        }
        for issuer in &mut self.identity.issuers {
            if let Some(p) = issuer.jwks_file.as_mut() {
                out.push(("identity.issuers.jwks_file", p));
            }
        }
        out
    }

    /// Makes every relative path setting absolute by joining it to `base` (which should itself be
    /// absolute: the config file's directory, or the working directory without a file).
    pub fn resolve_paths(&mut self, base: &Path) {
        for (_, path) in self.path_settings_mut() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

/// `path` made absolute against the working directory (no file system access, no symlinks
/// followed): for paths from flags and environment variables.
pub fn absolute(setting: &'static str, path: &Path) -> Result<PathBuf, ConfigError> {
    std::path::absolute(path).map_err(|e| ConfigError::Invalid {
        setting,
        reason: format!(
            "{}: cannot be made absolute (working directory: {e})",
            path.display()
        ),
    })
}

/// The working directory, which relative paths are resolved against when there is no config file.
pub fn working_dir() -> Result<PathBuf, ConfigError> {
    std::env::current_dir().map_err(|e| ConfigError::Invalid {
        setting: "data_dir",
        reason: format!("the working directory cannot be read to resolve relative paths: {e}"),
    })
}
