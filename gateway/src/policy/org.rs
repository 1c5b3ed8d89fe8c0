//! Organisation policies in Cedar: loading and validating `policies/` (policy.toml + *.cedar) against
//! the gateway's schema, and judging one request, or one resource of it, with them.
//!
//! The patient's consents are not Cedar: the consent layer's answer enters as context
//! (`context.consent`, `context.by_default`, `context.names_organization`), and Cedar combines it with
//! the organisation's rules (forbidden purposes, purpose required, break-glass, cross-border). A request
//! judged before its response is known uses Cedar's partial evaluation with the resource unknown: a
//! decision reached anyway holds for every resource; a residual means "filter per resource".
//!
//! Cedar is a pure function of its inputs and the policies only change at start-up, so its answers are
//! cached across requests: per distinct request identity (principal, organisation, Groups, country,
//! purpose, action), the prepared entities and every verdict given so far. A Cedar call costs 7–10 µs
//! and building the entities 8 µs (criterion, this machine), against about 1 µs for a cached answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use serde::Deserialize;

use super::consent::Effect;
use super::decision::{PolicyEffect, Reason};
use super::facts::{ActionKind, RequestFacts};
use crate::fhir::reference::local_reference;

/// The schema policies are validated against: the facts the gateway provides.
pub const SCHEMA: &str = include_str!("anchorgate.cedarschema");
/// The policy parameters shipped in `policies/policy.toml`, used when `policy.dir` is unset.
pub const SHIPPED_TOML: &str = include_str!("../../../policies/policy.toml");
/// The Cedar policies shipped in `policies/org.cedar`, used when `policy.dir` is unset.
pub const SHIPPED_CEDAR: &str = include_str!("../../../policies/org.cedar");
/// The parameters file in a policy directory.
pub const TOML_FILE: &str = "policy.toml";

const NS: &str = "Anchorgate";

/// Organisation policies that cannot be used; each message names the file and, for Cedar, the policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrgPolicyError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A file's content is wrong.
    #[error("{file}: {message}")]
    Invalid {
        /// The file (`policy.toml`, `org.cedar`, ...).
        file: String,
        /// What is wrong, with a line or policy id where known.
        message: String,
    },
}

fn invalid(file: &str, message: impl Into<String>) -> OrgPolicyError {
    OrgPolicyError::Invalid {
        file: file.to_owned(),
        message: message.into(),
    }
}

/// `policy.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyToml {
    home_country: String,
    #[serde(default)]
    purposes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    actors: BTreeMap<String, Vec<String>>,
}

/// What decision records cite of one policy.
#[derive(Debug, Clone)]
struct PolicyInfo {
    id: Arc<str>,
    file: Arc<str>,
    description: Option<Arc<str>>,
    permit: bool,
    alert: bool,
}

/// Entity type names, parsed once.
#[derive(Debug, Clone)]
struct Types {
    principal: EntityTypeName,
    organization: EntityTypeName,
    group: EntityTypeName,
    actor_set: EntityTypeName,
    purpose: EntityTypeName,
    purpose_set: EntityTypeName,
    data: EntityTypeName,
    read: EntityUid,
    write: EntityUid,
}

/// Loaded, validated organisation policies.
#[derive(Debug)]
pub struct OrgPolicies {
    policies: PolicySet,
    info: HashMap<PolicyId, PolicyInfo>,
    home_country: String,
    /// Purpose code -> the PurposeSets listing it.
    purpose_sets: HashMap<String, Vec<EntityUid>>,
    /// Actor `Type/id` -> the ActorSets listing it.
    actor_sets: HashMap<String, Vec<EntityUid>>,
    types: Types,
    authorizer: Authorizer,
    /// Prepared requests and their verdicts, by [`request_key`].
    cache: RwLock<HashMap<String, Arc<Prepared>>>,
}

/// Distinct request identities kept in the cache; beyond this it is emptied and refilled, which bounds
/// its memory (each holds a few entities and at most a few hundred verdicts) at the cost of a
/// recomputation burst.
const MAX_CACHED_REQUESTS: usize = 4096;

