//! SMART App Launch resource scopes: parsing v2 `context/Type.cruds?param=value` (and v1 `.read`,
//! `.write`, `.*`), deciding what a token allows on a resource type, and matching granular
//! restrictions against resources and search queries.
//!
//! ```
//! use anchorgate::identity::scopes::{Permission, ScopeDecision, Scopes};
//! let scopes = Scopes::parse("openid user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory");
//! let ScopeDecision::Granted { restrictions } = scopes.check("Observation", Permission::Read) else {
//!     panic!("read is granted");
//! };
//! assert_eq!(restrictions.len(), 1);
//! assert!(scopes.check("Observation", Permission::Update).is_denied());
//! assert!(scopes.check("Patient", Permission::Read).is_denied());
//! ```

mod matching;
#[cfg(test)]
mod tests;

pub use matching::resource_matches;

/// Whose data a scope covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `patient/`: only the launch patient's compartment.
    Patient,
    /// `user/`: whatever the user may see.
    User,
    /// `system/`: a backend service, no user.
    System,
}

/// One of the five SMART v2 permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `c`: create.
    Create,
    /// `r`: read, vread, history of an instance.
    Read,
    /// `u`: update, patch.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search, type and system history.
    Search,
}

impl Permission {
    fn bit(self) -> u8 {
        match self {
            Permission::Create => 1,
            Permission::Read => 2,
            Permission::Update => 4,
            Permission::Delete => 8,
            Permission::Search => 16,
        }
    }
}

/// One granular restriction: the search parameters of one scope, all of which a resource must
/// match (SMART v2 §3.3.3), within its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// The scope's context: with [`Context::Patient`] the caller must also keep to the launch
    /// patient's compartment, which [`resource_matches`] does not check.
    pub context: Context,
    /// `(name, value)` pairs, values percent-decoded, e.g.
    /// `("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory")`.
    pub params: Vec<(String, String)>,
}

/// What a token's scopes allow for one resource type and permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeDecision {
    /// No scope covers it: answer 403.
    Denied,
    /// Allowed. `restrictions` empty: without restriction; otherwise a resource is allowed when it
    /// matches any one of them (scopes add up).
    Granted {
        /// The restrictions, ORed.
        restrictions: Vec<Restriction>,
    },
}

/// A search narrowed to what the scopes allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchNarrowing {
    /// Nothing to add.
    Unrestricted,
    /// Append these parameters to the upstream query (ANDed with the client's); entries must still be
    /// checked with [`ScopeDecision::permits`], as an upstream may ignore a parameter it does not know.
    Append(Vec<(String, String)>),
    /// The restrictions cannot be written as one query (different parameters ORed, or a patient
    /// context): filter every entry with [`ScopeDecision::permits`].
    FilterOnly,
}

/// A parsed resource scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    /// `patient`, `user` or `system`.
    pub context: Context,
    /// The resource type; `None` for `*`.
    pub resource_type: Option<String>,
    /// Permission bits (c=1, r=2, u=4, d=8, s=16).
    permissions: u8,
    /// Granular parameters.
    pub params: Vec<(String, String)>,
}

/// Every scope of a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// The resource scopes understood.
    pub resource: Vec<ResourceScope>,
    /// Every scope string as granted, resource or not (`openid`, `launch/patient`, a compliance
    /// scope...), for checks by name.
    pub raw: Vec<String>,
}

impl Scopes {
    /// Parses a space-separated `scope` claim. Scopes that are not resource scopes are kept only in
    /// [`Scopes::raw`]; malformed resource scopes (unknown type, bad permissions, a broken query) grant
    /// nothing, because guessing what they meant could grant too much.
    pub fn parse(claim: &str) -> Self {
        let mut out = Scopes::default();
        for s in claim.split_ascii_whitespace() {
            out.raw.push(s.to_owned());
            if let Some(scope) = ResourceScope::parse(s) {
                out.resource.push(scope);
            }
        }
        out
    }

    /// Whether the token was granted the scope string `name` exactly.
    pub fn has(&self, name: &str) -> bool {
        self.raw.iter().any(|s| s == name)
    }

    /// What the scopes allow for `permission` on `resource_type`.
    pub fn check(&self, resource_type: &str, permission: Permission) -> ScopeDecision {
        let mut restrictions = Vec::new();
        let mut granted = false;
        for s in &self.resource {
            if s.permissions & permission.bit() == 0
                || s.resource_type
                    .as_deref()
                    .is_some_and(|t| t != resource_type)
            {
                continue;
            }
            granted = true;
            if s.params.is_empty() && s.context != Context::Patient {
                // One unrestricted scope covers everything the others would restrict.
                return ScopeDecision::Granted {
                    restrictions: Vec::new(),
                };
            }
            let r = Restriction {
                context: s.context,
                params: s.params.clone(),
            };
            if !restrictions.contains(&r) {
                restrictions.push(r);
            }
        }
        if granted {
            ScopeDecision::Granted { restrictions }
        } else {
            ScopeDecision::Denied
        }
    }
}

