//! The front door every HTTP request served through hyper passes, before and
//! after the routes: it gives the request its id (and a tracing span carrying
//! it, so every log line of the request has it), applies the `/_engine` access
//! policy, and once the response is ready echoes the id, counts the request in
//! the metrics and writes the access log line (`target: http`, debug level).
//!
//! The routes say what they matched by attaching a [`Matched`] to the response
//! (see [`label`]); requests without one are counted as the engine's own pages
//! or as unmatched, so label values stay bounded.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use tracing::Instrument;
use warp::http::Request;
use warp::reply::Response;

use super::admin::{Access, Verdict};
use super::reply::Failure;
use super::request_id;
use crate::app::App;
use crate::metrics::{self, ENGINE, UNMATCHED};

/// What a response answered: which script's route (or stream).
#[derive(Clone, Debug)]
pub struct Matched {
    pub script: Arc<str>,
    /// The route pattern (`/users/:id`) or stream path.
    pub route: String,
    /// The request's method is one this route registered (so a bounded label).
    pub registered_method: bool,
    /// Whether the time to the response head is worth a histogram sample (not
    /// for a stream subscription, whose response lives on).
    pub timed: bool,
}

/// Attaches what `res` answered, for the metrics.
pub fn label(mut res: Response, matched: Matched) -> Response {
    res.extensions_mut().insert(matched);
    res
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The hyper service: the front door around the warp routes `inner`.
#[derive(Clone)]
pub struct Front<S> {
    app: Arc<App>,
    access: Arc<Access>,
    inner: S,
}

impl<S> Front<S> {
    pub fn new(app: Arc<App>, access: Access, inner: S) -> Self {
        Front {
            app,
            access: Arc::new(access),
            inner,
        }
    }
}

impl<S> hyper::service::Service<Request<Incoming>> for Front<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn call(&self, mut req: Request<Incoming>) -> BoxFuture {
        let started = Instant::now();
        let id = request_id::assign(req.headers_mut());
        let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or("-"));
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let answer = match self.access.check(&path, req.headers()) {
            Verdict::Allow => Ok(tower_service::Service::call(&mut self.inner.clone(), req)),
            Verdict::Unauthorized => Err(Failure::Unauthorized.into()),
            Verdict::Forbidden(hint) => Err(Failure::Forbidden(hint).into()),
        };
        let app = self.app.clone();
        Box::pin(
            async move {
                let mut res = match answer {
                    Ok(routed) => match routed.await {
                        Ok(res) => res,
                        Err(never) => match never {},
                    },
                    Err(refused) => refused,
                };
                res.headers_mut().insert(request_id::HEADER, id);
                let status = res.status().as_u16();
                let elapsed = started.elapsed();
                let matched = res.extensions_mut().remove::<Matched>();
                let (script, route, method_label, timed) = match &matched {
                    Some(m) => (
                        &*m.script,
                        m.route.as_str(),
                        metrics::method_label(method.as_str(), m.registered_method),
                        m.timed,
                    ),
                    // The engine's pages: only paths that answered are label values.
                    None if path.starts_with("/_engine") && status < 400 => (
                        ENGINE,
                        path.as_str(),
                        metrics::method_label(method.as_str(), false),
                        true,
                    ),
                    None => (
                        UNMATCHED,
                        UNMATCHED,
                        metrics::method_label(method.as_str(), false),
                        false,
                    ),
                };
                app.metrics.request(
                    script,
                    route,
                    method_label,
                    status,
                    timed.then_some(elapsed),
                );
                tracing::debug!(
                    target: "http",
                    method = %method,
                    path = %path,
                    script,
                    route,
                    status,
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    "request"
                );
                Ok(res)
            }
            .instrument(span),
        )
    }
}
