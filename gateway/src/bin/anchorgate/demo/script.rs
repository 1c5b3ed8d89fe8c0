//! The demo's walk-through: for each role, a token and ready-to-paste shell lines that show one promise
//! of the gateway each.
//!
//! Every command is one line, preceded by a `# expect …` line saying what it prints last: an HTTP
//! status (`# expect 404`) or a command's success (`# expect exit 0`), optionally with a text the
//! output contains (`"intact"`) or must not contain (`!"706893006"`). The demo's end-to-end test runs
//! the lines in order in one shell and checks each expectation, so what the reader is told is tested.

use std::fmt::Write as _;

use super::load::{DemoPatient, WITHHELD_CODE};

/// One role of the walk-through.
#[derive(Debug)]
pub(crate) struct Role {
    /// The shell variable holding its token.
    pub(crate) var: &'static str,
    /// Who it is, in plain words.
    pub(crate) who: &'static str,
    /// Its token.
    pub(crate) token: String,
}

/// What the walk-through refers to.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// The gateway's root, e.g. `http://127.0.0.1:8080`.
    pub(crate) root: &'a str,
    /// The EHR's FHIR base.
    pub(crate) ehr: &'a str,
    /// The ledger's verifier key.
    pub(crate) verifier: &'a str,
    /// The three patients, in consent order.
    pub(crate) patients: &'a [DemoPatient],
    /// Clinician at Hospital One, clinician at Hospital Two, compliance reviewer.
    pub(crate) roles: [&'a Role; 3],
}

/// The id of the Condition the walk-through writes, verifies and has tampered with.
const WRITTEN: &str = "anchorgate-demo";
/// `curl` printing the body, then the status on a line of its own.
const CURL: &str = r#"curl -s -w '\n%{http_code}\n'"#;

struct Out(String);

impl Out {
    fn say(&mut self, text: &str) {
        for line in text.lines() {
            let _ = writeln!(self.0, "# {line}");
        }
    }
    fn step(&mut self, expect: &str, command: &str) {
        let _ = writeln!(self.0, "# expect {expect}\n{command}");
    }
    fn role(&mut self, r: &Role) {
        let _ = writeln!(
            self.0,
            "\n# --- {} ---\nexport {}='{}'",
            r.who, r.var, r.token
        );
    }
}

/// The walk-through's text.
pub(crate) fn render(c: &Context<'_>) -> String {
    let mut out = Out(String::new());
    let _ = writeln!(
        out.0,
        "# --- Where things are ---\nexport GW={} EHR={}",
        c.root, c.ehr
    );
    clinician(&mut out, c);
    outsider(&mut out, c);
    reviewer(&mut out, c);
    out.0
}

