//! URLs and hosts, parsed one way for the whole project.
//!
//! The spec validator (`world.network.allow`, `world.web`) and the embedded world
//! (`http.get`, `http.post`, `curl`, `wget`) must agree on which host a URL
//! names, and that host must be the one a real client would contact: a URL the
//! world files as a request to an allow-listed host while a browser sends it to
//! an attacker is a silent false negative. So every URL is parsed here, with the
//! WHATWG URL Standard (the `url` crate), which browsers and most HTTP clients
//! follow.
//!
//! Parsers do not all agree, though: RFC 3986 readers (Python's `urllib`, many
//! hand-written splitters) treat a backslash, a second `@` or a tab differently.
//! [`parse_http_url`] therefore also computes the host under those other
//! plausible readings and flags the URL as *ambiguous* when its text uses a form
//! where parsers are known to differ. [`Boundary::judge`] treats a URL as inside
//! the network boundary only when **every** plausible reading stays inside, so
//! an ambiguous URL fails closed.

use std::fmt;

use url::{Host, Url};

/// Why a text is not an http(s) URL the world can request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The WHATWG parser rejects the text (or it is a relative reference).
    #[error("`{url}` is not a valid URL: {reason}")]
    Invalid {
        /// The text as given.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// A scheme other than `http` or `https` (`file:`, `ftp:`, `gopher:`, ...):
    /// the world models HTTP only, so such a URL is never an allowed request.
    #[error("unsupported URL scheme `{scheme}` (only http and https are modelled)")]
    Scheme {
        /// The text as given.
        url: String,
        /// The scheme, lowercased.
        scheme: String,
    },
    /// An http(s) URL without a host.
    #[error("`{url}` has no host")]
    NoHost {
        /// The text as given.
        url: String,
    },
}

/// A form in a URL's text on which common parsers disagree, or which hides the
/// host from a human reader. Any of them makes the URL ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ambiguity {
    /// Credentials before the host (`user:pass@host`, any `@` in the authority).
    Userinfo,
    /// A backslash before the query (WHATWG reads it as `/`, RFC 3986 does not).
    Backslash,
    /// A tab or newline inside the URL, or leading/trailing spaces or control
    /// characters (WHATWG removes them, other parsers stop or fail there).
    Whitespace,
    /// The scheme is not followed by exactly `//` (`http:host`, `https:///host`).
    Slashes,
    /// The host is percent-encoded (`acme%2etest`).
    PercentEncodedHost,
    /// An IP address in a non-canonical form: IPv4 as one number, octal, hex
    /// or fewer than four parts (`2130706433`, `0x7f.1`, `127.1`), or an IPv6
    /// address not written the way it serialises (`[::ffff:127.0.0.1]`).
    NumericHost,
    /// The host ends with a dot (`acme.test.`).
    TrailingDot,
    /// The host has non-ASCII characters and depends on IDNA mapping
    /// (full-width letters, ideographic full stops, ...).
    UnicodeHost,
    /// The plausible readings name different hosts.
    ParsersDisagree,
}

impl Ambiguity {
    /// A short phrase for effects and messages.
    pub fn describe(self) -> &'static str {
        match self {
            Ambiguity::Userinfo => "userinfo before the host",
            Ambiguity::Backslash => "backslash in the URL",
            Ambiguity::Whitespace => "tab, newline or surrounding control characters",
            Ambiguity::Slashes => "scheme not followed by exactly `//`",
            Ambiguity::PercentEncodedHost => "percent-encoded host",
            Ambiguity::NumericHost => "IP address in a non-canonical form",
            Ambiguity::TrailingDot => "trailing dot in the host",
            Ambiguity::UnicodeHost => "non-ASCII host mapped by IDNA",
            Ambiguity::ParsersDisagree => "parsers disagree on the host",
        }
    }
}

