//! Performing one fetch with reqwest: the allow-list on the URL and on every
//! redirect hop (followed here, at most `MAX_REDIRECTS`), a DNS resolver that
//! only hands out addresses the policy accepts (so the address checked is the
//! address connected to), the body cap, and our User-Agent.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use url::{Host, Url};

use super::policy::{class, Policy, Refused};
use crate::bindings::aiwebengine::script::fetch::{FetchRequest, FetchResponse};

/// Redirects followed before a fetch fails, as browsers do (20) but tighter.
pub const MAX_REDIRECTS: usize = 10;

/// Headers a script may not set: the transport's own, or ones that would
/// let it talk to a different destination than the URL names.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
];

/// Headers dropped when a redirect leaves the origin, as browsers do.
const CREDENTIAL_HEADERS: &[HeaderName] = &[header::AUTHORIZATION, header::COOKIE];

pub struct Client {
    http: reqwest::Client,
    policy: Arc<Policy>,
    max_bytes: usize,
    user_agent: HeaderValue,
}

impl Client {
    pub fn new(policy: Arc<Policy>, max_bytes: usize) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let http = reqwest::Client::builder()
            // No proxy from the host's environment, no automatic redirects
            // (each hop is checked below), only checked addresses.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .build()
            .context("building the fetch client")?;
        Ok(Client {
            http,
            policy,
            max_bytes,
            user_agent: HeaderValue::from_static(concat!(
                "aiwebengine/",
                env!("CARGO_PKG_VERSION")
            )),
        })
    }

    /// Checks what can be checked before anything goes on the network.
    pub fn prepare(&self, req: FetchRequest) -> Result<Prepared, String> {
        let url = Url::parse(&req.url).map_err(|e| format!("invalid URL {:?}: {e}", req.url))?;
        let method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| format!("invalid method {:?}", req.method))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            if FORBIDDEN_HEADERS.contains(&name.as_str()) {
                return Err(format!("the header {name:?} cannot be set by a script"));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name:?}"))?;
            headers.append(name, value);
        }
        self.policy.check_url(&url).map_err(|e| e.0)?;
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, self.user_agent.clone());
        }
        Ok(Prepared {
            url,
            method,
            headers,
            body: Bytes::from(req.body),
        })
    }

    /// Sends the request, following redirects, and reads the body.
    pub async fn send(&self, mut req: Prepared) -> Result<FetchResponse, String> {
        for hop in 0..=MAX_REDIRECTS {
            if hop > 0 {
                self.policy
                    .check_url(&req.url)
                    .map_err(|e| format!("redirect to {}", e.0))?;
            }
            let mut builder = self
                .http
                .request(req.method.clone(), req.url.clone())
                .headers(req.headers.clone());
            if !req.body.is_empty() {
                builder = builder.body(req.body.clone());
            }
            let res = builder.send().await.map_err(|e| fetch_failure(&e))?;
            match redirect_target(&req.url, &res) {
                Some(next) if hop < MAX_REDIRECTS => req.redirect(res.status(), next),
                Some(_) => return Err(format!("too many redirects (more than {MAX_REDIRECTS})")),
                None => return self.read(res, hop > 0).await,
            }
        }
        Err(format!("too many redirects (more than {MAX_REDIRECTS})"))
    }

    async fn read(
        &self,
        mut res: reqwest::Response,
        redirected: bool,
    ) -> Result<FetchResponse, String> {
        let too_large = |size: String| {
            format!(
                "the response body{size} is larger than --fetch-max-bytes ({})",
                self.max_bytes
            )
        };
        if let Some(len) = res.content_length() {
            if len > self.max_bytes as u64 {
                return Err(too_large(format!(" ({len} bytes)")));
            }
        }
        let status = res.status();
        let url = res.url().to_string();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| fetch_failure(&e))? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large(String::new()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchResponse {
            status: status.as_u16(),
            status_text: status.canonical_reason().unwrap_or("").to_string(),
            url,
            redirected,
            headers,
            body,
        })
    }
}

/// A request checked and ready to send; redirects rewrite it.
pub struct Prepared {
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
}

impl Prepared {
    /// Follows a redirect as browsers do: 303 (and 301/302 after a POST)
    /// become a GET without a body; credentials stay on their origin.
    fn redirect(&mut self, status: StatusCode, next: Url) {
        let to_get = match status {
            StatusCode::SEE_OTHER => self.method != Method::HEAD,
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => self.method == Method::POST,
            _ => false,
        };
        if to_get {
            self.method = Method::GET;
            self.body = Bytes::new();
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
                header::CONTENT_LANGUAGE,
            ] {
                self.headers.remove(name);
            }
        }
        if next.origin() != self.url.origin() {
            for name in CREDENTIAL_HEADERS {
                self.headers.remove(name);
            }
        }
        self.url = next;
    }
}

/// Where a redirect response points, if it is one we follow.
fn redirect_target(base: &Url, res: &reqwest::Response) -> Option<Url> {
    let followed = matches!(
        res.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    );
    if !followed {
        return None;
    }
    let location = res.headers().get(header::LOCATION)?.to_str().ok()?;
    base.join(location).ok()
}

/// A reqwest error as one line, naming a refusal by the resolver as such.
fn fetch_failure(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut parts: Vec<String> = Vec::new();
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return refused.0.clone();
        }
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = err.source();
    }
    let kind = if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response body failed"
    } else {
        "network error"
    };
    format!("{kind}: {}", parts.join(": "))
}

/// Resolves names with the system resolver, then keeps only the addresses the
/// policy accepts for that name: reqwest connects to exactly these.
struct CheckedResolver {
    policy: Arc<Policy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let domain = Host::Domain(host.as_str());
            let (ok, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = found
                .into_iter()
                .partition(|a| policy.may_connect(&domain, a.ip()));
            if let (true, Some(first)) = (ok.is_empty(), refused.first()) {
                let ip = first.ip();
                let why = format!(
                    "{host} is refused: it resolves to {ip}, a {} address (name the host in --allow-outbound to allow it)",
                    class(ip).unwrap_or("non-public")
                );
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            if !refused.is_empty() {
                tracing::debug!(
                    host,
                    refused = refused.len(),
                    "skipped non-public addresses"
                );
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}
