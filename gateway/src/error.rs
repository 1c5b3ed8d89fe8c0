//! Gateway errors, and the one place that turns each into an HTTP status and a FHIR OperationOutcome.
//!
//! Every stage returns a [`GatewayError`]; [`GatewayError::into_response`] is the single "rescue" that
//! classifies it, so a status code or IssueType is decided nowhere else.

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::fhir::{Format, Issue, IssueType, OperationOutcome, RouteError};

/// Who a failure belongs to, as pingora records it: the client, the upstream, or the gateway itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something unacceptable.
    Downstream,
    /// The upstream EHR failed.
    Upstream,
    /// The gateway failed.
    Internal,
}

/// Everything that can go wrong with one request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The path is not a FHIR route, or not with this method.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The path is outside the FHIR base and the admin endpoints.
    #[error("no endpoint at this path; the FHIR API is under {0}")]
    NoEndpoint(String),
    /// The request body's media type is not acceptable for this interaction.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request body is larger than the limit.
    #[error("request body exceeds the limit of {0} bytes")]
    BodyTooLarge(usize),
    /// The request body is within the size limit but over a structural one (`limits.max_nodes`,
    /// `limits.max_xml_attributes`, `limits.max_bundle_entries`): 413, as for a body too large.
    #[error("{0}")]
    BodyTooCostly(String),
    /// Applying a PATCH would pass `limits.max_request_body` or `limits.max_nodes`, nest too deep, or
    /// take too much work: 422, RFC 5789's status for a patch the server will not apply, since the
    /// patch document itself is acceptable.
    #[error("{0}")]
    PatchTooCostly(String),
    /// The request body is not well-formed.
    #[error("{message}")]
    MalformedBody {
        /// What is wrong, with a position.
        message: String,
        /// FHIRPath of the element that is wrong (the resource root when the body cannot be parsed).
        expression: Option<String>,
    },
    /// The resource is not valid FHIR R4; the outcome lists every issue.
    #[error("the resource is not valid FHIR R4")]
    Invalid(OperationOutcome),
    /// The request is unacceptable for another reason.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// FHIRPath or parameter locating the problem.
        expression: Option<String>,
    },
    /// The client did not send its body in time.
    #[error("the request body was not received within {0} ms")]
    ClientTimeout(u128),
    /// The gateway is at its concurrency limit.
    #[error("the gateway is at capacity; retry shortly")]
    Overloaded,
    /// The upstream could not be reached or dropped the connection.
    #[error("the upstream FHIR server could not be reached")]
    UpstreamUnreachable,
    /// The upstream did not answer in time.
    #[error("the upstream FHIR server did not answer within {0} ms")]
    UpstreamTimeout(u128),
    /// The upstream's response could not be used.
    #[error("the upstream FHIR server sent an unusable response: {0}")]
    UpstreamBadResponse(String),
    /// A bug or resource failure inside the gateway.
    #[error("internal gateway error (request id {0})")]
    Internal(String),
    /// The ledger cannot anchor now, so writes are refused before they reach the upstream.
    #[error("writes are refused: the ledger cannot make entries durable ({0})")]
    LedgerUnavailable(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Something the gateway itself serves (a tile, a proof, an anchor) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request's identity was refused: no or bad bearer token (401 with `WWW-Authenticate`), an
    /// unreadable purpose header (400), a purpose or organisation the token does not allow (403).
    #[error(transparent)]
    Auth(#[from] crate::identity::AuthError),
}

impl GatewayError {
    /// A 400 with a message and optional location.
    pub fn bad_request(message: impl Into<String>, expression: Option<String>) -> Self {
        GatewayError::BadRequest {
            message: message.into(),
            expression,
        }
    }

    /// A 502 for an upstream answer that does not parse as FHIR.
    pub fn not_fhir(e: impl std::fmt::Display) -> Self {
        GatewayError::UpstreamBadResponse(format!("the answer is not FHIR: {e}"))
    }

    /// Who failed.
    pub fn side(&self) -> Side {
        match self {
            GatewayError::UpstreamUnreachable
            | GatewayError::UpstreamTimeout(_)
            | GatewayError::UpstreamBadResponse(_) => Side::Upstream,
            GatewayError::Internal(_)
            | GatewayError::Overloaded
            | GatewayError::LedgerUnavailable(_)
            | GatewayError::Auth(crate::identity::AuthError::Unavailable(_)) => Side::Internal,
            _ => Side::Downstream,
        }
    }

    /// The HTTP status and FHIR IssueType for this error.
    pub fn classify(&self) -> (StatusCode, IssueType) {
        use GatewayError as E;
        match self {
            E::Route(RouteError::UnknownRoute | RouteError::UnknownType(_)) | E::NoEndpoint(_) => {
                (StatusCode::NOT_FOUND, IssueType::NotFound)
            }
            E::Route(RouteError::BadId(_)) => (StatusCode::BAD_REQUEST, IssueType::Value),
            E::Route(RouteError::MethodNotAllowed { .. }) => {
                (StatusCode::METHOD_NOT_ALLOWED, IssueType::NotSupported)
            }
            E::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, IssueType::NotSupported)
            }
            E::BodyTooLarge(_) | E::BodyTooCostly(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, IssueType::TooCostly)
            }
            E::PatchTooCostly(_) => (StatusCode::UNPROCESSABLE_ENTITY, IssueType::TooCostly),
            E::MalformedBody { .. } => (StatusCode::BAD_REQUEST, IssueType::Structure),
            E::BadRequest { .. } => (StatusCode::BAD_REQUEST, IssueType::Invalid),
            E::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, IssueType::Invalid),
            E::ClientTimeout(_) => (StatusCode::REQUEST_TIMEOUT, IssueType::Timeout),
            E::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, IssueType::Transient),
            E::UpstreamUnreachable => (StatusCode::BAD_GATEWAY, IssueType::Transient),
            E::UpstreamTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, IssueType::Timeout),
            E::UpstreamBadResponse(_) => (StatusCode::BAD_GATEWAY, IssueType::Exception),
            E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception),
            E::LedgerUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, IssueType::Transient),
            E::NotFound(_) => (StatusCode::NOT_FOUND, IssueType::NotFound),
            E::Forbidden(_) => (StatusCode::FORBIDDEN, IssueType::Forbidden),
            E::Auth(a) => {
                let status = a.status();
                let code = match status {
                    StatusCode::UNAUTHORIZED => IssueType::Login,
                    StatusCode::FORBIDDEN => IssueType::Forbidden,
                    StatusCode::BAD_REQUEST => IssueType::Invalid,
                    _ => IssueType::Transient,
                };
                (status, code)
            }
        }
    }

    /// The OperationOutcome for this error.
    pub fn outcome(&self) -> OperationOutcome {
        if let GatewayError::Invalid(outcome) = self {
            return outcome.clone();
        }
        let (_, code) = self.classify();
        let mut issue = Issue::error(code, self.to_string());
        match self {
            GatewayError::MalformedBody {
                expression: Some(e),
                ..
            }
            | GatewayError::BadRequest {
                expression: Some(e),
                ..
            } => issue = issue.at(e.clone()),
            _ => {}
        }
        OperationOutcome::single(issue)
    }

    /// The complete response, in the client's format.
    pub fn into_response(self, format: Format) -> Response<Body> {
        let (status, _) = self.classify();
        let mut resp = outcome_response(status, &self.outcome(), format);
        let headers = resp.headers_mut();
        match &self {
            GatewayError::Overloaded
            | GatewayError::LedgerUnavailable(_)
            | GatewayError::Auth(crate::identity::AuthError::Unavailable(_)) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            GatewayError::Auth(a) => {
                if let Some(challenge) = a.www_authenticate() {
                    headers.insert(http::header::WWW_AUTHENTICATE, challenge);
                }
            }
            GatewayError::Route(RouteError::MethodNotAllowed { allowed, .. }) => {
                headers.insert(http::header::ALLOW, HeaderValue::from_static(allowed));
            }
            _ => {}
        }
        resp
    }
}

