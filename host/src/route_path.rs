//! Route paths as scripts write them (`/users/:id/files/*rest`) turned into
//! `matchit` patterns. Parameters are renamed by position (`{p0}`, `{*p1}`) so
//! that two routes of the same shape but different parameter names (`GET
//! /users/:id`, `DELETE /users/:name`) share one router entry; each route keeps
//! its own names to build `request.params`.

use std::fmt;

/// A parsed, valid route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePath {
    /// What the script wrote, for logs and the route browser.
    pub source: String,
    /// The `matchit` pattern with positional parameter names.
    pub key: String,
    /// Parameter names in path order.
    pub params: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct PathError(String);

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PathError {}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Most parameters a route path may have (the router has a hard limit not far above).
pub const MAX_PARAMS: usize = 16;
/// Longest route path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

impl RoutePath {
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let err = |why: &str| Err(PathError(format!("invalid route path {path:?}: {why}")));
        let Some(rest) = path.strip_prefix('/') else {
            return err("it must start with \"/\"");
        };
        if path.len() > MAX_PATH_BYTES {
            return Err(PathError(format!(
                "invalid route path: it is longer than {MAX_PATH_BYTES} bytes"
            )));
        }
        if path.contains(['?', '#']) {
            return err("it must not contain a query (?) or fragment (#)");
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err("it must not contain spaces or control characters");
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let mut key = String::with_capacity(path.len() + 8);
        let mut params: Vec<String> = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            key.push('/');
            let last = i + 1 == segments.len();
            let (name, wildcard) = match segment.strip_prefix(':') {
                Some(name) => (name, false),
                None => match segment.strip_prefix('*') {
                    Some(name) => (name, true),
                    None => {
                        key.push_str(&escape(segment));
                        continue;
                    }
                },
            };
            if wildcard && !last {
                return err("a \"*\" wildcard may only be the last segment");
            }
            if !valid_name(name) {
                return err(if wildcard {
                    "a \"*\" wildcard needs a name, e.g. \"*rest\""
                } else {
                    "a \":\" parameter needs a name of letters, digits or _ and must fill its segment"
                });
            }
            if params.len() == MAX_PARAMS {
                return err(&format!("a route may have at most {MAX_PARAMS} parameters"));
            }
            if params.iter().any(|p| p == name) {
                return err(&format!("parameter {name:?} appears twice"));
            }
            let star = if wildcard { "*" } else { "" };
            key.push_str(&format!("{{{star}p{}}}", params.len()));
            params.push(name.to_string());
        }
        Ok(RoutePath {
            source: path.to_string(),
            key,
            params,
        })
    }

    /// True when the path has no parameters (streams must be static).
    pub fn is_static(&self) -> bool {
        self.params.is_empty()
    }
}

/// matchit treats `{` and `}` as parameter syntax; double them to mean themselves.
fn escape(segment: &str) -> String {
    segment.replace('{', "{{").replace('}', "}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_paths_stay_as_they_are() {
        let p = RoutePath::parse("/chat/send").unwrap();
        assert_eq!(p.key, "/chat/send");
        assert!(p.params.is_empty() && p.is_static());
        assert_eq!(RoutePath::parse("/").unwrap().key, "/");
    }

    #[test]
    fn params_are_renamed_by_position() {
        let p = RoutePath::parse("/users/:id/files/*rest").unwrap();
        assert_eq!(p.key, "/users/{p0}/files/{*p1}");
        assert_eq!(p.params, vec!["id", "rest"]);
        let q = RoutePath::parse("/users/:name/files/*path").unwrap();
        assert_eq!(p.key, q.key);
    }

    #[test]
    fn braces_are_escaped() {
        assert_eq!(RoutePath::parse("/a{b}").unwrap().key, "/a{{b}}");
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        for (path, why) in [
            ("chat", "start with"),
            ("/a/*rest/b", "last segment"),
            ("/a/*", "needs a name"),
            ("/a/:", "needs a name"),
            ("/a/:x/:x", "appears twice"),
            ("/a?b=1", "query"),
            ("/a b", "spaces"),
            (
                "/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/:p/:q",
                "at most 16 parameters",
            ),
        ] {
            let e = RoutePath::parse(path).unwrap_err().to_string();
            assert!(e.contains(why), "{path}: {e}");
        }
    }

    #[test]
    fn patterns_match_in_matchit() {
        let mut r = matchit::Router::new();
        r.insert(RoutePath::parse("/users/:id").unwrap().key, 1)
            .unwrap();
        r.insert(RoutePath::parse("/users/me").unwrap().key, 2)
            .unwrap();
        r.insert(RoutePath::parse("/files/*rest").unwrap().key, 3)
            .unwrap();
        assert_eq!(*r.at("/users/me").unwrap().value, 2);
        let m = r.at("/users/42").unwrap();
        assert_eq!((*m.value, m.params.get("p0")), (1, Some("42")));
        let m = r.at("/files/a/b.txt").unwrap();
        assert_eq!(m.params.get("p0"), Some("a/b.txt"));
    }
}
