//! Consent enforcement around the upstream call: identity and scopes before it, a consent decision on every resource that leaves after it, and one decision record per request.
//!
//! ```text
//!  before:  token ─▶ scopes (403) ─▶ cursor ─▶ joins (403) ─▶ purpose (403) ─▶ upstream
//!  after:   each resource ─▶ its patients ─▶ their ledger-checked consents ─▶ policy engine
//!           ─▶ read: 404/403 when denied; search, history, $everything: entries removed, total
//!              kept only when it counts exactly what is shown, paging links sealed to the principal
//!  always:  a decision record, anchored as a decision entry
//! ```

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::request::Parts;
use http::{Method, StatusCode};
use serde_json::Value;

use super::state::Gateway;
use crate::audit::{DecisionRecord, PrincipalSummary, Recorder};
use crate::error::GatewayError;
use crate::fhir::lazy::{RawObject, SplitBundle};
use crate::fhir::{compartment, joins, Format, Interaction, Route};
use crate::filter::cursor::{self, Cursors};
use crate::filter::entries;
use crate::identity::scopes::{Permission, ScopeDecision};
use crate::identity::{AuthError, Authenticator, Principal, PURPOSE_HEADER};
use crate::policy::consent::ConsentModel;
use crate::policy::decision::Reason;
use crate::policy::{
    facts, ActionKind, PolicyEngine, RequestEvaluation, RequestFacts, ResourceFacts,
};

/// How long a principal's Group memberships are reused; writes of a Group through the gateway
/// clear them at once.
const GROUP_TTL: Duration = Duration::from_secs(60);
/// How long a sealed paging link stays valid.
const CURSOR_LIFETIME_SECS: u64 = 3600;

/// The `[enforcement]` settings.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnforcementConfig {
    /// Status of a read the consent denies: 404 (the default: the restriction stays hidden) or 403.
    pub denied_read_status: u16,
    /// Allow `_has`, chained parameters and `_filter` (they can reveal withheld data through joins).
    pub allow_joins: bool,
    /// The scope that makes a principal a compliance reviewer (`/audit/...`, `[base]/AuditEvent`).
    /// Matched exactly: no wildcard scope grants it.
    pub audit_scope: String,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        Self {
            denied_read_status: 404,
            allow_joins: false,
            audit_scope: "anchorgate/audit.read".into(),
        }
    }
}

impl EnforcementConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.denied_read_status, 403 | 404) {
            return Err("enforcement.denied_read_status must be 403 or 404".into());
        }
        if self.audit_scope.trim().is_empty() || self.audit_scope.contains(' ') {
            return Err("enforcement.audit_scope must be one scope name".into());
        }
        Ok(())
    }
}

/// A principal's Group memberships and when they were read.
type Cached = (Instant, Vec<String>);

/// What enforcement needs for the gateway's whole life.
#[derive(Debug)]
pub struct Enforcer {
    /// Token verification.
    pub identity: Authenticator,
    /// The consent and organisation-policy engine.
    pub engine: PolicyEngine,
    /// Paging cursors.
    pub cursors: Cursors,
    /// Decision records.
    pub recorder: Recorder,
    /// Settings.
    pub config: EnforcementConfig,
    groups: Mutex<HashMap<String, Cached>>,
}

