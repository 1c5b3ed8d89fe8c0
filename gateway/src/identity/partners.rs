//! The partner registry (`policies/partners.toml`): which organisations may send tokens, their country
//! and display name, and the purposes of use each may act under.
//!
//! A principal's country is always the registry's, never a token claim: the issuer vouches for who
//! the caller is, the gateway's operator decides where that organisation sits and what it may do.

use std::collections::HashMap;

use serde::Deserialize;

use super::config::IdentityConfig;
use super::purpose;
use crate::config::ConfigError;

/// The shipped registry's text.
const SHIPPED: &str = include_str!("../../../policies/partners.toml");

/// One partner organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// The organisation id as tokens carry it in `extensions.hl7-b2b.organization_id`.
    pub organization: String,
    /// A human name for records and audit views.
    pub display: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// Bare v3-ActReason codes the organisation may act under.
    pub purposes: Vec<String>,
}

/// The registry, keyed by organisation id.
#[derive(Debug, Clone, Default)]
pub struct PartnerRegistry {
    by_org: HashMap<String, Partner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "partner")]
    partners: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    organization: String,
    display: String,
    country: String,
    purposes: Vec<String>,
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid {
        setting: "identity.partners_file",
        reason,
    }
}

impl PartnerRegistry {
    /// Loads the registry the config names (`identity.partners_file`), or the shipped one when it
    /// names none. A file that is named must exist: a registry that silently went missing would
    /// refuse every partner's token with a 403 that does not say why.
    pub fn load(cfg: &IdentityConfig) -> Result<Self, ConfigError> {
        let Some(path) = &cfg.partners_file else {
            return Self::shipped();
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))
    }

    /// The registry shipped in the repository's `policies/partners.toml`, compiled in (as the shipped
    /// organisation policies are), so a gateway run from anywhere finds it.
    pub fn shipped() -> Result<Self, ConfigError> {
        Self::parse(SHIPPED).map_err(|e| invalid(format!("the shipped registry: {e}")))
    }

    /// Parses registry TOML.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut by_org = HashMap::new();
        for e in file.partners {
            let org = e.organization.trim().to_owned();
            if org.is_empty() {
                return Err("a partner has an empty organization".into());
            }
            if !(e.country.len() == 2 && e.country.bytes().all(|b| b.is_ascii_uppercase())) {
                return Err(format!(
                    "partner {org:?}: country {:?} is not an ISO 3166-1 alpha-2 code such as GB",
                    e.country
                ));
            }
            let mut purposes = Vec::with_capacity(e.purposes.len());
            for p in &e.purposes {
                let code = purpose::normalise(p).ok_or_else(|| {
                    format!("partner {org:?}: purpose {p:?} is not a v3-ActReason code")
                })?;
                if !purposes.contains(&code) {
                    purposes.push(code);
                }
            }
            let partner = Partner {
                organization: org.clone(),
                display: e.display,
                country: e.country,
                purposes,
            };
            if by_org.insert(org.clone(), partner).is_some() {
                return Err(format!("partner {org:?} is listed twice"));
            }
        }
        Ok(Self { by_org })
    }

    /// The partner for an organisation id.
    pub fn get(&self, organization: &str) -> Option<&Partner> {
        self.by_org.get(organization)
    }

    /// How many partners are registered.
    pub fn len(&self) -> usize {
        self.by_org.len()
    }

    /// Whether no partner is registered.
    pub fn is_empty(&self) -> bool {
        self.by_org.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The shipped registry must load and hold the scenario organisations.
    #[test]
    fn shipped_registry_loads() {
        let r = PartnerRegistry::shipped().unwrap();
        let h1 = r.get("Organization/org-h1").unwrap();
        assert_eq!(h1.country, "GB");
        assert_eq!(h1.display, "Hospital One");
        assert!(h1.purposes.contains(&"TREAT".to_owned()));
        assert_eq!(r.get("Organization/org-fr").unwrap().country, "FR");
        assert_eq!(r.get("Organization/org-research").unwrap().country, "GB");
        assert_eq!(r.get("Organization/org-h2").unwrap().country, "GB");
        assert!(r.get("Organization/unknown").is_none());
        // It is the default: no file named, no file looked for.
        let r = PartnerRegistry::load(&IdentityConfig::default()).unwrap();
        assert_eq!(r.len(), 4);
    }

    /// A registry named explicitly must exist: a missing one is a configuration error naming the
    /// setting and the path, never an empty registry (which would refuse every partner with 403).
    #[test]
    fn a_named_registry_that_is_missing_is_an_error() {
        let cfg = IdentityConfig {
            partners_file: Some("/nonexistent/anchorgate/partners.toml".into()),
            ..IdentityConfig::default()
        };
        let e = PartnerRegistry::load(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("identity.partners_file")
                && e.contains("/nonexistent/anchorgate/partners.toml"),
            "{e}"
        );
        assert!(cfg.check().is_err());
    }

    #[test]
    fn purposes_are_normalised_and_bad_entries_refused() {
        let r = PartnerRegistry::parse(
            r#"[[partner]]
organization = "Organization/x"
display = "X"
country = "DE"
purposes = ["TREAT", "urn:oid:2.16.840.1.113883.5.8#HRESCH", "http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT"]
"#,
        )
        .unwrap();
        assert_eq!(
            r.get("Organization/x").unwrap().purposes,
            ["TREAT", "HRESCH"]
        );
        let entry = |country: &str, purpose: &str| {
            format!(
                "[[partner]]\norganization = \"O/x\"\ndisplay = \"X\"\ncountry = \"{country}\"\npurposes = [\"{purpose}\"]\n"
            )
        };
        assert!(PartnerRegistry::parse(&entry("gb", "TREAT"))
            .unwrap_err()
            .contains("alpha-2"));
        assert!(PartnerRegistry::parse(&entry("GBR", "TREAT")).is_err());
        assert!(PartnerRegistry::parse(&entry("GB", "x|TREAT"))
            .unwrap_err()
            .contains("v3-ActReason"));
        let twice = format!("{}{}", entry("GB", "TREAT"), entry("FR", "TREAT"));
        assert!(PartnerRegistry::parse(&twice)
            .unwrap_err()
            .contains("twice"));
        assert!(PartnerRegistry::parse("[[partner]]\norganization = \"O/x\"\n").is_err());
        assert!(PartnerRegistry::parse("colour = 1").is_err());
        assert!(PartnerRegistry::parse("").unwrap().is_empty());
    }
}