/// A ledger that cannot answer (a store read failed) makes the request fail as unavailable; the cause
/// is logged, never sent.
impl From<crate::ledger::LedgerError> for GatewayError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        tracing::error!(error = %e, "ledger read failed");
        GatewayError::LedgerUnavailable(e.to_string())
    }
}

/// A consent the gateway cannot enforce faithfully is refused as unprocessable (422), with the
/// FHIRPath of the element at fault.
impl From<crate::policy::ConsentError> for GatewayError {
    fn from(e: crate::policy::ConsentError) -> Self {
        GatewayError::Invalid(OperationOutcome::single(
            Issue::error(IssueType::Processing, e.message).at(e.expression),
        ))
    }
}

/// A response carrying `outcome` with `status`.
pub fn outcome_response(
    status: StatusCode,
    outcome: &OperationOutcome,
    format: Format,
) -> Response<Body> {
    let mut resp = Response::new(body::full(outcome.render(format)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, format.content_type());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(GatewayError::BodyTooLarge(1).classify().0, 413);
        assert_eq!(
            GatewayError::BodyTooCostly("x".into()).classify(),
            (StatusCode::PAYLOAD_TOO_LARGE, IssueType::TooCostly)
        );
        assert_eq!(
            GatewayError::PatchTooCostly("x".into()).classify(),
            (StatusCode::UNPROCESSABLE_ENTITY, IssueType::TooCostly)
        );
        assert_eq!(GatewayError::UpstreamTimeout(5).classify().0, 504);
        assert_eq!(GatewayError::UpstreamUnreachable.classify().0, 502);
        assert_eq!(GatewayError::ClientTimeout(5).classify().0, 408);
        assert_eq!(
            GatewayError::UnsupportedMediaType("x".into()).classify().0,
            415
        );
        assert_eq!(
            GatewayError::Route(RouteError::UnknownRoute).classify().0,
            404
        );
        let r = GatewayError::Overloaded.into_response(Format::Xml);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        assert!(r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+xml"));
    }

    #[test]
    fn auth_errors_carry_their_challenge() {
        use crate::identity::{AuthError, TokenProblem};
        let r = GatewayError::from(AuthError::MissingToken).into_response(Format::Json);
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[http::header::WWW_AUTHENTICATE],
            "Bearer realm=\"anchorgate\""
        );
        let e = GatewayError::from(AuthError::InvalidToken(TokenProblem::AlgNone));
        assert_eq!(e.classify(), (StatusCode::UNAUTHORIZED, IssueType::Login));
        let r = e.into_response(Format::Json);
        let challenge = r.headers()[http::header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(challenge.starts_with(
            "Bearer realm=\"anchorgate\", error=\"invalid_token\", error_description=\""
        ));
        assert!(challenge.contains("alg 'none'"), "{challenge}");
        let e = GatewayError::from(AuthError::Forbidden("purpose HRESCH ...".into()));
        assert_eq!(e.classify(), (StatusCode::FORBIDDEN, IssueType::Forbidden));
        assert!(e
            .into_response(Format::Json)
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .is_none());
        let r = GatewayError::from(AuthError::Unavailable("x".into())).into_response(Format::Json);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn expression_is_carried() {
        let e = GatewayError::MalformedBody {
            message: "malformed JSON".into(),
            expression: Some("Patient".into()),
        };
        assert_eq!(
            e.outcome().issues[0].expression,
            vec!["Patient".to_string()]
        );
        assert_eq!(e.outcome().issues[0].code, IssueType::Structure);
    }
}