impl Enforcer {
    /// Builds enforcement from its parts.
    pub fn new(
        identity: Authenticator,
        engine: PolicyEngine,
        recorder: Recorder,
        config: EnforcementConfig,
    ) -> Result<Self, String> {
        Ok(Self {
            identity,
            engine,
            cursors: Cursors::random(CURSOR_LIFETIME_SECS).map_err(|e| e.to_string())?,
            recorder,
            config,
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// Forgets cached Group memberships (a Group was written through the gateway).
    pub fn groups_changed(&self) {
        if let Ok(mut g) = self.groups.lock() {
            g.clear();
        }
    }

    /// Whether `p` may use the compliance endpoints.
    pub fn is_reviewer(&self, p: &Principal) -> bool {
        p.scopes.has(&self.config.audit_scope)
    }
}

/// Response header naming the request's decision record (`/audit/decisions/{id}`).
pub const DECISION_HEADER: &str = "x-anchorgate-decision";

/// Now, unix seconds.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The principal's key for sealing cursors: issuer, subject and client together.
fn cursor_owner(p: &Principal) -> String {
    format!(
        "{}\u{0}{}\u{0}{}",
        p.issuer.as_deref().unwrap_or_default(),
        p.subject.as_deref().unwrap_or_default(),
        p.client_id.as_deref().unwrap_or_default()
    )
}

/// What the request phase learned, carried to the response phase.
#[derive(Debug)]
pub struct Guard {
    principal: Principal,
    /// Read or write, for the policy engine.
    action: ActionKind,
    /// What the engine knows of the request; built on first use, since it may need a Group lookup
    /// that requests nobody judges (writes, reviewers) never need.
    facts: Option<RequestFacts>,
    started: Instant,
    scope: ScopeDecision,
    /// Read-like: the response is judged resource by resource.
    judge: Judge,
    record: DecisionRecord,
    /// For a batch or transaction, the indices of its read (GET) entries.
    bundle_reads: Vec<usize>,
    /// The engine's reasons already in `record.reasons`: a 50-entry search gives the same few reasons
    /// per entry, and serialising each to compare was 4 % of a search's CPU (perf).
    reasons_seen: Vec<Reason>,
}

/// How the response is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judge {
    /// One resource (read, vread): denied → 404/403.
    Single,
    /// A Bundle (search, history, `$everything`): entries filtered.
    Entries,
    /// Nothing leaves that consent governs (writes answer with what the writer wrote).
    Nothing,
    /// A batch or transaction: the answers to its read entries (by entry index) are judged.
    BatchReads,
}

impl Guard {
    /// A reviewer's `AuditEvent` request: a read or search (`served`, whatever it found), or a write,
    /// which is refused.
    pub fn reviewed(&mut self, served: bool) {
        let (outcome, effect, detail) = if served {
            (
                "permit",
                "permit",
                "decision records served to a compliance reviewer",
            )
        } else {
            (
                "forbidden",
                "forbid",
                "AuditEvents are produced by the gateway and cannot be written",
            )
        };
        self.record.outcome = outcome.into();
        self.record
            .reasons
            .push(policy_reason("compliance-reviewer", effect, detail));
    }

    /// Whether the answer is judged resource by resource.
    pub fn judges(&self) -> bool {
        self.judge != Judge::Nothing
    }

    /// What the token's scopes grant on the request's own resource type and interaction.
    pub(super) fn scope(&self) -> &ScopeDecision {
        &self.scope
    }

    /// Who is asking.
    pub(super) fn principal(&self) -> &Principal {
        &self.principal
    }
}

fn permission(route: &Route, method: &Method) -> Permission {
    match route.interaction {
        Interaction::Read | Interaction::Vread | Interaction::HistoryInstance => Permission::Read,
        Interaction::SearchType
        | Interaction::SearchSystem
        | Interaction::SearchCompartment
        | Interaction::HistoryType
        | Interaction::HistorySystem => Permission::Search,
        Interaction::Create => Permission::Create,
        Interaction::Update
        | Interaction::ConditionalUpdate
        | Interaction::Patch
        | Interaction::ConditionalPatch => Permission::Update,
        Interaction::Delete | Interaction::ConditionalDelete => Permission::Delete,
        // Operations: reading ones need read; one that changes data needs update, decided by the
        // method since FHIR operations declare it that way (GET only for affects-state = false).
        Interaction::Operation if *method == Method::GET => Permission::Read,
        Interaction::Operation => Permission::Update,
        _ => Permission::Read,
    }
}

fn judge(route: &Route) -> Judge {
    match route.interaction {
        Interaction::Read | Interaction::Vread => Judge::Single,
        Interaction::SearchType
        | Interaction::SearchSystem
        | Interaction::SearchCompartment
        | Interaction::HistoryInstance
        | Interaction::HistoryType
        | Interaction::HistorySystem
        | Interaction::Operation => Judge::Entries,
        _ => Judge::Nothing,
    }
}

/// The request phase. On refusal the decision is recorded and the error returned.
pub async fn before(
    gw: &Gateway,
    parts: &Parts,
    route: &Route,
    request_id: &str,
    rest: &mut String,
    query: &mut Option<String>,
    decision: &mut Option<String>,
) -> Result<Guard, GatewayError> {
    let enf = &gw.enforcer;
    let started = Instant::now();
    let principal = match enf.identity.authenticate(&parts.headers, now_unix()).await {
        Ok(p) => p,
        Err(AuthError::Forbidden(why)) => {
            // A valid token asking for more than it grants (a purpose beyond it): an authorisation
            // decision like any other, so it is recorded under the token's principal.
            let mut headers = parts.headers.clone();
            headers.remove(PURPOSE_HEADER);
            if let Ok(p) = enf.identity.authenticate(&headers, now_unix()).await {
                let mut record = new_record(&p, route, request_id);
                *decision = Some(record.id.clone());
                record.purpose = parts
                    .headers
                    .get(PURPOSE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                // The error returned is identity's own (it names the purpose refused).
                let _ = refused(
                    enf,
                    &mut record,
                    started,
                    "deny",
                    "partner-registry",
                    why.clone(),
                )
                .await;
            }
            return Err(AuthError::Forbidden(why).into());
        }
        Err(e) => return Err(e.into()),
    };
    let mut record = new_record(&principal, route, request_id);
    *decision = Some(record.id.clone());

    // A sealed paging link: only its owner may follow it, and it stands for the upstream link.
    if let Some(c) = cursor_param(query.as_deref()) {
        match enf.cursors.open(&cursor_owner(&principal), &c, now_unix()) {
            Ok(link) => {
                let (r, q) = match link.split_once('?') {
                    Some((r, q)) => (r.to_owned(), Some(q.to_owned())),
                    None => (link, None),
                };
                *rest = r;
                *query = q;
            }
            Err(e) => {
                return Err(refused(
                    enf,
                    &mut record,
                    started,
                    "forbidden",
                    "paging-cursor",
                    e.to_string(),
                )
                .await);
            }
        }
    }
    let resource_type = route.resource_type.map(str::to_owned).or_else(|| {
        rest.split('/')
            .next()
            .filter(|s| !s.is_empty() && !s.starts_with('$'))
            .map(str::to_owned)
    });
    if record.resource_type.is_none() {
        record.resource_type = resource_type.clone();
    }

    // Decision records are for compliance reviewers, whatever their SMART scopes say.
    if resource_type.as_deref() == Some("AuditEvent") {
        if !enf.is_reviewer(&principal) {
            let why = format!(
                "AuditEvents are for compliance reviewers (scope {})",
                enf.config.audit_scope
            );
            return Err(refused(
                enf,
                &mut record,
                started,
                "forbidden",
                "compliance-reviewer",
                why,
            )
            .await);
        }
        return Ok(Guard {
            action: ActionKind::Read,
            facts: None,
            principal,
            started,
            scope: ScopeDecision::Granted {
                restrictions: vec![],
            },
            judge: Judge::Nothing,
            record,
            bundle_reads: Vec::new(),
            reasons_seen: Vec::new(),
        });
    }

    // 1. SMART scopes, before anything else.
    let perm = permission(route, &parts.method);
    let scope = match (&resource_type, route.interaction) {
        (_, Interaction::BatchOrTransaction) => ScopeDecision::Granted {
            restrictions: vec![],
        },
        (Some(t), _) => principal.scopes.check(t, perm),
        (None, _) => system_scope(&principal, perm, query.as_deref()),
    };
    if scope.is_denied() {
        let why = format!(
            "the token's scopes do not allow {} on {}",
            perm_name(perm),
            resource_type.as_deref().unwrap_or("every type")
        );
        return Err(refused(enf, &mut record, started, "forbidden", "smart-scopes", why).await);
    }

    // 2. Joins that could reveal withheld data.
    if !enf.config.allow_joins {
        let found = joins::joins(query.as_deref().unwrap_or_default());
        if !found.is_empty() {
            let why = format!(
                "search parameter(s) {} join across resources and are not allowed (enforcement.allow_joins)",
                found.join(", ")
            );
            return Err(refused(enf, &mut record, started, "deny", "no-joins", why).await);
        }
    }

    // 3. Purpose of use: a request without one is denied.
    if principal.purpose.is_none() {
        let why =
            "the request names no purpose of use (X-Purpose-Of-Use, or a token with exactly one)";
        return Err(refused(
            enf,
            &mut record,
            started,
            "deny",
            "purpose-required",
            why.to_owned(),
        )
        .await);
    }

    let action = if matches!(perm, Permission::Read | Permission::Search) {
        ActionKind::Read
    } else {
        ActionKind::Write
    };
    Ok(Guard {
        principal,
        action,
        facts: None,
        started,
        scope,
        judge: judge(route),
        record,
        bundle_reads: Vec::new(),
        reasons_seen: Vec::new(),
    })
}

/// A fresh decision record for a request by `principal`.
fn new_record(principal: &Principal, route: &Route, request_id: &str) -> DecisionRecord {
    DecisionRecord {
        // Time-ordered (RFC 9562 v7): both stores index decisions by id, and random ids put every
        // insert on a random B-tree page, rewriting one page per decision at every commit.
        id: uuid::Uuid::now_v7().to_string(),
        request_id: request_id.to_owned(),
        principal: PrincipalSummary {
            sub: principal.subject.clone().unwrap_or_default(),
            fhir_user: principal.fhir_user.clone(),
            client_id: principal.client_id.clone(),
            organization: principal.organization.clone(),
            country: principal.country.clone(),
            issuer: principal.issuer.clone(),
        },
        purpose: principal.purpose.clone(),
        interaction: route.interaction.name().to_owned(),
        resource_type: route.resource_type.map(str::to_owned),
        ..Default::default()
    }
}

/// What the policy engine knows of the request.
async fn facts_of(gw: &Gateway, enf: &Enforcer, p: &Principal, action: ActionKind) -> RequestFacts {
    RequestFacts {
        principal: p
            .fhir_user
            .clone()
            .or_else(|| p.client_id.as_ref().map(|c| format!("client/{c}")))
            .unwrap_or_else(|| format!("sub/{}", p.subject.as_deref().unwrap_or_default())),
        fhir_user: p.fhir_user.clone(),
        organization: p.organization.clone(),
        groups: groups_of(gw, enf, p.fhir_user.as_deref()).await,
        purpose: p.purpose.clone(),
        action,
        now: now_unix() as i64,
        country: p.country.clone(),
    }
}

fn perm_name(p: Permission) -> &'static str {
    match p {
        Permission::Create => "create",
        Permission::Read => "read",
        Permission::Update => "update",
        Permission::Delete => "delete",
        Permission::Search => "search",
    }
}

/// A system-level search or history: every type it names (`_type`) must be allowed; without `_type`
/// it spans every type, so only a wildcard scope allows it.
fn system_scope(p: &Principal, perm: Permission, query: Option<&str>) -> ScopeDecision {
    let types: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "_type")
        .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if types.is_empty() {
        return p.scopes.check("*", perm);
    }
    let mut restrictions = Vec::new();
    for t in types {
        match p.scopes.check(&t, perm) {
            ScopeDecision::Denied => return ScopeDecision::Denied,
            ScopeDecision::Granted { restrictions: r } => restrictions.extend(r),
        }
    }
    ScopeDecision::Granted { restrictions }
}

fn cursor_param(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == cursor::PARAM)
        .map(|(_, v)| v.into_owned())
}

