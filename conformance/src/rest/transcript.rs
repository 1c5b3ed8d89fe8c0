//! Performing a check's HTTP steps against one base and recording what came back (the transcript).

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

/// `application/fhir+json`.
pub const FHIR_JSON: &str = "application/fhir+json";
/// `application/fhir+xml`.
pub const FHIR_XML: &str = "application/fhir+xml";

/// The HTTP client the checks run with (shared by the upstream and the gateway runs).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client as built by [`crate::http_client`], sending `bearer` with every request if given.
    pub fn new(bearer: Option<&str>) -> Result<Self> {
        Ok(Client {
            http: crate::http_client_with(bearer)?,
        })
    }

    /// The underlying reqwest client.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }
}

/// One request: a method, a target relative to the base (or an absolute URL), headers, a body.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    unordered: bool,
}

impl Call {
    /// A request with `method` to `target` (`Patient/1`, `?x=y`, `""` for the base, or an absolute URL).
    pub fn new(method: Method, target: impl Into<String>) -> Self {
        Call {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: None,
            unordered: false,
        }
    }
    /// `GET target`.
    pub fn get(target: impl Into<String>) -> Self {
        Self::new(Method::GET, target)
    }
    /// `HEAD target`.
    pub fn head(target: impl Into<String>) -> Self {
        Self::new(Method::HEAD, target)
    }
    /// `POST target`.
    pub fn post(target: impl Into<String>) -> Self {
        Self::new(Method::POST, target)
    }
    /// `PUT target`.
    pub fn put(target: impl Into<String>) -> Self {
        Self::new(Method::PUT, target)
    }
    /// `PATCH target`.
    pub fn patch(target: impl Into<String>) -> Self {
        Self::new(Method::PATCH, target)
    }
    /// `DELETE target`.
    pub fn delete(target: impl Into<String>) -> Self {
        Self::new(Method::DELETE, target)
    }
    /// Adds a request header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
    /// Marks the response's Bundle entries as in no defined order (the upstream returns included
    /// or compartment resources in storage order): they are compared sorted by their normalised content.
    pub fn unordered(mut self) -> Self {
        self.unordered = true;
        self
    }
    /// `Accept: application/fhir+xml`.
    pub fn accept_xml(self) -> Self {
        self.header("Accept", FHIR_XML)
    }
    /// A body with its content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = Some(body.into());
        self
    }
    /// A FHIR JSON body.
    pub fn json(self, v: &Value) -> Self {
        let bytes = serde_json::to_vec(v).unwrap_or_default();
        self.body(FHIR_JSON, bytes)
    }
    /// A FHIR XML body.
    pub fn xml(self, text: &str) -> Self {
        self.body(FHIR_XML, text.as_bytes().to_vec())
    }
    /// An `application/x-www-form-urlencoded` body.
    pub fn form(self, text: &str) -> Self {
        self.body(
            "application/x-www-form-urlencoded",
            text.as_bytes().to_vec(),
        )
    }
    fn line(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

/// A response as received.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The request that produced it (`METHOD target`).
    pub request: String,
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Fails unless the status is `code`.
    pub fn expect(self, code: u16) -> Result<Resp> {
        if self.status != code {
            bail!(
                "{}: expected status {code}, got {}: {}",
                self.request,
                self.status,
                snippet(&String::from_utf8_lossy(&self.body), 300)
            );
        }
        Ok(self)
    }
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("{}: body is not JSON", self.request))
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `id` of the resource in a JSON body.
    pub fn id(&self) -> Result<String> {
        self.json()?
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{}: body has no id", self.request))
    }
    /// The logical id in the `Location` header (`…/Type/id/_history/n`).
    pub fn location_id(&self) -> Result<String> {
        let loc = self
            .header("location")
            .ok_or_else(|| anyhow!("{}: no Location header", self.request))?;
        id_from_url(loc).ok_or_else(|| anyhow!("{}: cannot read an id from {loc}", self.request))
    }
    /// The `next` link of a Bundle (JSON or XML body).
    pub fn next_link(&self) -> Option<String> {
        if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
            return v.get("link")?.as_array()?.iter().find_map(|l| {
                (l.get("relation")?.as_str()? == "next")
                    .then(|| l.get("url")?.as_str().map(str::to_owned))?
            });
        }
        let text = self.text();
        let at = text.find("<relation value=\"next\"/>")?;
        let rest = &text[at..];
        let start = rest.find("<url value=\"")? + "<url value=\"".len();
        let end = rest[start..].find('"')?;
        Some(xml_unescape(&rest[start..start + end]))
    }
}

