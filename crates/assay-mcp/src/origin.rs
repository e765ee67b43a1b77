//! The `Origin` allow-list of the streamable HTTP servers. The MCP
//! specification requires servers to check `Origin`, so that a web page in
//! the user's browser cannot reach a local server by DNS rebinding. Clients
//! that are not browsers send no `Origin`; such requests are allowed.

use std::fmt;

/// One allowed origin: a scheme and a host, with an exact port, the
/// scheme's default port, or any port (`:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: String,
    host: String,
    /// `None`: any port.
    port: Option<u16>,
}

/// The allow-list used when none is given: `http` and `https` on
/// `localhost`, `127.0.0.1` and `[::1]`, any port.
pub fn default_allowed_origins() -> Vec<AllowedOrigin> {
    let mut v = Vec::new();
    for scheme in ["http", "https"] {
        for host in ["localhost", "127.0.0.1", "::1"] {
            v.push(AllowedOrigin {
                scheme: scheme.into(),
                host: host.into(),
                port: None,
            });
        }
    }
    v
}

/// The port a scheme implies when an origin omits it.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Splits `scheme://host[:port]` (IPv6 hosts in brackets) into its parts,
/// lower-cased; `port` is the text after the colon, if any. No path, query,
/// user info or fragment is allowed: a browser's `Origin` has none.
fn split(value: &str) -> Option<(String, String, Option<&str>)> {
    let (scheme, rest) = value.split_once("://")?;
    if scheme.is_empty() || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let (host, tail) = after.split_once(']')?;
        match tail {
            "" => (host, None),
            t => (host, Some(t.strip_prefix(':')?)),
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase(), port))
}

impl AllowedOrigin {
    /// Parses an allow-list entry: `http://localhost:8080` (that port),
    /// `http://localhost:*` (any port), `https://app.example` (the scheme's
    /// default port). The error says what is wrong and shows the form.
    pub fn parse(value: &str) -> Result<AllowedOrigin, String> {
        let bad = || {
            format!(
                "`{value}` is not an origin; write SCHEME://HOST[:PORT|:*], e.g. http://localhost:5173 or http://localhost:*"
            )
        };
        let (scheme, host, port) = split(value.trim()).ok_or_else(bad)?;
        let port = match port {
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None => Some(default_port(&scheme).ok_or_else(|| {
                format!("`{value}`: give a port for scheme `{scheme}` (or `:*` for any)")
            })?),
        };
        Ok(AllowedOrigin { scheme, host, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.scheme == scheme && self.host == host && self.port.is_none_or(|p| Some(p) == port)
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => write!(f, "{}://{host}:{p}", self.scheme),
            None => write!(f, "{}://{host}:*", self.scheme),
        }
    }
}

/// Whether a request's `Origin` header value is allowed. A value that is not
/// an origin (including `null`, sent by sandboxed pages) is refused.
pub(crate) fn origin_allowed(value: &str, allowed: &[AllowedOrigin]) -> bool {
    let Some((scheme, host, port)) = split(value.trim()) else {
        return false;
    };
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) => return false,
        },
        None => default_port(&scheme),
    };
    allowed.iter().any(|a| a.matches(&scheme, &host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_allows_loopback_on_any_port_only() {
        let d = default_allowed_origins();
        for ok in [
            "http://localhost:5173",
            "http://localhost",
            "https://127.0.0.1:8443",
            "http://[::1]:3000",
            "HTTP://LOCALHOST:1",
        ] {
            assert!(origin_allowed(ok, &d), "{ok}");
        }
        for no in [
            "http://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.2",
            "null",
            "file://",
            "http://localhost:99999",
            "http://localhost/path",
            "",
        ] {
            assert!(!origin_allowed(no, &d), "{no}");
        }
    }

    #[test]
    fn entries_match_their_port() {
        let exact = [AllowedOrigin::parse("http://app.example:8080").unwrap()];
        assert!(origin_allowed("http://app.example:8080", &exact));
        assert!(!origin_allowed("http://app.example:8081", &exact));
        assert!(!origin_allowed("https://app.example:8080", &exact));
        let default = [AllowedOrigin::parse("https://app.example").unwrap()];
        assert!(origin_allowed("https://app.example", &default));
        assert!(origin_allowed("https://app.example:443", &default));
        assert!(!origin_allowed("https://app.example:444", &default));
        let any = [AllowedOrigin::parse("http://[::1]:*").unwrap()];
        assert!(origin_allowed("http://[::1]:1234", &any));
        assert_eq!(any[0].to_string(), "http://[::1]:*");
    }

    #[test]
    fn bad_entries_say_how_to_write_one() {
        for bad in [
            "localhost",
            "http://",
            "http://h:port",
            "http://h/x",
            "ftp://h",
        ] {
            let e = AllowedOrigin::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