fn policy(id: &str, detail: &str) -> Value {
    policy_reason(id, "forbid", detail)
}

fn policy_reason(id: &str, effect: &str, detail: &str) -> Value {
    serde_json::json!({"kind": "policy", "policy": id, "effect": effect, "detail": detail})
}

/// Records a refusal (403) and answers the error to return.
async fn refused(
    enf: &Enforcer,
    record: &mut DecisionRecord,
    started: Instant,
    outcome: &str,
    policy_id: &str,
    why: String,
) -> GatewayError {
    record.outcome = outcome.to_owned();
    record.status = 403;
    record.reasons = vec![policy(policy_id, &why)];
    finish_record(record, started);
    enf.recorder.record(std::mem::take(record)).await;
    GatewayError::Forbidden(why)
}

fn finish_record(record: &mut DecisionRecord, started: Instant) {
    let now = chrono::Utc::now();
    record.time = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    record.time_unix = now.timestamp();
    record.latency_us = started.elapsed().as_micros() as u64;
}

/// Refuses the request under `policy_id`. The decision goes on the guard's record, which the
/// pipeline's one exit stores with the status the client gets.
pub(super) fn deny(guard: &mut Guard, outcome: &str, policy_id: &str, why: String) -> GatewayError {
    guard.record.outcome = outcome.to_owned();
    guard.record.reasons = vec![policy(policy_id, &why)];
    GatewayError::Forbidden(why)
}