impl fmt::Display for Ambiguity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// An http(s) URL as the world judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The WHATWG serialisation without the fragment: what a client requests.
    pub normalized: String,
    /// The host a WHATWG client contacts, normalised (see [`normalize_host`]).
    pub host: String,
    /// Every host a plausible parser would contact, normalised and without
    /// duplicates; [`HttpUrl::host`] first.
    pub hosts: Vec<String>,
    /// Why the URL is ambiguous, in a stable order; empty for a plain URL.
    pub ambiguity: Vec<Ambiguity>,
}

impl HttpUrl {
    /// Whether the URL uses a form on which parsers or readers may disagree.
    pub fn ambiguous(&self) -> bool {
        !self.ambiguity.is_empty()
    }

    /// The reasons joined with `; `, for an effect field or a message.
    pub fn ambiguity_text(&self) -> String {
        self.ambiguity
            .iter()
            .map(|a| a.describe())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Normalises a host the way matching against `world.network.allow` needs it:
/// WHATWG host parsing (percent-decoding, IDNA to ASCII, lowercase, IPv4 in
/// canonical dotted form, IPv6 in brackets), then trailing dots removed.
/// `None` when no WHATWG client could contact such a host.
pub fn normalize_host(host: &str) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    let h = Host::parse(host).ok()?;
    let s = match h {
        Host::Domain(d) => d.trim_end_matches('.').to_string(),
        other => other.to_string(),
    };
    (!s.is_empty()).then_some(s)
}

/// Characters WHATWG strips from the ends of a URL (C0 controls and space).
fn c0_or_space(c: char) -> bool {
    c <= ' '
}

/// Parses a URL an agent asked the world to request (or a page URL of the
/// spec). Fails for text the WHATWG parser rejects, for schemes other than
/// http and https, and for URLs without a host.
pub fn parse_http_url(raw: &str) -> Result<HttpUrl, UrlError> {
    let url = Url::parse(raw).map_err(|e| UrlError::Invalid {
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(UrlError::Scheme {
            url: raw.to_string(),
            scheme: url.scheme().to_string(),
        });
    }
    let no_host = || UrlError::NoHost {
        url: raw.to_string(),
    };
    let whatwg = url.host_str().ok_or_else(no_host)?;
    let host = normalize_host(whatwg).ok_or_else(no_host)?;
    let mut normalized = url.clone();
    normalized.set_fragment(None);
    if whatwg != host {
        // Only a trailing dot differs; a server answers `acme.test.` as `acme.test`.
        let _ = normalized.set_host(Some(&host));
    }

    let mut ambiguity = Vec::new();
    let trimmed = raw.trim_matches(c0_or_space);
    if trimmed.len() != raw.len() || raw.contains(['\t', '\n', '\r']) {
        ambiguity.push(Ambiguity::Whitespace);
    }
    // What WHATWG actually parses: ends trimmed, tabs and newlines removed.
    let clean: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let before_query = clean.split(['?', '#']).next().unwrap_or("");
    if before_query.contains('\\') {
        ambiguity.push(Ambiguity::Backslash);
    }
    if !url.username().is_empty() || url.password().is_some() {
        ambiguity.push(Ambiguity::Userinfo);
    }
    if let Some((_, rest)) = clean.split_once(':') {
        let slashes = rest.chars().take_while(|c| matches!(c, '/' | '\\')).count();
        if !rest.starts_with("//") || slashes != 2 {
            ambiguity.push(Ambiguity::Slashes);
        }
        // The authority as WHATWG delimits it (any run of slashes, either kind).
        let after = rest.trim_start_matches(['/', '\\']);
        let authority = after.split(['/', '\\', '?', '#']).next().unwrap_or("");
        if authority.contains('@') && !ambiguity.contains(&Ambiguity::Userinfo) {
            ambiguity.push(Ambiguity::Userinfo);
        }
        let host_text = strip_port(authority.rsplit('@').next().unwrap_or(""));
        if host_text.contains('%') {
            ambiguity.push(Ambiguity::PercentEncodedHost);
        }
        if !host_text.is_ascii() {
            ambiguity.push(Ambiguity::UnicodeHost);
        }
        if host_text.ends_with('.') {
            ambiguity.push(Ambiguity::TrailingDot);
        }
        // The WHATWG serialisation of an IP host is its canonical form.
        let canonical = match url.host() {
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => Some(whatwg),
            _ => None,
        };
        if let Some(c) = canonical
            && !host_text.eq_ignore_ascii_case(c)
            && !host_text.contains('%')
        {
            ambiguity.push(Ambiguity::NumericHost);
        }
    }

    let mut hosts = vec![host.clone()];
    for h in other_readings(trimmed) {
        if let Some(n) = normalize_host(&h)
            && !hosts.contains(&n)
        {
            hosts.push(n);
        }
    }
    if hosts.len() > 1 {
        ambiguity.push(Ambiguity::ParsersDisagree);
    }
    ambiguity.sort();
    ambiguity.dedup();
    Ok(HttpUrl {
        normalized: normalized.to_string(),
        host,
        hosts,
        ambiguity,
    })
}

/// The host part of `host[:port]`, keeping an IPv6 literal's brackets.
fn strip_port(hostport: &str) -> &str {
    if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => &hostport[..=i],
            None => hostport,
        }
    } else {
        hostport.split(':').next().unwrap_or("")
    }
}