/// The logical id in a URL or reference `…/Type/id[/_history/n]`.
pub fn id_from_url(url: &str) -> Option<String> {
    let path = url.split('?').next().unwrap_or(url);
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let n = parts.len();
    if n >= 4 && parts[n - 2] == "_history" {
        return Some(parts[n - 3].to_owned());
    }
    parts
        .last()
        .filter(|s| !s.is_empty())
        .map(|s| (*s).to_owned())
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub fn snippet(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

/// One recorded step.
#[derive(Debug, Clone)]
pub struct Step {
    /// `METHOD target` as sent.
    pub request: String,
    /// The response.
    pub resp: Resp,
    /// Whether Bundle entries are compared regardless of order.
    pub unordered: bool,
}

/// What a check did against one base: the recorded steps, plus responses that are only checked for
/// leaks (e.g. polls whose number varies), plus check-specific literal redactions.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// Recorded steps, compared between the upstream and the gateway.
    pub steps: Vec<Step>,
    /// Responses not compared but still checked for a leaked upstream base.
    pub unrecorded: Vec<Resp>,
    /// `(literal, placeholder)` pairs replaced before comparing (e.g. a `_since` instant).
    pub redactions: Vec<(String, String)>,
}

/// A check's view of one base: sends calls and records them into a transcript.
#[derive(Debug)]
pub struct Session<'a> {
    client: &'a Client,
    base: &'a str,
    transcript: Transcript,
}

impl<'a> Session<'a> {
    /// A new session against `base` (no trailing slash).
    pub fn new(client: &'a Client, base: &'a str) -> Self {
        Session {
            client,
            base: base.trim_end_matches('/'),
            transcript: Transcript::default(),
        }
    }

    /// The base this session talks to.
    pub fn base(&self) -> &str {
        self.base
    }

    /// Sends `call` and records it as a step.
    pub fn send(&mut self, call: Call) -> Result<Resp> {
        let resp = self.perform(&call)?;
        self.transcript.steps.push(Step {
            request: call.line(),
            resp: resp.clone(),
            unordered: call.unordered,
        });
        Ok(resp)
    }

    /// Sends `call` without recording it for comparison (it is still checked for leaks).
    pub fn send_unrecorded(&mut self, call: Call) -> Result<Resp> {
        let resp = self.perform(&call)?;
        self.transcript.unrecorded.push(resp.clone());
        Ok(resp)
    }

    /// Replaces `literal` by `placeholder` in this transcript before comparing.
    pub fn redact(&mut self, literal: impl Into<String>, placeholder: &str) {
        let literal = literal.into();
        if !literal.is_empty() {
            self.transcript
                .redactions
                .push((literal, placeholder.to_owned()));
        }
    }

    /// Follows `next` links from `first` (with the given request headers) until there are none;
    /// returns the pages fetched after `first`.
    pub fn follow_next(&mut self, first: &Resp, headers: &[(&str, &str)]) -> Result<Vec<Resp>> {
        let mut pages = Vec::new();
        let mut next = first.next_link();
        while let Some(url) = next {
            if pages.len() >= 50 {
                bail!("more than 50 pages following next links");
            }
            let mut call = Call::get(url);
            for (k, v) in headers {
                call = call.header(k, *v);
            }
            let page = self.send(call)?.expect(200)?;
            // The link's form is the server's own (the upstream's paging URL, the gateway's
            // principal-bound cursor): what is compared is that following it yields the same page.
            if let Some(step) = self.transcript.steps.last_mut() {
                step.request = "GET <next link>".into();
            }
            next = page.next_link();
            pages.push(page);
        }
        Ok(pages)
    }

    /// [`Self::follow_next`], requiring exactly `expected` further pages.
    pub fn follow_pages(
        &mut self,
        first: &Resp,
        headers: &[(&str, &str)],
        expected: usize,
    ) -> Result<()> {
        let pages = self.follow_next(first, headers)?;
        anyhow::ensure!(
            pages.len() == expected,
            "expected {expected} further pages, got {}",
            pages.len()
        );
        Ok(())
    }

    /// The finished transcript.
    pub fn finish(self) -> Transcript {
        self.transcript
    }

    fn url(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else if target.is_empty() || target.starts_with('?') {
            format!("{}{target}", self.base)
        } else {
            format!("{}/{target}", self.base)
        }
    }

    fn perform(&self, call: &Call) -> Result<Resp> {
        let url = self.url(&call.target);
        let mut req = self.client.http.request(call.method.clone(), &url);
        for (k, v) in &call.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = &call.body {
            req = req.body(b.clone());
        }
        let r = req
            .send()
            .with_context(|| format!("{} {url}: request failed", call.method))?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r
            .bytes()
            .with_context(|| format!("{} {url}: reading the body failed", call.method))?
            .to_vec();
        Ok(Resp {
            request: call.line(),
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_urls() {
        assert_eq!(
            id_from_url("http://h/fhir/Patient/abc/_history/2").as_deref(),
            Some("abc")
        );
        assert_eq!(id_from_url("Patient/abc").as_deref(), Some("abc"));
        assert_eq!(
            id_from_url("http://h/fhir/Patient/x?y=1").as_deref(),
            Some("x")
        );
    }

    #[test]
    fn next_links_json_and_xml() {
        let mk = |body: &str| Resp {
            request: "GET x".into(),
            status: 200,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        };
        let j = mk(r#"{"link":[{"relation":"self","url":"a"},{"relation":"next","url":"b"}]}"#);
        assert_eq!(j.next_link().as_deref(), Some("b"));
        let x = mk(
            r#"<Bundle><link><relation value="next"/><url value="http://h/P?a=1&amp;b=2"/></link></Bundle>"#,
        );
        assert_eq!(x.next_link().as_deref(), Some("http://h/P?a=1&b=2"));
        assert_eq!(mk(r#"{"link":[]}"#).next_link(), None);
    }
}