/// Search parameters that join across resources (`_has`, chains, `_filter`; see `fhir::joins`) are
/// refused wherever the request carries search parameters, not only in its URL: a POST `_search`
/// form body, `If-None-Exist` (a conditional create runs it as a search), and each batch entry's
/// URL and `ifNoneExist`. `sources` pairs where the parameters came from with their query text.
pub fn refuse_joins(
    enf: &Enforcer,
    guard: &mut Guard,
    sources: &[(&str, &str)],
) -> Result<(), GatewayError> {
    if enf.config.allow_joins {
        return Ok(());
    }
    for (at, params) in sources {
        let found = joins::joins(params);
        if !found.is_empty() {
            let why = format!(
                "{at}: search parameter(s) {} join across resources and are not allowed (enforcement.allow_joins)",
                found.join(", ")
            );
            return Err(deny(guard, "deny", "no-joins", why));
        }
    }
    Ok(())
}

/// The Groups `fhir_user` is a member of, read from the upstream on the gateway's own account and
/// cached. A failed lookup counts as no membership (deny when unsure).
async fn groups_of(gw: &Gateway, enf: &Enforcer, fhir_user: Option<&str>) -> Vec<String> {
    let Some(user) = fhir_user else {
        return Vec::new();
    };
    if let Ok(g) = enf.groups.lock() {
        if let Some((at, v)) = g.get(user) {
            if at.elapsed() < GROUP_TTL {
                return v.clone();
            }
        }
    }
    let q = format!(
        "member={}&_count=1000",
        url::form_urlencoded::byte_serialize(user.as_bytes()).collect::<String>()
    );
    let found = match super::readback::get(
        gw,
        None,
        "Group",
        Some(&q),
        "looking up Group membership",
    )
    .await
    {
        Ok(f) if f.status == StatusCode::OK => f
            .value
            .iter()
            .flat_map(super::readback::matches)
            .filter_map(|e| e.get("resource"))
            // Membership is checked here too: an upstream that ignores `member` must not make
            // everyone a member of every Group.
            .filter(|g| is_member(g, user))
            .filter_map(|g| g.get("id").and_then(Value::as_str))
            .map(|id| format!("Group/{id}"))
            .collect(),
        Ok(f) => {
            tracing::warn!(status = %f.status, "Group membership lookup refused; treating as no membership");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(error = %e, "Group membership lookup failed; treating as no membership");
            Vec::new()
        }
    };
    if let Ok(mut g) = enf.groups.lock() {
        if g.len() > 10_000 {
            g.clear();
        }
        g.insert(user.to_owned(), (Instant::now(), found.clone()));
    }
    found
}

/// Whether `group` lists `user` (`Type/id`) as a current member.
fn is_member(group: &Value, user: &str) -> bool {
    group.get("resourceType").and_then(Value::as_str) == Some("Group")
        && group
            .get("member")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|m| m.get("inactive").and_then(Value::as_bool) != Some(true))
            .filter_map(|m| m.pointer("/entity/reference").and_then(Value::as_str))
            .filter_map(crate::fhir::reference::local_reference)
            .any(|r| r == user)
}

/// The response phase for a read-like answer (parsed to FHIR JSON): judges it in place, and answers
/// whether it changed. `Err` for a denied single read (404 or 403).
pub async fn judge_response(
    gw: &Gateway,
    enf: &Enforcer,
    guard: &mut Guard,
    public: &str,
    doc: &mut Value,
) -> Result<bool, GatewayError> {
    let mut evals: Evals = HashMap::new();
    match guard.judge {
        Judge::Nothing => Ok(false),
        Judge::Single => match judge_one(gw, enf, guard, &mut evals, doc, None).await? {
            Verdict::Admit => Ok(false),
            v => Err(refuse_read(enf, guard, v, doc)),
        },
        Judge::Entries => {
            if doc.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                // An operation answering with one resource: judged like a read.
                guard.judge = Judge::Single;
                return Box::pin(judge_response(gw, enf, guard, public, doc)).await;
            }
            judge_bundle(gw, enf, guard, &mut evals, public, doc).await
        }
        Judge::BatchReads => {
            let reads = std::mem::take(&mut guard.bundle_reads);
            let mut changed = false;
            let n = doc
                .get("entry")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in reads.into_iter().filter(|i| *i < n) {
                let Some(mut res) = doc["entry"][i].get_mut("resource").map(Value::take) else {
                    continue;
                };
                if res.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                    changed |= Box::pin(judge_bundle(gw, enf, guard, &mut evals, public, &mut res))
                        .await?;
                    doc["entry"][i]["resource"] = res;
                    continue;
                }
                match judge_one(gw, enf, guard, &mut evals, &res, None).await? {
                    Verdict::Admit => doc["entry"][i]["resource"] = res,
                    v => {
                        // The entry answers as a read of a resource the caller may not see would.
                        changed = true;
                        guard.record.withheld += 1;
                        let status =
                            if v == Verdict::OutOfScope || enf.config.denied_read_status == 403 {
                                "403 Forbidden"
                            } else {
                                "404 Not Found"
                            };
                        if let Some(e) = doc["entry"][i].as_object_mut() {
                            e.remove("fullUrl");
                            e.remove("resource");
                            e.insert("response".into(), serde_json::json!({"status": status}));
                        }
                    }
                }
            }
            Ok(changed)
        }
    }
}