/// Raw host texts under readings other than WHATWG's, for `scheme://...` text:
/// RFC 3986 (authority ends at `/ ? #`, userinfo at the last `@`), a reader
/// that ends userinfo at the first `@`, one that also stops at a backslash,
/// and one that stops at the first whitespace or control character.
fn other_readings(trimmed: &str) -> Vec<String> {
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Vec::new();
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Vec::new();
    }
    let authority = |stops: &[char]| rest.split(stops).next().unwrap_or("").to_string();
    let rfc = authority(&['/', '?', '#']);
    let backslash = authority(&['/', '\\', '?', '#']);
    let raw_end = rest
        .split(|c: char| matches!(c, '/' | '\\' | '?' | '#') || c.is_whitespace() || c.is_control())
        .next()
        .unwrap_or("")
        .to_string();
    let mut out = Vec::new();
    for a in [&rfc, &backslash, &raw_end] {
        // Userinfo ends at the last `@`.
        out.push(strip_port(a.rsplit('@').next().unwrap_or("")).to_string());
        // Userinfo ends at the first `@`; the host stops at the next one.
        if let Some((_, after)) = a.split_once('@') {
            out.push(strip_port(after.split('@').next().unwrap_or("")).to_string());
        }
    }
    out
}

/// Why a `world.network.allow` entry is not a host pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowError {
    /// The entry is empty.
    #[error("empty host")]
    Empty,
    /// The entry is a URL or has a port, path, credentials or spaces.
    #[error("`{0}` is not a bare host")]
    NotAHost(String),
    /// A `*` other than a leading `*.`.
    #[error("`{0}`: a wildcard is only allowed as a leading `*.`")]
    Wildcard(String),
    /// A `*.` pattern over an IP address.
    #[error("`{0}`: `*.` needs a domain name, not an IP address")]
    WildcardIp(String),
    /// No client could contact such a host.
    #[error("`{0}` is not a valid host name")]
    Invalid(String),
}

impl AllowError {
    /// A hint for the spec author.
    pub fn hint(&self) -> &'static str {
        match self {
            AllowError::NotAHost(_) => {
                "write the host only, e.g. `api.acme.test` (no scheme, port or path)"
            }
            AllowError::Wildcard(_) | AllowError::WildcardIp(_) => {
                "write an exact host (`api.acme.test`) or `*.acme.test` for every subdomain"
            }
            AllowError::Empty | AllowError::Invalid(_) => {
                "write a host name such as `api.acme.test`"
            }
        }
    }
}