/// A request identity's Cedar entities and the verdicts given for it so far.
#[derive(Debug)]
pub(crate) struct Prepared {
    req: CedarRequest,
    verdicts: Mutex<HashMap<VerdictKey, Arc<OrgVerdict>>>,
}

/// What a verdict depends on beyond the request identity: the consent layer's answer and, per resource,
/// its type (an R4 type name, so `'static`) and confidentiality codes as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct VerdictKey {
    layer: LayerInput,
    resource: Option<(&'static str, u8)>,
}

/// The v3-Confidentiality codes a cached verdict can be keyed on.
pub(crate) const CONFIDENTIALITY_CODES: [&str; 6] = ["U", "L", "M", "N", "R", "V"];

/// The consent layer's answer for a resource, as Cedar sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LayerInput {
    /// After the default policy.
    pub effect: Effect,
    /// No consent applied.
    pub by_default: bool,
    /// A permitting provision names the principal's organisation.
    pub names_organization: bool,
}

/// Cedar's answer.
#[derive(Debug, Clone)]
pub(crate) struct OrgVerdict {
    /// `None`: depends on the resource (partial evaluation left a residual).
    pub permit: Option<bool>,
    /// Permitted only by policies annotated `@alert` (break-glass).
    pub alert: bool,
    /// The determining policies.
    pub reasons: Vec<Reason>,
}

/// A request's principal, action and purpose as Cedar entities, built once per request.
#[derive(Debug)]
pub(crate) struct CedarRequest {
    principal: EntityUid,
    action: EntityUid,
    purpose: Option<EntityUid>,
    entities: Entities,
}

fn type_name(name: &str) -> Result<EntityTypeName, OrgPolicyError> {
    EntityTypeName::from_str(&format!("{NS}::{name}"))
        .map_err(|e| invalid("schema", format!("entity type {name}: {e}")))
}

fn uid(t: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
}

impl Types {
    fn new() -> Result<Self, OrgPolicyError> {
        let action = type_name("Action")?;
        Ok(Self {
            principal: type_name("Principal")?,
            organization: type_name("Organization")?,
            group: type_name("Group")?,
            actor_set: type_name("ActorSet")?,
            purpose: type_name("Purpose")?,
            purpose_set: type_name("PurposeSet")?,
            data: type_name("Data")?,
            read: uid(&action, "read"),
            write: uid(&action, "write"),
        })
    }

    /// The entity of an actor reference: Organization and Group by id, anyone else as a Principal.
    fn actor(&self, local: &str) -> EntityUid {
        match local.split_once('/') {
            Some(("Organization", id)) => uid(&self.organization, id),
            Some(("Group", id)) => uid(&self.group, id),
            _ => uid(&self.principal, local),
        }
    }
}

impl OrgPolicies {
    /// The policies shipped in `policies/` (compiled in).
    pub fn shipped() -> Result<Self, OrgPolicyError> {
        Self::from_sources(SHIPPED_TOML, &[("org.cedar", SHIPPED_CEDAR)])
    }