/// Judges one resource exactly as a read of it would be (for the ledger's `$verify` and `$receipt`):
/// `Err` with the read's 404/403 when the principal may not see it.
pub async fn judge_read(
    gw: &Gateway,
    guard: &mut Guard,
    doc: &mut Value,
) -> Result<(), GatewayError> {
    guard.judge = Judge::Single;
    judge_response(gw, &gw.enforcer, guard, "", doc)
        .await
        .map(drop)
}

/// The error a single read answers with when its resource is withheld (`verdict` is not `Admit`):
/// 403 outside the granular scopes; otherwise 404, so the restriction stays hidden, unless
/// configured to 403. `doc` holds at least the resource's type and id.
fn refuse_read(enf: &Enforcer, guard: &mut Guard, verdict: Verdict, doc: &Value) -> GatewayError {
    if verdict == Verdict::OutOfScope {
        guard.record.outcome = "forbidden".into();
        return GatewayError::Forbidden(
            "the resource is outside the token's granular scopes".into(),
        );
    }
    guard.record.outcome = "deny".into();
    guard.record.withheld = 1;
    if enf.config.denied_read_status == 403 {
        GatewayError::Forbidden("access to this resource is not permitted".into())
    } else {
        GatewayError::NotFound(format!(
            "{}/{}",
            doc.get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("Resource"),
            doc.get("id").and_then(Value::as_str).unwrap_or_default()
        ))
    }
}

/// A Bundle answer (search, history, `$everything`): every entry judged, the withheld removed,
/// `total` kept only where it cannot count anything withheld (`filter::entries::total_disclosable`),
/// paging links sealed to the principal. Answers whether it changed.
async fn judge_bundle(
    gw: &Gateway,
    enf: &Enforcer,
    guard: &mut Guard,
    evals: &mut Evals,
    public: &str,
    doc: &mut Value,
) -> Result<bool, GatewayError> {
    // Judge every entry first (async: consents are loaded per patient), then remove. `retain` asks
    // only about entries with a resource that are not `outcome`s, in order, so only theirs are
    // kept: a verdict for any other (a history's deletion, an outcome before the matches) would
    // shift every later verdict onto the wrong entry.
    let mut keep = Vec::new();
    if let Some(list) = doc.get("entry").and_then(Value::as_array) {
        for e in list {
            if let Some(r) = e
                .get("resource")
                .filter(|_| e.pointer("/search/mode").and_then(Value::as_str) != Some("outcome"))
            {
                keep.push(judge_one(gw, enf, guard, evals, r, None).await? == Verdict::Admit);
            }
        }
    }
    let mut it = keep.into_iter();
    // Before the links are sealed: a next link that cannot be sealed is dropped, and the page is
    // still one of many.
    let f = entries::retain(doc, |_| it.next().unwrap_or(false));
    count_withheld(guard, f.removed, f.total_withheld);
    let sealed = seal_paging(gw, enf, guard, public, doc);
    Ok(f.removed > 0 || f.total_withheld || sealed > 0)
}

/// Counts entries withheld from a Bundle (across every Bundle of the answer: a batch may hold several
/// searches), with the obligation that goes with them and with a total left out
/// (`filter::entries::total_disclosable`).
fn count_withheld(guard: &mut Guard, removed: usize, total_withheld: bool) {
    guard.record.withheld += removed as u32;
    let suppress = "suppress-total".to_owned();
    if (removed > 0 || total_withheld) && !guard.record.obligations.contains(&suppress) {
        guard.record.obligations.push(suppress);
    }
}

/// Paging links of the Bundle `doc`: sealed to this principal, served under the public base.
/// Answers how many changed.
fn seal_paging(
    gw: &Gateway,
    enf: &Enforcer,
    guard: &Guard,
    public: &str,
    doc: &mut Value,
) -> usize {
    let owner = cursor_owner(&guard.principal);
    let now = now_unix();
    entries::seal_links(doc, |url| {
        let (r, q) = gw.upstream.relative(url)?;
        let link = match q {
            Some(q) => format!("{r}?{q}"),
            None => r,
        };
        let sealed = enf.cursors.seal(&owner, &link, now);
        Some(format!("{public}?{}={sealed}", cursor::PARAM))
    })
}

