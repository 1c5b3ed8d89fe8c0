//! FHIR `OperationOutcome`: the one shape every error (and every warning) takes, rendered in JSON or XML.

use bytes::Bytes;
use quick_xml::escape::escape;
use serde_json::{json, Value};

use super::format::Format;

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The request cannot be processed.
    Fatal,
    /// The content or request is in error.
    Error,
    /// A potential problem that does not block.
    Warning,
    /// Information only.
    Information,
}

/// `OperationOutcome.issue.code`: the FHIR IssueType codes the gateway emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueType {
    /// `invalid`: content is invalid against the specification or a profile.
    Invalid,
    /// `structure`: a structural issue, e.g. malformed JSON or XML.
    Structure,
    /// `required`: a required element is missing.
    Required,
    /// `value`: an element's value is not acceptable.
    Value,
    /// `code-invalid`: a code is not in the value set or code system it must come from.
    CodeInvalid,
    /// `invariant`: a rule of the specification (an invariant) is broken.
    Invariant,
    /// `security`: an authentication or authorisation failure.
    Security,
    /// `login`: the client must authenticate.
    Login,
    /// `forbidden`: the caller may not perform this action.
    Forbidden,
    /// `not-supported`: the operation or content is not supported.
    NotSupported,
    /// `not-found`: the route or resource does not exist.
    NotFound,
    /// `too-costly`: the request is too large or expensive.
    TooCostly,
    /// `timeout`: a time limit was exceeded.
    Timeout,
    /// `transient`: a temporary failure; retrying may work.
    Transient,
    /// `exception`: an unexpected internal error.
    Exception,
    /// `conflict`: a version or state conflict.
    Conflict,
    /// `processing`: processing failure.
    Processing,
    /// `informational`: no problem.
    Informational,
}

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// How bad it is.
    pub severity: Severity,
    /// What kind of problem.
    pub code: IssueType,
    /// A human-readable explanation. Must not contain PHI or secrets.
    pub diagnostics: String,
    /// FHIRPath expressions locating the problem, when there is one.
    pub expression: Vec<String>,
}

/// A whole `OperationOutcome`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationOutcome {
    /// The issues, most important first.
    pub issues: Vec<Issue>,
}

impl Severity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

impl IssueType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::Invariant => "invariant",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Forbidden => "forbidden",
            IssueType::NotSupported => "not-supported",
            IssueType::NotFound => "not-found",
            IssueType::TooCostly => "too-costly",
            IssueType::Timeout => "timeout",
            IssueType::Transient => "transient",
            IssueType::Exception => "exception",
            IssueType::Conflict => "conflict",
            IssueType::Processing => "processing",
            IssueType::Informational => "informational",
        }
    }
}

impl Issue {
    /// An issue of severity `error`.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    /// Adds a FHIRPath expression locating the issue.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }
}

impl OperationOutcome {
    /// An outcome holding one issue.
    pub fn single(issue: Issue) -> Self {
        Self {
            issues: vec![issue],
        }
    }

    /// The FHIR JSON form.
    pub fn to_json(&self) -> Value {
        let issues: Vec<Value> = self
            .issues
            .iter()
            .map(|i| {
                let mut v = json!({
                    "severity": i.severity.code(),
                    "code": i.code.code(),
                    "diagnostics": i.diagnostics,
                });
                if !i.expression.is_empty() {
                    v["expression"] = json!(i.expression);
                }
                v
            })
            .collect();
        json!({ "resourceType": "OperationOutcome", "issue": issues })
    }

    /// The FHIR XML form.
    pub fn to_xml(&self) -> String {
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OperationOutcome xmlns=\"http://hl7.org/fhir\">",
        );
        for i in &self.issues {
            out.push_str("<issue><severity value=\"");
            out.push_str(i.severity.code());
            out.push_str("\"/><code value=\"");
            out.push_str(i.code.code());
            out.push_str("\"/><diagnostics value=\"");
            out.push_str(&escape(i.diagnostics.as_str()));
            out.push_str("\"/>");
            for e in &i.expression {
                out.push_str("<expression value=\"");
                out.push_str(&escape(e.as_str()));
                out.push_str("\"/>");
            }
            out.push_str("</issue>");
        }
        out.push_str("</OperationOutcome>");
        out
    }

    /// The body bytes in `format`.
    pub fn render(&self, format: Format) -> Bytes {
        match format {
            Format::Json => Bytes::from(self.to_json().to_string()),
            Format::Xml => Bytes::from(self.to_xml()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_json_and_xml() {
        let oo = OperationOutcome::single(
            Issue::error(IssueType::Structure, "bad <thing> & \"more\"").at("Patient.name[0]"),
        );
        let j = oo.to_json();
        assert_eq!(j["issue"][0]["code"], "structure");
        assert_eq!(j["issue"][0]["expression"][0], "Patient.name[0]");
        let x = oo.to_xml();
        assert!(x.contains("<diagnostics value=\"bad &lt;thing&gt; &amp; &quot;more&quot;\"/>"));
        assert!(x.contains("<expression value=\"Patient.name[0]\"/>"));
    }
}