    /// Loads `dir/policy.toml` and every `dir/*.cedar`.
    pub fn load_dir(dir: &Path) -> Result<Self, OrgPolicyError> {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path).map_err(|source| OrgPolicyError::Read { path, source })
        };
        let toml = read(dir.join(TOML_FILE))?;
        let mut names = Vec::new();
        let listing = std::fs::read_dir(dir).map_err(|source| OrgPolicyError::Read {
            path: dir.to_owned(),
            source,
        })?;
        for entry in listing {
            let entry = entry.map_err(|source| OrgPolicyError::Read {
                path: dir.to_owned(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".cedar") {
                names.push(name);
            }
        }
        names.sort();
        let mut files = Vec::new();
        for name in names {
            let text = read(dir.join(&name))?;
            files.push((name, text));
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Self::from_sources(&toml, &refs)
    }

    /// Builds from the text of `policy.toml` and of each `.cedar` file (`(file name, text)`).
    pub fn from_sources(toml_text: &str, cedar: &[(&str, &str)]) -> Result<Self, OrgPolicyError> {
        let params: PolicyToml =
            toml::from_str(toml_text).map_err(|e| invalid(TOML_FILE, e.to_string()))?;
        if params.home_country.len() != 2
            || !params.home_country.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(invalid(
                TOML_FILE,
                format!(
                    "home_country {:?}: expected an ISO 3166 alpha-2 code such as GB",
                    params.home_country
                ),
            ));
        }
        let types = Types::new()?;
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA)
            .map_err(|e| invalid("anchorgate.cedarschema", e.to_string()))?;
        if cedar.is_empty() {
            return Err(invalid(
                "*.cedar",
                "no Cedar policy file: nothing would ever be permitted",
            ));
        }
        let (policies, info) = parse_policies(cedar)?;
        let validation = Validator::new(schema).validate(&policies, ValidationMode::Strict);
        if let Some(first) = validation.validation_errors().next() {
            // One message per policy is enough to find it (Cedar repeats an error per action).
            let file = info.get(first.policy_id()).map_or("*.cedar", |i| &*i.file);
            return Err(invalid(file, first.to_string()));
        }
        let purpose_sets = sets(&params.purposes, &types.purpose_set, |code| {
            (!code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric()))
                .then(|| code.to_owned())
                .ok_or_else(|| format!("purpose {code:?} is not a code"))
        })?;
        let actor_sets = sets(&params.actors, &types.actor_set, |actor| {
            local_reference(actor)
                .filter(|l| *l == actor)
                .map(str::to_owned)
                .ok_or_else(|| format!("actor {actor:?} is not a reference such as Group/grp-btg"))
        })?;
        check_set_literals(&policies, &info, &types, &params)?;
        Ok(Self {
            policies,
            info,
            home_country: params.home_country,
            purpose_sets,
            actor_sets,
            types,
            authorizer: Authorizer::new(),
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// `home_country`.
    pub fn home_country(&self) -> &str {
        &self.home_country
    }

    /// The ids of the loaded policies, sorted.
    pub fn policy_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.info.values().map(|i| &*i.id).collect();
        ids.sort_unstable();
        ids
    }

    /// The request's prepared entities, from the cache or built now.
    pub(crate) fn prepare(&self, facts: &RequestFacts) -> Arc<Prepared> {
        let key = request_key(facts);
        if let Some(p) = self.cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return p;
        }
        let prepared = Arc::new(Prepared {
            req: self.build_request(facts),
            verdicts: Mutex::new(HashMap::new()),
        });
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= MAX_CACHED_REQUESTS {
                cache.clear();
            }
            // A racing request may have inserted the same identity: keep the first, they are equal.
            return cache.entry(key).or_insert(prepared).clone();
        }
        prepared
    }

    /// Judges the request for every resource at once (the resource unknown); cached.
    pub(crate) fn request_verdict(&self, p: &Prepared, layer: LayerInput) -> Arc<OrgVerdict> {
        let key = VerdictKey {
            layer,
            resource: None,
        };
        self.cached(p, key, || self.judge_request(&p.req, layer))
    }

    /// Judges one resource of the request; cached when its type is an R4 type and its confidentiality
    /// codes are v3-Confidentiality's.
    pub(crate) fn resource_verdict(
        &self,
        p: &Prepared,
        layer: LayerInput,
        resource_type: &str,
        confidentiality: &[&str],
    ) -> Arc<OrgVerdict> {
        let judge = || self.judge_resource(&p.req, layer, resource_type, confidentiality);
        let mut mask = 0u8;
        for c in confidentiality {
            match CONFIDENTIALITY_CODES.iter().position(|k| k == c) {
                Some(i) => mask |= 1 << i,
                None => return Arc::new(judge()),
            }
        }
        let Some(rtype) = crate::fhir::route::resource_type(resource_type) else {
            return Arc::new(judge());
        };
        let key = VerdictKey {
            layer,
            resource: Some((rtype, mask)),
        };
        self.cached(p, key, judge)
    }

    fn cached(
        &self,
        p: &Prepared,
        key: VerdictKey,
        judge: impl FnOnce() -> OrgVerdict,
    ) -> Arc<OrgVerdict> {
        if let Some(v) = p.verdicts.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return v;
        }
        let v = Arc::new(judge());
        if let Ok(mut m) = p.verdicts.lock() {
            m.insert(key, v.clone());
        }
        v
    }

    /// Builds the request's entities: the principal (with its country, organisation, Groups and the
    /// ActorSets listing any of them) and the purpose (with its PurposeSets).
    fn build_request(&self, facts: &RequestFacts) -> CedarRequest {
        let t = &self.types;
        let mut entities = Vec::new();
        let mut parents: HashSet<EntityUid> = HashSet::new();
        let sets_of = |local: &str, into: &mut HashSet<EntityUid>| {
            if let Some(sets) = self.actor_sets.get(local) {
                into.extend(sets.iter().cloned());
            }
        };
        if let Some(user) = facts.fhir_user.as_deref().and_then(local_reference) {
            sets_of(user, &mut parents);
        }
        let members = facts.organization.iter().chain(facts.groups.iter());
        for m in members.filter_map(|m| local_reference(m)) {
            let entity = t.actor(m);
            let mut own = HashSet::new();
            sets_of(m, &mut own);
            parents.extend(own.iter().cloned());
            if entity.type_name() != &t.principal {
                parents.insert(entity.clone());
                entities.push(Entity::new_no_attrs(entity, own));
            }
        }
        let principal = uid(&t.principal, &facts.principal);
        let country = RestrictedExpression::new_string(facts.country.clone().unwrap_or_default());
        // Only a string attribute: `Entity::new` cannot fail on it, but stay total anyway.
        if let Ok(p) = Entity::new(
            principal.clone(),
            HashMap::from([("country".to_owned(), country)]),
            parents,
        ) {
            entities.push(p);
        }
        let purpose = facts.purpose.as_deref().map(|code| {
            let id = uid(&t.purpose, code);
            let sets = self.purpose_sets.get(code).cloned().unwrap_or_default();
            entities.push(Entity::new_no_attrs(id.clone(), sets.into_iter().collect()));
            id
        });
        // Duplicates cannot arise (Organization, Group and Principal ids are distinct types; a
        // duplicate membership is the same entity twice, which from_entities accepts when identical);
        // an error still fails closed, as no entity store means no principal facts.
        let entities = dedup(entities);
        let entities =
            Entities::from_entities(entities, None).unwrap_or_else(|_| Entities::empty());
        CedarRequest {
            principal,
            action: match facts.action {
                ActionKind::Read => t.read.clone(),
                ActionKind::Write => t.write.clone(),
            },
            purpose,
            entities,
        }
    }

    fn context(&self, req: &CedarRequest, layer: LayerInput) -> Option<Context> {
        let mut pairs = vec![
            (
                "home_country".to_owned(),
                RestrictedExpression::new_string(self.home_country.clone()),
            ),
            (
                "consent".to_owned(),
                RestrictedExpression::new_string(
                    match layer.effect {
                        Effect::Permit => "permit",
                        Effect::Deny => "deny",
                    }
                    .to_owned(),
                ),
            ),
            (
                "by_default".to_owned(),
                RestrictedExpression::new_bool(layer.by_default),
            ),
            (
                "names_organization".to_owned(),
                RestrictedExpression::new_bool(layer.names_organization),
            ),
        ];
        if let Some(p) = &req.purpose {
            pairs.push((
                "purpose".to_owned(),
                RestrictedExpression::new_entity_uid(p.clone()),
            ));
        }
        Context::from_pairs(pairs).ok()
    }

    /// Judges the request for every resource at once (the resource unknown).
    fn judge_request(&self, req: &CedarRequest, layer: LayerInput) -> OrgVerdict {
        let Some(context) = self.context(req, layer) else {
            return self.failed();
        };
        let request = Request::builder()
            .principal(req.principal.clone())
            .action(req.action.clone())
            .unknown_resource_with_type(self.types.data.clone())
            .context(context)
            .build();
        let response =
            self.authorizer
                .is_authorized_partial(&request, &self.policies, &req.entities);
        if let Some(id) = response.definitely_errored().next() {
            return self.errored(id);
        }
        let Some(decision) = response.decision() else {
            return OrgVerdict {
                permit: None,
                alert: false,
                reasons: Vec::new(),
            };
        };
        let satisfied: Vec<PolicyId> = response
            .definitely_satisfied()
            .map(|p| p.id().clone())
            .collect();
        self.verdict(decision, satisfied.iter())
    }

    /// Judges one resource of the request.
    fn judge_resource(
        &self,
        req: &CedarRequest,
        layer: LayerInput,
        resource_type: &str,
        confidentiality: &[&str],
    ) -> OrgVerdict {
        let Some(context) = self.context(req, layer) else {
            return self.failed();
        };
        let data = uid(&self.types.data, resource_type);
        let attrs = HashMap::from([
            (
                "resourceType".to_owned(),
                RestrictedExpression::new_string(resource_type.to_owned()),
            ),
            (
                "confidentiality".to_owned(),
                RestrictedExpression::new_set(
                    confidentiality
                        .iter()
                        .map(|c| RestrictedExpression::new_string((*c).to_owned())),
                ),
            ),
        ]);
        let Ok(entity) = Entity::new(data.clone(), attrs, HashSet::new()) else {
            return self.failed();
        };
        let Ok(entities) = req.entities.clone().add_entities([entity], None) else {
            return self.failed();
        };
        let Ok(request) = Request::new(
            req.principal.clone(),
            req.action.clone(),
            data,
            context,
            None,
        ) else {
            return self.failed();
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        if let Some(e) = response.diagnostics().errors().next() {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
            return self.errored(e.policy_id());
        }
        self.verdict(response.decision(), response.diagnostics().reason())
    }

    fn verdict<'p>(
        &self,
        decision: CedarDecision,
        determining: impl Iterator<Item = &'p PolicyId>,
    ) -> OrgVerdict {
        let permit = decision == CedarDecision::Allow;
        let mut reasons = Vec::new();
        let mut all_alert = true;
        for id in determining {
            let Some(info) = self.info.get(id) else {
                continue;
            };
            // Allow is determined by satisfied permits, Deny by satisfied forbids.
            if info.permit != permit {
                continue;
            }
            all_alert &= info.alert;
            reasons.push(Reason::Policy {
                policy: info.id.clone(),
                effect: if info.permit {
                    PolicyEffect::Permit
                } else {
                    PolicyEffect::Forbid
                },
                description: info.description.clone(),
            });
        }
        reasons.sort_by(|a, b| policy_id(a).cmp(policy_id(b)));
        OrgVerdict {
            permit: Some(permit),
            alert: permit && all_alert && !reasons.is_empty(),
            reasons,
        }
    }

    fn errored(&self, id: &PolicyId) -> OrgVerdict {
        let policy = self
            .info
            .get(id)
            .map_or_else(|| Arc::from(id.to_string()), |i| i.id.clone());
        OrgVerdict {
            permit: Some(false),
            alert: false,
            reasons: vec![Reason::Policy {
                policy,
                effect: PolicyEffect::Error,
                description: None,
            }],
        }
    }

    fn failed(&self) -> OrgVerdict {
        OrgVerdict {
            permit: Some(false),
            alert: false,
            reasons: vec![Reason::Policy {
                policy: "anchorgate:request-facts".into(),
                effect: PolicyEffect::Error,
                description: Some("the request's facts could not be given to the policies".into()),
            }],
        }
    }
}