/// The response phase for a read-like answer's body: judged, and the body to send instead when
/// anything changed (`None`: the upstream's exact bytes go out). `Err` for a denied single read.
pub async fn judge_answer(
    gw: &Gateway,
    guard: &mut Guard,
    public: &str,
    format: Format,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, GatewayError> {
    let enf = &gw.enforcer;
    // A JSON Bundle is judged from its text, without building its tree (see `fhir::lazy`).
    if format == Format::Json {
        match judge_json(gw, enf, guard, public, bytes).await? {
            Judged::Unchanged => return Ok(None),
            Judged::Changed(b) => return Ok(Some(b)),
            Judged::Tree => {}
        }
    }
    // JSON from the upstream is parsed straight away: serde_json refuses malformed input and bounds
    // nesting itself, and the client-side well-formedness walk (duplicate keys, depth) was a fifth of
    // a read's CPU here. XML is checked as it is converted.
    let parsed = match format {
        Format::Json => crate::fhir::parse::parse_wellformed(format, bytes),
        Format::Xml => crate::fhir::parse::parse(format, bytes),
    };
    let mut doc = parsed.map_err(GatewayError::not_fhir)?;
    if !judge_response(gw, enf, guard, public, &mut doc).await? {
        return Ok(None);
    }
    crate::fhir::parse::serialize(format, &doc)
        .map(Some)
        .map_err(|e| GatewayError::Internal(format!("re-encoding a filtered answer: {e}")))
}

/// What [`judge_json`] made of a JSON answer.
#[derive(Debug)]
enum Judged {
    /// Not an answer it handles (not a Bundle, or not splittable): judge the parsed tree instead.
    Tree,
    /// Judged, and nothing to change: the upstream's bytes go out as they are.
    Unchanged,
    /// Judged: the answer to send instead.
    Changed(Vec<u8>),
}

/// The response phase for a JSON Bundle answer (search, history, `$everything`) without building its
/// tree: each entry's resource is parsed only as far as its decision reads, and the answer is written
/// back from the upstream's own text, minus the withheld entries, with `total` left out and paging
/// links sealed exactly as [`judge_response`] does (see `fhir::lazy` for why).
async fn judge_json(
    gw: &Gateway,
    enf: &Enforcer,
    guard: &mut Guard,
    public: &str,
    bytes: &[u8],
) -> Result<Judged, GatewayError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(Judged::Tree);
    };
    let mut evals: Evals = HashMap::new();
    if guard.judge == Judge::Single {
        // A read: the upstream's bytes go out unchanged or not at all, so only what the decision
        // reads is parsed (the tree of a 3.6 KB Patient was a fifth of a read's CPU).
        // What is not plainly a resource goes through the tree, which refuses it as not FHIR.
        let Some(res) = RawObject::parse(text)
            .ok()
            .filter(|r| r.str("resourceType").is_some_and(|t| !t.is_empty()))
        else {
            return Ok(Judged::Tree);
        };
        let partial = elements(&res, Parsed::Compartment)?;
        let raw = Some((&res, Parsed::Compartment));
        return match judge_one(gw, enf, guard, &mut evals, &partial, raw).await? {
            Verdict::Admit => Ok(Judged::Unchanged),
            v => Err(refuse_read(enf, guard, v, &partial)),
        };
    }
    if guard.judge != Judge::Entries {
        return Ok(Judged::Tree);
    }
    let Some(bundle) = SplitBundle::parse(text) else {
        return Ok(Judged::Tree);
    };
    let mut keep = Vec::with_capacity(bundle.entries().len());
    // Verdicts that depend only on the type and the patients (see `memoizable`): a page of one
    // patient's Encounters is judged once, then each entry costs a look-up of whose it is.
    let mut memo: HashMap<(&str, Vec<String>), bool> = HashMap::new();
    for e in bundle.entries() {
        let admit = match e.resource() {
            Some(res) if !e.is_outcome() => {
                let key = res
                    .str("resourceType")
                    .filter(|t| !t.is_empty())
                    .and_then(|t| Some((t, compartment::patient_ids_raw(t, res)?)));
                match key.as_ref().and_then(|k| memo.get(k)) {
                    Some(admit) => *admit,
                    None => {
                        let partial = elements(res, Parsed::Compartment)?;
                        let raw = Some((res, Parsed::Compartment));
                        let admit = judge_one(gw, enf, guard, &mut evals, &partial, raw).await?
                            == Verdict::Admit;
                        if let Some(k) = key {
                            if memoizable(guard, &evals, &k, &partial) {
                                memo.insert(k, admit);
                            }
                        }
                        admit
                    }
                }
            }
            _ => true,
        };
        keep.push(admit);
    }
    write_judged(gw, enf, guard, public, &bundle, &keep)
}

/// The end of [`judge_json`] once every entry is judged (`keep`, by position): the record kept, the
/// paging links sealed and `total` kept or left out as [`judge_bundle`] does, and the answer written.
fn write_judged(
    gw: &Gateway,
    enf: &Enforcer,
    guard: &mut Guard,
    public: &str,
    bundle: &SplitBundle<'_>,
    keep: &[bool],
) -> Result<Judged, GatewayError> {
    let removed = keep.iter().filter(|k| !**k).count();
    let (links, next) = match bundle.link() {
        Some(raw) => {
            let mut doc = serde_json::json!({"link": serde_json::from_str::<Value>(raw.get())
                .map_err(|e| GatewayError::UpstreamBadResponse(format!("Bundle.link: {e}")))?});
            // Read before sealing, as the tree path does (see `judge_bundle`).
            let next = entries::has_next(doc.get("link"));
            let sealed = (seal_paging(gw, enf, guard, public, &mut doc) > 0)
                .then(|| serde_json::to_vec(&doc["link"]).unwrap_or_default());
            (sealed, next)
        }
        None => (None, false),
    };
    let keep_total = bundle.keeps_total(keep, next);
    let total_withheld = !keep_total && bundle.has_total();
    count_withheld(guard, removed, total_withheld);
    if removed == 0 && !total_withheld && links.is_none() {
        return Ok(Judged::Unchanged);
    }
    Ok(Judged::Changed(bundle.write_filtered(
        keep,
        keep_total,
        links.as_deref(),
    )))
}

/// How much of a resource's text is parsed into the tree [`judge_one`] is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parsed {
    /// The elements that say whose data it is (type, id and the Patient-compartment paths): all a
    /// decision reads when every patient's evaluation is constant, the common case (no consent with
    /// resource conditions). The rest is parsed only when an evaluation turns out to need it: building
    /// the trees of every entry's facts was over a quarter of a 50-entry search's CPU.
    Compartment,
    /// Those and the decision facts (`meta`, codes, authors, the dated element).
    Decision,
}