fn get(var: &str, path: &str) -> String {
    format!(r#"{CURL} -H "authorization: Bearer ${var}" "$GW{path}""#)
}

fn clinician(out: &mut Out, c: &Context<'_>) {
    let [open, _, withholding] = patient_refs(c);
    let able = c.roles[0];
    out.role(able);
    out.say(&format!(
        "A permitted read: {}'s consent permits treatment.",
        c.patients[0].name
    ));
    out.step(
        &format!("200 {:?}", family(&c.patients[0])),
        &get(able.var, &format!("/fhir/Patient/{open}")),
    );
    out.say(&format!(
        "A filtered search: {} has {} Conditions, but her consent withholds one diagnosis.\n\
         The gateway removes it from the answer, and drops Bundle.total, which would count it.",
        c.patients[2].name, c.patients[2].conditions
    ));
    out.step(
        &format!("200 !{WITHHELD_CODE:?}"),
        &get(able.var, &format!("/fhir/Condition?patient={withholding}")),
    );
    let body = format!(
        r#"{{"resourceType":"Condition","id":"{WRITTEN}","clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}}]}},"code":{{"coding":[{{"system":"http://snomed.info/sct","code":"367498001","display":"Seasonal allergic rhinitis"}}]}},"subject":{{"reference":"Patient/{open}"}},"note":[{{"text":"Written through Anchorgate"}}]}}"#
    );
    out.say(
        "A write: validated, forwarded to the EHR, and anchored on the ledger before the answer.\n\
         The headers name its ledger leaf (x-anchorgate-leaf-index) and its decision record.",
    );
    out.step(
        "201 \"x-anchorgate-leaf-index\"",
        &format!(
            r#"curl -s -o /dev/null -D - -w '%{{http_code}}\n' -X PUT -H "authorization: Bearer ${}" -H 'content-type: application/fhir+json' -d '{body}' "$GW/fhir/Condition/{WRITTEN}""#,
            able.var
        ),
    );
    let verify = format!("/fhir/Condition/{WRITTEN}/\\$verify");
    out.say("$verify: the EHR's copy is exactly what was anchored.");
    out.step("200 \"intact\"", &get(able.var, &verify));
    out.say("Now someone edits the record directly in the EHR, behind the gateway's back ...");
    out.step(
        "200",
        &format!(
            r#"curl -s "$EHR/Condition/{WRITTEN}" | sed 's/Written through Anchorgate/Edited behind the gateway/' | curl -s -o /dev/null -w '%{{http_code}}\n' -X PUT -H 'content-type: application/fhir+json' --data-binary @- "$EHR/Condition/{WRITTEN}""#
        ),
    );
    out.say("... and $verify proves it: the EHR's copy no longer matches its anchor.");
    out.step("200 \"tampered\"", &get(able.var, &verify));
}

fn outsider(out: &mut Out, c: &Context<'_>) {
    let [open, refusing, _] = patient_refs(c);
    let x = c.roles[1];
    out.role(x);
    out.say(&format!(
        "A withheld read: {}'s consent refuses Hospital Two. The answer is 404, exactly as for\n\
         a record that does not exist, so that the refusal itself is not disclosed.",
        c.patients[1].name
    ));
    out.step(
        &format!("404 !{:?}", family(&c.patients[1])),
        &get(x.var, &format!("/fhir/Patient/{refusing}")),
    );
    out.say(&format!(
        "The same clinician may read {}, whose consent permits treatment by anyone.",
        c.patients[0].name
    ));
    out.step("200", &get(x.var, &format!("/fhir/Patient/{open}")));
}

fn reviewer(out: &mut Out, c: &Context<'_>) {
    let [_, refusing, _] = patient_refs(c);
    let (x, r) = (c.roles[1], c.roles[2]);
    out.role(r);
    out.say(
        "Every answer names its decision record (x-anchorgate-decision). Keep the id of the\n\
         withheld read above:",
    );
    out.step(
        "exit 0",
        &format!(
            r#"DECISION=$(curl -s -o /dev/null -D - -H "authorization: Bearer ${}" "$GW/fhir/Patient/{refusing}" | tr -d '\r' | awk 'tolower($1)=="x-anchorgate-decision:" {{print $2}}'); echo "$DECISION""#,
            x.var
        ),
    );
    out.say(
        "The decision record: who asked, for what purpose, the outcome, the consent and provision\n\
         that decided it, an explanation in words, and a receipt proving the record is on the ledger.",
    );
    out.step(
        "200 \"explanation\"",
        &get(r.var, "/audit/decisions/$DECISION"),
    );
    out.say(&format!("Every decision about {}:", c.patients[1].name));
    out.step(
        "200 \"decisions\"",
        &get(
            r.var,
            &format!("/audit/decisions?patient=Patient/{refusing}"),
        ),
    );
    out.say("The ledger's signed checkpoint (C2SP tlog-checkpoint), public:");
    out.step(
        "200 \"demo.anchorgate.invalid/ledger\"",
        &format!(r#"{CURL} "$GW/ledger/checkpoint""#),
    );
    out.say(
        "Anyone can verify the whole ledger with its verifier key: the signature, every tile and\n\
         every entry recomputing to the checkpoint's root.",
    );
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "anchorgate".to_owned());
    out.step(
        "exit 0 \"\\\"ok\\\":true\"",
        &format!(
            r#"'{exe}' ledger verify --url "$GW/ledger" --key '{}'"#,
            c.verifier
        ),
    );
}

fn patient_refs(c: &Context<'_>) -> [String; 3] {
    [0, 1, 2].map(|n| c.patients.get(n).map(|p| p.id.clone()).unwrap_or_default())
}

fn family(p: &DemoPatient) -> String {
    p.name.rsplit(' ').next().unwrap_or_default().to_owned()
}
