//! Where scripts may `fetch`: the `--allow-outbound` rules (Spin's syntax) and
//! the addresses that are refused unless a rule names them.
//!
//! A rule is `scheme://host[:port]`:
//! - scheme: `http`, `https` or `*`;
//! - host: a name (`api.example.com`), `*.example.com` (any subdomain, not the
//!   domain itself), an IP address (`127.0.0.1`, `[::1]`) or `*`;
//! - port: a number, a range `8000..8010` (inclusive), `*`, or left out for the
//!   scheme's default (80 for http, 443 for https).
//!
//! Loopback, private, link-local, unspecified (and a few other non-public)
//! addresses are refused even when a rule allows the URL, unless a rule names
//! that host or IP without a wildcard.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// One `--allow-outbound` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    source: String,
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    Subdomains(String),
    Name(String),
    Ip(IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PortPattern {
    Any,
    Default,
    Range(u16, u16),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl Rule {
    /// Parses a rule such as `https://*.example.com` or `http://127.0.0.1:9000`.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let source = text.trim();
        let bad = |why: &str| format!("invalid outbound rule {source:?}: {why}");
        let (scheme, rest) = source
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port], e.g. https://api.example.com"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => None,
            s @ ("http" | "https") => Some(s.to_string()),
            _ => return Err(bad("the scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') || rest.contains('@') {
            return Err(bad("a rule names a host and port, not a path"));
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| bad("unclosed [ in an IPv6 host"))?;
        let host = parse_host(host).map_err(|why| bad(&why))?;
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => {
                let (lo, hi) = p.split_once("..").unwrap_or((p, p));
                let lo: u16 = lo.parse().map_err(|_| bad("bad port"))?;
                let hi: u16 = hi.parse().map_err(|_| bad("bad port"))?;
                if lo > hi {
                    return Err(bad("empty port range"));
                }
                PortPattern::Range(lo, hi)
            }
        };
        Ok(Rule {
            source: source.to_string(),
            scheme,
            host,
            port,
        })
    }

    fn matches(&self, scheme: &str, host: &Host<&str>, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Default => default_port(scheme) == Some(port),
            PortPattern::Range(lo, hi) => (lo..=hi).contains(&port),
        };
        port_ok
            && match (&self.host, host) {
                (HostPattern::Any, _) => true,
                (HostPattern::Subdomains(suffix), Host::Domain(name)) => {
                    name.len() > suffix.len() && name.ends_with(suffix.as_str())
                }
                (HostPattern::Name(rule), Host::Domain(name)) => rule == name,
                (HostPattern::Ip(rule), Host::Ipv4(ip)) => canonical(*rule) == IpAddr::V4(*ip),
                (HostPattern::Ip(rule), Host::Ipv6(ip)) => {
                    canonical(*rule) == canonical(IpAddr::V6(*ip))
                }
                _ => false,
            }
    }

    /// Whether the rule names `host` itself, without a wildcard.
    fn names(&self, host: &Host<&str>) -> bool {
        match (&self.host, host) {
            (HostPattern::Name(rule), Host::Domain(name)) => rule == name,
            (HostPattern::Ip(rule), Host::Ipv4(ip)) => canonical(*rule) == IpAddr::V4(*ip),
            (HostPattern::Ip(rule), Host::Ipv6(ip)) => {
                canonical(*rule) == canonical(IpAddr::V6(*ip))
            }
            _ => false,
        }
    }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(rest: &str) -> Option<(&str, Option<&str>)> {
    if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        return Some((host, after.strip_prefix(':')));
    }
    Some(match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    })
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    let host = host.to_ascii_lowercase();
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostPattern::Ip(ip));
    }
    let (wild, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host.as_str()),
    };
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !valid {
        return Err("the host must be a name, *.name, an IP address or *".into());
    }
    Ok(match wild {
        true => HostPattern::Subdomains(format!(".{name}")),
        false => HostPattern::Name(name.to_string()),
    })
}

/// The rules together; empty allows nothing.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// Why a destination is refused; the message reaches the script.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Policy {
    pub fn new(rules: Vec<Rule>) -> Self {
        Policy { rules }
    }

    /// Checks `url` against the rules; an IP-literal host is also checked
    /// here against the address classes, since no name is resolved for it.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(Refused(format!(
                "{url} is refused: only http and https URLs can be fetched"
            )));
        }
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Err(Refused(format!("{url} is refused: it has no host")));
        };
        if !self.rules.iter().any(|r| r.matches(scheme, &host, port)) {
            let origin = url.origin().ascii_serialization();
            return Err(Refused(match self.rules.is_empty() {
                true => format!("{origin} is refused: no outbound destination is allowed (see --allow-outbound)"),
                false => format!("{origin} is refused: not allowed by --allow-outbound"),
            }));
        }
        let ip = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        match ip {
            Some(ip) if !self.may_connect(&host, ip) => Err(Refused(format!(
                "{} is refused: {ip} is a {} address (name it in --allow-outbound to allow it)",
                url.origin().ascii_serialization(),
                class(ip).unwrap_or("non-public")
            ))),
            _ => Ok(()),
        }
    }

    /// Whether a connection to `ip` is allowed for a URL with host `host`:
    /// public addresses always, others only when a rule names the host.
    pub fn may_connect(&self, host: &Host<&str>, ip: IpAddr) -> bool {
        class(ip).is_none() || self.rules.iter().any(|r| r.names(host))
    }
}