/// The elements of `res` that `parsed` names; the whole resource when it names no type.
fn elements(res: &RawObject<'_>, parsed: Parsed) -> Result<Value, GatewayError> {
    let rtype = res.str("resourceType").unwrap_or_default();
    if rtype.is_empty() {
        return res.full().map_err(GatewayError::not_fhir);
    }
    let (patients, decides) = (
        compartment::element_reader(rtype),
        facts::element_reader(rtype),
    );
    res.partial(|k| {
        matches!(k, "resourceType" | "id")
            || patients(k)
            || (parsed == Parsed::Decision && decides(k))
    })
    .map_err(GatewayError::not_fhir)
}

/// The keys of [`Evals`] a resource with these patients is judged under: one per patient, or, for a
/// compartment resource naming none, `None` (no consents: the default and organisation policies decide).
fn eval_keys(patients: &[String]) -> Vec<Option<String>> {
    if patients.is_empty() {
        vec![None]
    } else {
        patients
            .iter()
            .map(|p| Some(format!("Patient/{p}")))
            .collect()
    }
}

/// Whether [`judge_one`]'s verdict on a resource of type `rtype` whose patients are `patients` holds
/// for every resource of that type and those patients: its scope reads nothing in it (no granular
/// restriction), and consent and policy read nothing either (not patient data, or every patient's
/// evaluation is constant). Judging such a resource again would also add nothing to the record: the
/// same patients and the same reasons. `resource` (what was judged) must name the same patients.
fn memoizable(
    guard: &Guard,
    evals: &Evals,
    (rtype, patients): &(&str, Vec<String>),
    resource: &Value,
) -> bool {
    let unrestricted = match &*scope_for(guard, rtype) {
        ScopeDecision::Denied => true,
        ScopeDecision::Granted { restrictions } => restrictions.is_empty(),
    };
    if !unrestricted || compartment::patient_ids(resource) != *patients {
        return false;
    }
    if !compartment::is_compartment_type(rtype) {
        return true;
    }
    eval_keys(patients)
        .iter()
        .all(|k| evals.get(k).is_some_and(RequestEvaluation::is_constant))
}

/// The token's scopes for reading `rtype`: the request's own decision for its own type, else checked.
fn scope_for<'g>(guard: &'g Guard, rtype: &str) -> Cow<'g, ScopeDecision> {
    if guard.record.resource_type.as_deref() == Some(rtype) {
        Cow::Borrowed(&guard.scope)
    } else {
        Cow::Owned(guard.principal.scopes.check(rtype, Permission::Read))
    }
}

/// The engine's evaluation of this request per patient (`None`: no patient), made once per answer.
type Evals = HashMap<Option<String>, RequestEvaluation>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Admit,
    Withhold,
    OutOfScope,
}