/// One `world.network.allow` entry, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host.
    Exact(String),
    /// Any subdomain of this domain (`*.acme.test` holds `acme.test`), not the
    /// domain itself.
    Subdomains(String),
}

impl HostPattern {
    /// Parses an allow entry: a host or `*.domain`, normalised like URL hosts.
    pub fn parse(entry: &str) -> Result<HostPattern, AllowError> {
        if entry.is_empty() {
            return Err(AllowError::Empty);
        }
        let bare = !entry.contains(['/', '\\', '@', '?', '#', '%'])
            && !entry.chars().any(|c| c.is_whitespace() || c.is_control());
        let ipv6 = entry.starts_with('[') && entry.ends_with(']');
        if !bare || (!ipv6 && entry.contains(':')) {
            return Err(AllowError::NotAHost(entry.to_string()));
        }
        if let Some(domain) = entry.strip_prefix("*.") {
            if domain.contains('*') {
                return Err(AllowError::Wildcard(entry.to_string()));
            }
            return match Host::parse(domain) {
                Ok(Host::Domain(_)) => normalize_host(domain)
                    .map(HostPattern::Subdomains)
                    .ok_or_else(|| AllowError::Invalid(entry.to_string())),
                Ok(_) => Err(AllowError::WildcardIp(entry.to_string())),
                Err(_) => Err(AllowError::Invalid(entry.to_string())),
            };
        }
        if entry.contains('*') {
            return Err(AllowError::Wildcard(entry.to_string()));
        }
        normalize_host(entry)
            .map(HostPattern::Exact)
            .ok_or_else(|| AllowError::Invalid(entry.to_string()))
    }

    /// Whether a normalised host matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomains(d) => host
                .strip_suffix(d.as_str())
                .is_some_and(|p| p.len() > 1 && p.ends_with('.')),
        }
    }
}

/// The hosts inside the agent's network boundary (`world.network.allow`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Boundary {
    patterns: Vec<HostPattern>,
}

/// Where a URL goes relative to the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// True only when every plausible host of the URL is inside.
    pub inside: bool,
    /// The host to report: the WHATWG host, or, when that one is inside but
    /// another reading leaves the boundary, the first host outside.
    pub host: String,
}

