//! Who is asking: the principal built from a verified token, the partner registry and the request's
//! purpose header.

use super::scopes::Scopes;

/// The caller of one request. Holds no token, only what was read from a verified one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// No token was presented and `identity.anonymous` let the request through; every other field is
    /// empty.
    pub anonymous: bool,
    /// The token's `iss`.
    pub issuer: Option<String>,
    /// The token's `sub`.
    pub subject: Option<String>,
    /// The token's `client_id` (RFC 9068; SMART backend services).
    pub client_id: Option<String>,
    /// The token's `fhirUser`, e.g. `Practitioner/prac-a`.
    pub fhir_user: Option<String>,
    /// The token's `scope`, parsed.
    pub scopes: Scopes,
    /// The SMART launch context `patient` (an id), when the token has one.
    pub launch_patient: Option<String>,
    /// `extensions.hl7-b2b.organization_id`, e.g. `Organization/org-h1`.
    pub organization: Option<String>,
    /// The organisation's display name, from the partner registry.
    pub organization_display: Option<String>,
    /// The organisation's ISO 3166-1 alpha-2 country, from the partner registry (never the token).
    pub country: Option<String>,
    /// Purposes of use the token grants that the registry allows the organisation, as bare
    /// v3-ActReason codes, in token order.
    pub purposes: Vec<String>,
    /// The purpose this request acts under: the `X-Purpose-Of-Use` header's (one of `purposes`), or
    /// the only one of `purposes`, or none (which the policy layer denies).
    pub purpose: Option<String>,
    /// The token's `jti`.
    pub jti: Option<String>,
    /// The token's `exp`, unix seconds.
    pub expires_at: Option<u64>,
}

impl Principal {
    /// The principal of an anonymous request.
    pub fn anonymous() -> Self {
        Self {
            anonymous: true,
            ..Self::default()
        }
    }

    /// The FHIR reference that best names the actor, for decision records and actor matching:
    /// `fhirUser`, else the client, else the subject.
    pub fn actor(&self) -> Option<&str> {
        self.fhir_user
            .as_deref()
            .or(self.client_id.as_deref())
            .or(self.subject.as_deref())
    }
}