/// One resource: granular scopes, then the consents of every patient whose data it is.
async fn judge_one(
    gw: &Gateway,
    enf: &Enforcer,
    guard: &mut Guard,
    evals: &mut Evals,
    resource: &Value,
    raw: Option<(&RawObject<'_>, Parsed)>,
) -> Result<Verdict, GatewayError> {
    // `raw`: `resource` holds only some elements (see `judge_json`); judged again with the decision
    // elements when an evaluation reads resource facts, and in full when granular scopes or `data`
    // provisions may read any other element.
    let full = |raw: &RawObject<'_>| raw.full().map_err(GatewayError::not_fhir);
    let rtype = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Granular scopes are per type: re-check for entries of other types (`_include`, `$everything`).
    let scope = scope_for(guard, rtype).into_owned();
    if let (Some((raw, _)), ScopeDecision::Granted { restrictions }) = (raw, &scope) {
        if !restrictions.is_empty() {
            let whole = full(raw)?;
            return Box::pin(judge_one(gw, enf, guard, evals, &whole, None)).await;
        }
    }
    let patients = compartment::patient_ids(resource);
    let launch = guard.principal.launch_patient.as_deref();
    let in_launch = |_: &Value| launch.is_some_and(|p| patients.iter().any(|id| id == p));
    if !scope.permits(resource, in_launch) {
        return Ok(Verdict::OutOfScope);
    }
    if !compartment::is_compartment_type(rtype) {
        // Not patient data (Practitioner, Organization, Medication...): consent does not govern it.
        return Ok(Verdict::Admit);
    }
    let Ok(facts) = ResourceFacts::new(resource) else {
        return Ok(Verdict::Withhold);
    };
    let keys = eval_keys(&patients);
    for key in &keys {
        if let Entry::Vacant(v) = evals.entry(key.clone()) {
            v.insert(evaluate(gw, enf, guard, key.as_deref()).await?);
        }
    }
    if let Some((raw, parsed)) = raw {
        let needs =
            |f: fn(&RequestEvaluation) -> bool| keys.iter().any(|k| evals.get(k).is_some_and(f));
        if needs(RequestEvaluation::reads_all_references) {
            let whole = full(raw)?;
            return Box::pin(judge_one(gw, enf, guard, evals, &whole, None)).await;
        }
        if parsed == Parsed::Compartment && needs(|e| !e.is_constant()) {
            let tree = elements(raw, Parsed::Decision)?;
            let raw = Some((raw, Parsed::Decision));
            return Box::pin(judge_one(gw, enf, guard, evals, &tree, raw)).await;
        }
    }
    let mut admit = true;
    for key in keys {
        let Some(eval) = evals.get(&key) else {
            continue;
        };
        if let Some(p) = &key {
            if !guard.record.patients.contains(p) {
                guard.record.patients.push(p.clone());
            }
        }
        let a = eval.admit(&facts);
        guard.record.break_glass |= a.permit && a.break_glass;
        for r in &a.reasons {
            if (!a.permit || a.break_glass || matches!(r, Reason::Consent { .. }))
                && !guard.reasons_seen.contains(r)
            {
                guard.reasons_seen.push(r.clone());
                guard
                    .record
                    .reasons
                    .push(serde_json::to_value(r).unwrap_or(Value::Null));
            }
        }
        admit &= a.permit;
    }
    Ok(if admit {
        Verdict::Admit
    } else {
        Verdict::Withhold
    })
}

/// The engine's evaluation of this request for one patient's ledger-checked consents.
async fn evaluate(
    gw: &Gateway,
    enf: &Enforcer,
    guard: &mut Guard,
    patient: Option<&str>,
) -> Result<RequestEvaluation, GatewayError> {
    let models: Vec<Arc<ConsentModel>> = match patient {
        None => Vec::new(),
        Some(p) => {
            let loaded = gw
                .consents
                .for_patient(p)
                .await
                .map_err(|e| GatewayError::Internal(format!("loading consents: {e}")))?;
            for t in &loaded.tampered {
                if !guard.record.tampered_consents.contains(t) {
                    guard.record.tampered_consents.push(t.clone());
                    gw.metrics.consent_integrity_alerts.inc();
                }
            }
            loaded.models.clone()
        }
    };
    let facts = match guard.facts.take() {
        Some(f) => f,
        None => facts_of(gw, enf, &guard.principal, guard.action).await,
    };
    let eval = enf.engine.evaluate(&facts, &models);
    guard.facts = Some(facts);
    Ok(eval)
}

/// Records the decision of a request that reached the upstream; break-glass records are written
/// before the response is released.
pub async fn finish(enf: &Enforcer, guard: &mut Guard, status: u16) -> String {
    if guard.record.outcome.is_empty() {
        // Not refused: permitted, with a filter if anything was withheld (the upstream may still
        // have failed).
        let w = guard.record.withheld;
        guard.record.outcome = if w > 0 {
            guard.record.obligations.push(format!("withheld:{w}"));
            "permit-with-filter"
        } else {
            "permit"
        }
        .into();
    }
    guard.record.status = status;
    finish_record(&mut guard.record, guard.started);
    let id = guard.record.id.clone();
    let rec = std::mem::take(&mut guard.record);
    // Security alerts are never left in a queue: the response waits until they are durable.
    if rec.break_glass || !rec.tampered_consents.is_empty() {
        tracing::warn!(decision = %id, break_glass = rec.break_glass, "SECURITY ALERT: {}",
            if rec.break_glass { "break-glass access" } else { "consent(s) not matching the ledger were ignored" });
        if let Err(e) = enf.recorder.record_durably(rec).await {
            tracing::error!(decision = %id, error = %e, "security-alert decision NOT recorded");
        }
    } else {
        enf.recorder.record(rec).await;
    }
    id
}

/// A batch or transaction: every entry must be allowed by the token's scopes, or the whole Bundle is
/// refused (a transaction is all or nothing; a batch is refused whole too, so a client learns of the
/// missing scope at once rather than entry by entry). The answers to its read entries are judged like
/// reads (see [`Judge::BatchReads`]).
pub async fn authorize_bundle(
    gw: &Gateway,
    guard: &mut Guard,
    bundle: &Value,
) -> Result<(), GatewayError> {
    let enf = &gw.enforcer;
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (n, e) in entries.iter().enumerate() {
        let at = format!("Bundle.entry[{n}].request");
        let method = e
            .pointer("/request/method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let url = e
            .pointer("/request/url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (path, query) = gw.upstream.relative(url).unwrap_or_else(|| {
            let (p, q) = url
                .split_once('?')
                .map_or((url, None), |(p, q)| (p, Some(q)));
            (p.trim_start_matches('/').to_owned(), q.map(str::to_owned))
        });
        let mut parts = path.split('/');
        let rtype = parts.next().unwrap_or_default().to_owned();
        let has_id = parts
            .next()
            .is_some_and(|s| !s.is_empty() && !s.starts_with('$'));
        let perm = match method {
            "GET" | "HEAD" if has_id => Permission::Read,
            "GET" | "HEAD" => Permission::Search,
            "POST" => Permission::Create,
            "PUT" | "PATCH" => Permission::Update,
            "DELETE" => Permission::Delete,
            // The validator has already refused anything else; refuse rather than guess.
            _ => Permission::Update,
        };
        if matches!(perm, Permission::Read | Permission::Search) {
            guard.bundle_reads.push(n);
        }
        let allowed = if rtype.is_empty() || rtype.starts_with('$') || rtype.starts_with('_') {
            guard.principal.scopes.check("*", perm)
        } else {
            guard.principal.scopes.check(&rtype, perm)
        };
        if allowed.is_denied() {
            let why = format!(
                "{at}: the token's scopes do not allow {} on {}; the whole Bundle is refused",
                perm_name(perm),
                if rtype.is_empty() {
                    "the server"
                } else {
                    rtype.as_str()
                }
            );
            return Err(deny(guard, "forbidden", "smart-scopes", why));
        }
        if let Some(resource) = e.get("resource") {
            super::write_authz::authorize_written(
                guard,
                &allowed,
                resource,
                &format!("Bundle.entry[{n}].resource"),
            )?;
        }
        let if_none_exist = e
            .pointer("/request/ifNoneExist")
            .and_then(Value::as_str)
            .unwrap_or_default();
        refuse_joins(
            enf,
            guard,
            &[
                (&format!("{at}.url"), query.as_deref().unwrap_or_default()),
                (&format!("{at}.ifNoneExist"), if_none_exist),
            ],
        )?;
    }
    if !guard.bundle_reads.is_empty() {
        guard.judge = Judge::BatchReads;
    }
    Ok(())
}