/// Every request fact Cedar sees, in one unambiguous string (each field length-prefixed).
fn request_key(f: &RequestFacts) -> String {
    let mut groups: Vec<&str> = f.groups.iter().map(String::as_str).collect();
    groups.sort_unstable();
    groups.dedup();
    let fields = [
        Some(f.principal.as_str()),
        f.fhir_user.as_deref(),
        f.organization.as_deref(),
        f.country.as_deref(),
        f.purpose.as_deref(),
        Some(match f.action {
            ActionKind::Read => "r",
            ActionKind::Write => "w",
        }),
    ];
    let mut key = String::with_capacity(128);
    for field in fields.into_iter().chain(groups.into_iter().map(Some)) {
        match field {
            Some(v) => key.push_str(&format!("{}:{v}", v.len())),
            None => key.push('-'),
        }
    }
    key
}

fn policy_id(r: &Reason) -> &str {
    match r {
        Reason::Policy { policy, .. } => policy,
        _ => "",
    }
}

fn dedup(entities: Vec<Entity>) -> Vec<Entity> {
    let mut seen = HashSet::new();
    entities
        .into_iter()
        .filter(|e| seen.insert(e.uid()))
        .collect()
}

/// Parses every file, gives each policy its `@id`, and reads its annotations.
fn parse_policies(
    cedar: &[(&str, &str)],
) -> Result<(PolicySet, HashMap<PolicyId, PolicyInfo>), OrgPolicyError> {
    let mut set = PolicySet::new();
    let mut info = HashMap::new();
    for (file, text) in cedar {
        let parsed = PolicySet::from_str(text).map_err(|e| invalid(file, render(&e, text)))?;
        if parsed.templates().next().is_some() {
            return Err(invalid(file, "policy templates are not supported"));
        }
        for p in parsed.policies() {
            let Some(id) = p.annotation("id") else {
                return Err(invalid(
                    file,
                    format!(
                        "a policy has no @id annotation: {}",
                        first_line(&p.to_string())
                    ),
                ));
            };
            let pid = PolicyId::new(id);
            if info.contains_key(&pid) {
                return Err(invalid(file, format!("duplicate policy @id {id:?}")));
            }
            let policy: Policy = p.new_id(pid.clone());
            info.insert(
                pid,
                PolicyInfo {
                    id: id.into(),
                    file: (*file).into(),
                    description: p.annotation("description").map(Arc::from),
                    permit: p.effect() == cedar_policy::Effect::Permit,
                    alert: p.annotation("alert").is_some(),
                },
            );
            set.add(policy)
                .map_err(|e| invalid(file, format!("policy {id:?}: {e}")))?;
        }
    }
    Ok((set, info))
}

