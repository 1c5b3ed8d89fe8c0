//! What a loaded configuration says back: the effective settings as TOML (`check-config`), the
//! warnings worth one line each at start-up, and the resolved paths.

use super::Config;
use crate::ledger::config::ENV_LEDGER_KEY;

impl Config {
    /// The effective configuration as TOML that [`Config::from_toml`] reads back to the same settings.
    ///
    /// Nothing secret is printed because nothing secret is held: keys are named by path, and a key in
    /// `ANCHORGATE_LEDGER_KEY` is read by the ledger from the environment, never copied here.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// What is allowed but probably not what the operator wants, one sentence each: a gateway that
    /// will answer every FHIR request with 401, a ledger that cannot start or proves nothing, example
    /// partners standing in for real ones.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.identity.issuers.is_empty() {
            out.push(if self.identity.anonymous {
                "no token issuer is configured and identity.anonymous = true: every request is anonymous, with no scopes, so FHIR requests other than metadata answer 403; add [[identity.issuers]] (issuer plus jwks_file or jwks_url)".to_owned()
            } else {
                "no token issuer is configured: every FHIR request other than metadata will answer 401; add [[identity.issuers]] with issuer and jwks_file (or jwks_url) to the config file (a test issuer: `anchorgate keygen --kind issuer --out issuer.pem --jwks-out issuer.jwks.json`)".to_owned()
            });
        } else if self.identity.partners_file.is_none() {
            out.push("identity.partners_file is not set: the shipped partner registry (policies/partners.toml, compiled in) is used, whose organisations are examples; set it to your own partners".to_owned());
        }
        if !self.ledger.enabled {
            out.push("ledger.enabled = false: writes are validated but NOT anchored".to_owned());
        } else if self.ledger.ephemeral_key {
            out.push("the ledger is signed with an ephemeral development key: checkpoints cannot be verified after a restart".to_owned());
        } else if !self.ledger.key_configured() {
            out.push(format!("no ledger signing key: `serve` will refuse to start; make one with `anchorgate keygen --origin HOST/ledger --out ledger.key` and pass --ledger-key-file (or set ledger.key_file or {ENV_LEDGER_KEY}), or use --ephemeral-ledger-key to try it out"));
        }
        out
    }

    /// Where the partner registry comes from: the file named, or the shipped one.
    pub fn partner_registry_source(&self) -> String {
        match &self.identity.partners_file {
            Some(p) => p.display().to_string(),
            None => "shipped (policies/partners.toml, compiled in)".to_owned(),
        }
    }

    /// Where the organisation policies come from: the directory named, or the shipped ones.
    pub fn policy_source(&self) -> String {
        match &self.policy.dir {
            Some(p) => p.display().to_string(),
            None => "shipped (policies/, compiled in)".to_owned(),
        }
    }

    /// Logs the resolved paths in one line, so an operator sees which files a command uses.
    pub fn log_paths(&self) {
        let key = match (&self.ledger.key_file, self.ledger.ephemeral_key) {
            (Some(p), _) => p.display().to_string(),
            (None, true) => "ephemeral".to_owned(),
            (None, false) if std::env::var_os(ENV_LEDGER_KEY).is_some() => {
                ENV_LEDGER_KEY.to_owned()
            }
            (None, false) => "none".to_owned(),
        };
        let definitions: Vec<String> = self
            .validation
            .definitions
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        tracing::info!(
            data_dir = %self.data_dir.display(),
            ledger_dir = %self.ledger_dir().display(),
            ledger_key = %key,
            partners = %self.partner_registry_source(),
            policies = %self.policy_source(),
            definitions = %definitions.join(", "),
            "paths"
        );
    }
}
