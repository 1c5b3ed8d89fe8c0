//! Base FHIR R4 validation driven by the StructureDefinitions: structure, cardinality, types, primitive
//! formats, required bindings, fixed/pattern values and `maxLength`.
//!
//! The definitions are embedded in the binary ([`definitions`]) and compiled once into per-type element
//! trees ([`model`]); a validation is one walk over the resource's JSON ([`walk`]) that allocates only
//! when it finds an issue. Issues carry HL7-style FHIRPath locations
//! (`Bundle.entry[0].resource/*Patient/p1*/.name[0].given[1]`).
//!
//! ```
//! use anchorgate::validate::{is_valid, Validator};
//! let patient = serde_json::json!({"resourceType": "Patient", "gender": "female"});
//! assert!(is_valid(&Validator::r4().validate(&patient)));
//! ```
//!
//! FHIRPath invariants (`constraint`) are checked per element ([`invariant`]): natively for a few,
//! by the `rh-fhirpath` engine for the rest, best-practice ones only with [`Options::best_practice`].
//!
//! Not yet: slicing, profiles (`meta.profile` and configured ones: [`model`] compiles them already),
//! extension definitions and contexts, reference resolution, display checks and non-required bindings.

pub mod definitions;
pub mod enforce;
pub mod invariant;
pub mod model;
pub mod path;
pub mod primitive;
pub mod terminology;
pub mod values;
pub mod walk;
pub mod xhtml;

use std::sync::LazyLock;

use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueType, OperationOutcome, Severity};
use definitions::Definitions;
use model::Model;
use terminology::Terminology;

/// Compiled definitions, ready to validate against. `Send + Sync`; build once, share.
#[derive(Debug)]
pub struct Validator {
    pub(crate) model: Model,
    terms: Terminology,
    /// Why the definitions could not be loaded, if they could not: then every validation says so.
    broken: Option<String>,
}

static R4: LazyLock<Validator> = LazyLock::new(|| match Definitions::r4() {
    Ok(defs) => Validator::from_definitions(&defs),
    Err(e) => Validator {
        broken: Some(e.to_string()),
        ..Validator::from_definitions(&Definitions::default())
    },
});

impl Validator {
    /// The base R4 validator over the embedded definitions, compiled on first use.
    pub fn r4() -> &'static Validator {
        &R4
    }

    /// Compiles a validator from loaded definitions.
    pub fn from_definitions(defs: &Definitions) -> Self {
        let model = Model::compile(defs);
        let terms = Terminology::compile(defs, &model);
        Self {
            model,
            terms,
            broken: None,
        }
    }

    /// Validates one resource (FHIR JSON form), returning every error and warning found.
    pub fn validate(&self, resource: &Value) -> OperationOutcome {
        self.validate_with(resource, Options::default())
    }

    /// [`Self::validate`] with options.
    pub fn validate_with(&self, resource: &Value, options: Options) -> OperationOutcome {
        if let Some(why) = &self.broken {
            return OperationOutcome::single(Issue {
                severity: Severity::Fatal,
                code: IssueType::Exception,
                diagnostics: format!("the validator's definitions cannot be loaded: {why}"),
                expression: Vec::new(),
            });
        }
        let mut walker = walk::Walker::new(&self.model, &self.terms);
        walker.best_practice = options.best_practice;
        walker.resource(resource, true);
        OperationOutcome {
            issues: walker.issues,
        }
    }
}

/// What a validation checks beyond the errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also check best-practice (`severity: warning`) invariants such as `dom-6` ("a resource should
    /// have narrative"). They only ever add warnings, so the write path leaves them off.
    pub best_practice: bool,
}

/// Whether an outcome has no `error` or `fatal` issue.
pub fn is_valid(outcome: &OperationOutcome) -> bool {
    !outcome
        .issues
        .iter()
        .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
}

#[cfg(test)]
mod tests;