/// A Cedar parse error with the line and column of each problem.
fn render(e: &cedar_policy::ParseErrors, text: &str) -> String {
    use miette::Diagnostic;
    let mut out = e.to_string();
    for label in e.labels().into_iter().flatten() {
        let offset = label.offset().min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        out.push_str(&format!(" (line {line}, column {col})"));
    }
    out
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim_start().starts_with('@') && !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Inverts `[name] = [members]` into member -> sets, checking each member.
fn sets(
    table: &BTreeMap<String, Vec<String>>,
    set_type: &EntityTypeName,
    check: impl Fn(&str) -> Result<String, String>,
) -> Result<HashMap<String, Vec<EntityUid>>, OrgPolicyError> {
    let mut out: HashMap<String, Vec<EntityUid>> = HashMap::new();
    for (name, members) in table {
        let set = uid(set_type, name);
        for m in members {
            let key = check(m).map_err(|msg| invalid(TOML_FILE, format!("set {name:?}: {msg}")))?;
            out.entry(key).or_default().push(set.clone());
        }
    }
    Ok(out)
}

/// Every `PurposeSet::"x"` and `ActorSet::"x"` a policy names must be defined in policy.toml: a typo
/// would otherwise make a `forbid` silently never apply.
fn check_set_literals(
    policies: &PolicySet,
    info: &HashMap<PolicyId, PolicyInfo>,
    types: &Types,
    params: &PolicyToml,
) -> Result<(), OrgPolicyError> {
    for p in policies.policies() {
        for lit in p.entity_literals() {
            let name = lit.id().unescaped();
            let (known, section) = if lit.type_name() == &types.purpose_set {
                (params.purposes.contains_key(name), "purposes")
            } else if lit.type_name() == &types.actor_set {
                (params.actors.contains_key(name), "actors")
            } else {
                continue;
            };
            if !known {
                let (id, file) = info
                    .get(p.id())
                    .map_or(("?", "*.cedar"), |i| (&*i.id, &*i.file));
                return Err(invalid(
                    file,
                    format!("policy {id:?} names {lit}, which [{section}] in {TOML_FILE} does not define"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "org_tests.rs"]
mod tests;