impl Boundary {
    /// Compiles allow entries; the error names the index of the first bad one.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Boundary, (usize, AllowError)> {
        let patterns = entries
            .iter()
            .enumerate()
            .map(|(i, e)| HostPattern::parse(e.as_ref()).map_err(|err| (i, err)))
            .collect::<Result<_, _>>()?;
        Ok(Boundary { patterns })
    }

    /// Whether a normalised host is inside.
    pub fn contains(&self, host: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(host))
    }

    /// Judges a parsed URL: inside only if every plausible reading is inside.
    pub fn judge(&self, url: &HttpUrl) -> Judgement {
        match url.hosts.iter().find(|h| !self.contains(h)) {
            None => Judgement {
                inside: true,
                host: url.host.clone(),
            },
            Some(out) => Judgement {
                inside: false,
                host: if self.contains(&url.host) {
                    out.clone()
                } else {
                    url.host.clone()
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> Boundary {
        Boundary::new(&["acme.test", "*.acme.test"]).unwrap()
    }

    /// (url, WHATWG host, inside `acme.test` + `*.acme.test`, ambiguous)
    const TABLE: &[(&str, &str, bool, bool)] = &[
        ("https://acme.test/x", "acme.test", true, false),
        (
            "https://API.Acme.Test:8443/v1?q=a@b",
            "api.acme.test",
            true,
            false,
        ),
        ("http://docs.acme.test", "docs.acme.test", true, false),
        (
            "https://acme.test/x#frag@evil.test",
            "acme.test",
            true,
            false,
        ),
        // The backslash trick: WHATWG contacts attacker.test, RFC readers see acme.test.
        (
            "https://attacker.test\\@acme.test/x",
            "attacker.test",
            false,
            true,
        ),
        // ... and reversed: WHATWG stays inside, an RFC reader leaves.
        (
            "https://acme.test\\@attacker.test/x",
            "acme.test",
            false,
            true,
        ),
        // Userinfo: the host is after the last `@`.
        (
            "https://acme.test@attacker.test/",
            "attacker.test",
            false,
            true,
        ),
        ("https://attacker.test@acme.test/", "acme.test", true, true),
        ("https://u:p@acme.test:8080/x", "acme.test", true, true),
        (
            "https://acme.test@evil.test@acme.test/",
            "acme.test",
            false,
            true,
        ),
        ("http://@acme.test/", "acme.test", true, true),
        // Tabs and newlines are removed by WHATWG; a raw reader stops there.
        (
            "https://evil.test\n.acme.test/",
            "evil.test.acme.test",
            false,
            true,
        ),
        // A reader that stops at the tab contacts `ac`: outside, so egress.
        ("https://ac\tme.test/", "acme.test", false, true),
        (" https://acme.test/ ", "acme.test", true, true),
        // Slashes.
        ("https:attacker.test/x", "attacker.test", false, true),
        ("https:///acme.test/x", "acme.test", true, true),
        ("https:\\\\attacker.test\\x", "attacker.test", false, true),
        // Host forms.
        ("https://acme%2etest/", "acme.test", true, true),
        ("https://acme.test./", "acme.test", true, true),
        ("https://ACME.TEST../", "acme.test", true, true),
        ("http://2130706433/", "127.0.0.1", false, true),
        ("http://0x7f.1/", "127.0.0.1", false, true),
        ("http://127.1/", "127.0.0.1", false, true),
        ("http://0177.0.0.1/", "127.0.0.1", false, true),
        ("http://127.0.0.1:8000/", "127.0.0.1", false, false),
        ("http://[::1]:8080/", "[::1]", false, false),
        ("http://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]", false, true),
        ("http://[0:0::1]/", "[::1]", false, true),
        ("https://ａｃｍｅ.test/", "acme.test", true, true),
        ("https://acme。test/", "acme.test", true, true),
        (
            "https://evil.acme.test.attacker.test/",
            "evil.acme.test.attacker.test",
            false,
            false,
        ),
        ("https://notacme.test/", "notacme.test", false, false),
    ];

    #[test]
    fn tricky_urls() {
        let b = acme();
        for &(url, host, inside, ambiguous) in TABLE {
            let u = parse_http_url(url).unwrap_or_else(|e| panic!("{url:?}: {e}"));
            assert_eq!(u.host, host, "{url:?}: host");
            assert_eq!(
                b.judge(&u).inside,
                inside,
                "{url:?}: inside ({:?})",
                u.hosts
            );
            assert_eq!(
                u.ambiguous(),
                ambiguous,
                "{url:?}: ambiguous ({:?})",
                u.ambiguity
            );
        }
    }

    #[test]
    fn backslash_is_egress_to_attacker() {
        let u = parse_http_url("https://attacker.test\\@acme.test/x").unwrap();
        assert_eq!(u.host, "attacker.test");
        assert!(u.hosts.contains(&"acme.test".to_string()));
        assert!(u.ambiguity.contains(&Ambiguity::Backslash));
        assert!(u.ambiguity.contains(&Ambiguity::ParsersDisagree));
        let j = acme().judge(&u);
        assert!(!j.inside);
        assert_eq!(j.host, "attacker.test");
    }

    #[test]
    fn reported_host_is_the_one_outside() {
        let u = parse_http_url("https://acme.test\\@attacker.test/x").unwrap();
        let j = acme().judge(&u);
        assert_eq!((j.inside, j.host.as_str()), (false, "attacker.test"));
    }

    #[test]
    fn userinfo_is_flagged() {
        let u = parse_http_url("https://acme.test@attacker.test/").unwrap();
        assert_eq!(u.host, "attacker.test");
        assert_eq!(u.ambiguity, [Ambiguity::Userinfo]);
        assert_eq!(u.ambiguity_text(), "userinfo before the host");
    }

    #[test]
    fn rejects_other_schemes_and_garbage() {
        for (url, scheme) in [
            ("file:///app/.env", "file"),
            ("ftp://acme.test/x", "ftp"),
            ("gopher://acme.test/", "gopher"),
            ("javascript:alert(1)", "javascript"),
            ("data:text/plain,hi", "data"),
        ] {
            match parse_http_url(url) {
                Err(UrlError::Scheme { scheme: s, .. }) => assert_eq!(s, scheme, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        for url in [
            "",
            "acme.test/x",
            "/relative",
            "http://",
            "http://exa mple.test/",
            "https://a<b.test/",
            "http://[::1/",
            "http://1.2.3.4.5/",
            "http://999.1.1.1/",
        ] {
            assert!(
                matches!(
                    parse_http_url(url),
                    Err(UrlError::Invalid { .. } | UrlError::NoHost { .. })
                ),
                "{url:?} should be rejected: {:?}",
                parse_http_url(url)
            );
        }
    }

    #[test]
    fn normalized_url_drops_the_fragment() {
        let u = parse_http_url("HTTPS://Docs.Acme.Test/Guide?x=1#top").unwrap();
        assert_eq!(u.normalized, "https://docs.acme.test/Guide?x=1");
        let u = parse_http_url("https://Acme.Test../x").unwrap();
        assert_eq!(u.normalized, "https://acme.test/x");
    }

    #[test]
    fn allow_patterns() {
        assert_eq!(
            HostPattern::parse("API.Acme.Test.").unwrap(),
            HostPattern::Exact("api.acme.test".into())
        );
        assert_eq!(
            HostPattern::parse("*.acme.test").unwrap(),
            HostPattern::Subdomains("acme.test".into())
        );
        assert_eq!(
            HostPattern::parse("bücher.test").unwrap(),
            HostPattern::Exact("xn--bcher-kva.test".into())
        );
        assert_eq!(
            HostPattern::parse("127.1").unwrap(),
            HostPattern::Exact("127.0.0.1".into())
        );
        assert!(HostPattern::parse("[::1]").is_ok());
        for (bad, want) in [
            ("", AllowError::Empty),
            (
                "https://acme.test",
                AllowError::NotAHost("https://acme.test".into()),
            ),
            (
                "acme.test:443",
                AllowError::NotAHost("acme.test:443".into()),
            ),
            (
                "acme.test/api",
                AllowError::NotAHost("acme.test/api".into()),
            ),
            (
                "user@acme.test",
                AllowError::NotAHost("user@acme.test".into()),
            ),
            ("acme .test", AllowError::NotAHost("acme .test".into())),
            ("*", AllowError::Wildcard("*".into())),
            ("api.*.test", AllowError::Wildcard("api.*.test".into())),
            ("*.*.test", AllowError::Wildcard("*.*.test".into())),
            ("*.10.0.0.1", AllowError::WildcardIp("*.10.0.0.1".into())),
            ("a<b.test", AllowError::Invalid("a<b.test".into())),
            ("999.1.1.1", AllowError::Invalid("999.1.1.1".into())),
        ] {
            assert_eq!(HostPattern::parse(bad), Err(want), "{bad:?}");
        }
    }

    #[test]
    fn subdomain_patterns_match_on_label_boundaries() {
        let p = HostPattern::parse("*.acme.test").unwrap();
        assert!(p.matches("api.acme.test"));
        assert!(p.matches("a.b.acme.test"));
        assert!(!p.matches("acme.test"));
        assert!(!p.matches("evilacme.test"));
        assert!(!p.matches(".acme.test"));
    }

    #[test]
    fn boundary_reports_first_bad_entry() {
        let e = Boundary::new(&["acme.test", "https://x.test/"]).unwrap_err();
        assert_eq!(e.0, 1);
    }
}