/// An IPv4-mapped (or NAT64 / 6to4-embedded) IPv6 address as the IPv4 it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let [a, b, c, d, e, f, g, h] = s;
    let from = |hi: u16, lo: u16| {
        let [w, x] = hi.to_be_bytes();
        let [y, z] = lo.to_be_bytes();
        Ipv4Addr::new(w, x, y, z)
    };
    match (a, b, c, d, e, f) {
        // IPv4-compatible (deprecated) ::a.b.c.d, but not :: or ::1.
        (0, 0, 0, 0, 0, 0) if g != 0 => Some(from(g, h)),
        // NAT64 well-known prefix 64:ff9b::/96.
        (0x64, 0xff9b, 0, 0, 0, 0) => Some(from(g, h)),
        // 6to4 2002:V4ADDR::/48.
        (0x2002, ..) => Some(from(b, c)),
        _ => None,
    }
}

/// The class of a non-public address, or `None` for a public one.
pub fn class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_broadcast() || v4.is_multicast() || a >= 240 {
                Some("broadcast, multicast or reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments().first().copied().unwrap_or(0);
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("broadcast, multicast or reserved")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> Policy {
        Policy::new(rules.iter().map(|r| Rule::parse(r).unwrap()).collect())
    }

    fn allowed(p: &Policy, url: &str) -> bool {
        p.check_url(&Url::parse(url).unwrap()).is_ok()
    }

    #[test]
    fn rules_parse_in_spin_syntax() {
        for ok in [
            "https://api.example.com",
            "https://*.example.com",
            "http://127.0.0.1:9000",
            "*://*:*",
            "http://[::1]:8080",
            "http://localhost:8000..8010",
            "https://example.com/",
        ] {
            assert!(Rule::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "api.example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://exa mple.com",
            "http://x:99999",
            "http://x:9..1",
            "http://[::1",
            "https://user@example.com",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let err = policy(&[])
            .check_url(&Url::parse("https://example.com/").unwrap())
            .unwrap_err();
        assert!(err.0.contains("--allow-outbound"), "{err}");
    }

    #[test]
    fn rules_match_scheme_host_and_port() {
        let p = policy(&[
            "https://api.example.com",
            "https://*.example.org",
            "http://h:8000..8002",
        ]);
        assert!(allowed(&p, "https://api.example.com/v1?q=1"));
        assert!(allowed(&p, "https://API.example.com:443/"));
        assert!(!allowed(&p, "http://api.example.com/"));
        assert!(!allowed(&p, "https://api.example.com:8443/"));
        assert!(!allowed(&p, "https://other.example.com/"));
        assert!(allowed(&p, "https://a.b.example.org/"));
        assert!(!allowed(&p, "https://example.org/"));
        assert!(!allowed(&p, "https://badexample.org/"));
        assert!(allowed(&p, "http://h:8001/"));
        assert!(!allowed(&p, "http://h:8003/"));
        assert!(!allowed(&p, "ftp://api.example.com/"));
        let any = policy(&["*://*:*"]);
        assert!(allowed(&any, "https://example.com/"));
        assert!(allowed(&any, "http://example.com:1234/"));
    }

    #[test]
    fn non_public_addresses_need_a_rule_that_names_them() {
        let any = policy(&["*://*:*"]);
        for url in [
            "http://127.0.0.1/",
            "http://127.1.2.3:8080/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
        ] {
            assert!(!allowed(&any, url), "{url}");
        }
        assert!(allowed(&any, "http://93.184.215.14/"));
        assert!(allowed(&any, "http://[2606:4700::1]/"));
        let named = policy(&["http://10.0.0.1", "http://[::1]:8080", "http://127.0.0.1:*"]);
        assert!(allowed(&named, "http://10.0.0.1/"));
        assert!(allowed(&named, "http://[::1]:8080/"));
        assert!(allowed(&named, "http://127.0.0.1:5/"));
        assert!(allowed(&named, "http://[::ffff:127.0.0.1]:5/"));
        assert!(!allowed(&named, "http://10.0.0.2/"));
    }

    #[test]
    fn resolved_addresses_are_checked_by_host() {
        let p = policy(&["http://localhost:*", "http://*.internal:*"]);
        let local = Host::Domain("localhost");
        assert!(p.may_connect(&local, "127.0.0.1".parse().unwrap()));
        let wild = Host::Domain("db.internal");
        assert!(!p.may_connect(&wild, "10.1.1.1".parse().unwrap()));
        assert!(p.may_connect(&wild, "8.8.8.8".parse().unwrap()));
        assert_eq!(
            class("100.64.0.1".parse().unwrap()),
            Some("shared (carrier-grade NAT)")
        );
        assert_eq!(class("fe80::1".parse().unwrap()), Some("link-local"));
        assert_eq!(
            class("::ffff:192.168.0.1".parse().unwrap()),
            Some("private")
        );
    }
}
