//! What a script registers while it loads — its routes, its streams and the
//! WebSocket handlers on them — and the checks each registration passes.

use crate::route_path::RoutePath;

/// A route as one script declared it.
#[derive(Clone, Debug)]
pub struct RouteDecl {
    pub method: String,
    pub path: RoutePath,
    pub handler: u32,
}

/// The routes and streams a script registered while it loaded.
#[derive(Clone, Debug, Default)]
pub struct Registrations {
    pub routes: Vec<RouteDecl>,
    pub streams: Vec<String>,
    /// Streams with WebSocket client handlers.
    pub websocket: Listeners,
}

/// Which client handlers a script gave `registerStreamRoute` for one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub open: bool,
    pub message: bool,
    pub close: bool,
}

/// Streams of one script with client handlers, by path.
#[derive(Clone, Debug, Default)]
pub struct Listeners(Vec<(String, Hooks)>);

impl Listeners {
    pub fn hooks(&self, path: &str) -> Hooks {
        self.0
            .iter()
            .find(|(p, _)| p == path)
            .map_or_else(Hooks::default, |(_, h)| *h)
    }
}

/// Methods a route may use; anything else is refused at registration.
fn valid_method(method: &str) -> bool {
    !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
}

/// Refuses paths under `/_engine`, which the engine serves itself.
fn not_reserved(path: &str) -> Result<(), String> {
    match path == "/_engine" || path.starts_with("/_engine/") {
        true => Err("paths under /_engine are reserved for the engine".into()),
        false => Ok(()),
    }
}

impl Registrations {
    /// Adds a route, unless its method or path is invalid or this script
    /// already has one for the same method and path.
    pub fn add_route(&mut self, method: String, path: &str, handler: u32) -> Result<(), String> {
        if !valid_method(&method) {
            return Err(format!("invalid HTTP method {method:?}"));
        }
        let path = RoutePath::parse(path).map_err(|e| e.to_string())?;
        not_reserved(&path.source)?;
        if let Some(other) = self
            .routes
            .iter()
            .find(|r| r.method == method && r.path.key == path.key)
        {
            return Err(format!(
                "{method} {} is already registered by this script (as {})",
                path.source, other.path.source
            ));
        }
        self.routes.push(RouteDecl {
            method,
            path,
            handler,
        });
        Ok(())
    }

    /// Adds a stream unless its path is invalid or the script already has
    /// `cap` others; `Ok(true)` when it is new to this script.
    pub fn add_stream(&mut self, path: String, cap: usize) -> Result<bool, String> {
        let parsed = RoutePath::parse(&path).map_err(|e| e.to_string())?;
        if !parsed.is_static() {
            return Err(format!("stream path {path:?} must not have parameters"));
        }
        not_reserved(&path)?;
        if self.streams.contains(&path) {
            return Ok(false);
        }
        if self.streams.len() >= cap {
            return Err(format!(
                "a script may register at most {cap} streams (--max-streams-per-script)"
            ));
        }
        self.streams.push(path);
        Ok(true)
    }

    /// Sets the client handlers of one of the script's streams.
    pub fn listen(&mut self, path: String, hooks: Hooks) -> Result<(), String> {
        if !self.streams.contains(&path) {
            return Err(format!("no stream is registered at {path:?}"));
        }
        let listeners = &mut self.websocket.0;
        listeners.retain(|(p, _)| *p != path);
        listeners.push((path, hooks));
        Ok(())
    }
}