impl ResourceScope {
    /// One scope string, or `None` when it is not a well-formed resource scope.
    pub fn parse(s: &str) -> Option<Self> {
        let (context, rest) = s.split_once('/')?;
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return None,
        };
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (rtype, perms) = body.split_once('.')?;
        let resource_type = match rtype {
            "*" => None,
            t => Some(crate::fhir::route::resource_type(t)?.to_owned()),
        };
        let permissions = parse_permissions(perms)?;
        let params = match query {
            None => Vec::new(),
            Some(q) => parse_query(q)?,
        };
        Some(Self {
            context,
            resource_type,
            permissions,
            params,
        })
    }

    /// Whether the scope grants `p`.
    pub fn allows(&self, p: Permission) -> bool {
        self.permissions & p.bit() != 0
    }
}

/// v1 `read` (= rs), `write` (= cud) and `*` (= cruds), or v2 letters: a non-empty subsequence of
/// `cruds` in that order (SMART v2 §3.3.1 fixes the order).
fn parse_permissions(p: &str) -> Option<u8> {
    match p {
        "read" => return Some(2 | 16),
        "write" => return Some(1 | 4 | 8),
        "*" => return Some(31),
        "" => return None,
        _ => {}
    }
    let mut bits = 0u8;
    let mut last = 0usize;
    for c in p.chars() {
        let pos = "cruds".find(c)? + 1;
        if pos <= last {
            return None;
        }
        last = pos;
        bits |= 1 << (pos - 1);
    }
    Some(bits)
}

/// `name=value&...`, values percent-decoded. Modifiers (`name:modifier=`) and empty parts make the
/// scope malformed: a restriction the gateway cannot evaluate must not turn into no restriction.
fn parse_query(q: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    for part in q.split('&') {
        let (name, value) = part.split_once('=')?;
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8()
            .ok()?
            .into_owned();
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()?
            .into_owned();
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok || value.is_empty() {
            return None;
        }
        params.push((name, value));
    }
    Some(params)
}

impl ScopeDecision {
    /// Whether nothing is allowed.
    pub fn is_denied(&self) -> bool {
        matches!(self, ScopeDecision::Denied)
    }

    /// Whether something is allowed (perhaps with restrictions).
    pub fn is_granted(&self) -> bool {
        !self.is_denied()
    }

    /// Whether a resource of the checked type is allowed: granted, and matching a restriction if any.
    /// `in_launch_patient_compartment` answers for restrictions of a `patient/` scope (the caller knows
    /// the launch patient and the compartment rules).
    pub fn permits(
        &self,
        resource: &serde_json::Value,
        in_launch_patient_compartment: impl Fn(&serde_json::Value) -> bool,
    ) -> bool {
        match self {
            ScopeDecision::Denied => false,
            ScopeDecision::Granted { restrictions } => {
                restrictions.is_empty()
                    || restrictions.iter().any(|r| {
                        resource_matches(r, resource)
                            && (r.context != Context::Patient
                                || in_launch_patient_compartment(resource))
                    })
            }
        }
    }

    /// How a search must be narrowed. A single restriction's parameters are appended as they are;
    /// several restrictions on the same single parameter become one comma-separated (ORed) value;
    /// anything else can only be filtered entry by entry.
    pub fn search_narrowing(&self) -> SearchNarrowing {
        let ScopeDecision::Granted { restrictions } = self else {
            return SearchNarrowing::FilterOnly;
        };
        if restrictions.is_empty() {
            return SearchNarrowing::Unrestricted;
        }
        if restrictions.iter().any(|r| r.context == Context::Patient) {
            return SearchNarrowing::FilterOnly;
        }
        if let [only] = restrictions.as_slice() {
            return SearchNarrowing::Append(only.params.clone());
        }
        let name = match restrictions[0].params.as_slice() {
            [(n, _)] => n,
            _ => return SearchNarrowing::FilterOnly,
        };
        let mut values = Vec::with_capacity(restrictions.len());
        for r in restrictions {
            match r.params.as_slice() {
                // Values are FHIR search syntax, where a comma already means OR.
                [(n, v)] if n == name => values.push(v.as_str()),
                _ => return SearchNarrowing::FilterOnly,
            }
        }
        SearchNarrowing::Append(vec![(name.clone(), values.join(","))])
    }
}
