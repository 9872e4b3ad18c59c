//! `mpUri`: where the remote media side connects to reach the media processor.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::BlobError;

/// Field path used in every [`MpUri`] error.
const FIELD: &str = "mpUri";

/// The address of a media processor: `scheme://host:port/path`.
///
/// Microsoft's processor uses `net.tcp://bot.contoso.com:18732/MediaProcessor`; ours
/// uses `quic://host:port/MediaProcessor`. The scheme is not hard-wired: any
/// RFC 3986 scheme is accepted.
///
/// Rules enforced by every constructor ([`FromStr`], [`MpUri::new`], [`MpUri::quic`],
/// [`MpUri::net_tcp`]):
///
/// - scheme: a letter, then letters, digits, `+`, `-` or `.` (RFC 3986 §3.1);
/// - host: a DNS name (labels of 1-63 letters, digits or `-`, not starting or ending
///   with `-`, 253 characters at most), a dotted-quad IPv4 address, or an IPv6 address
///   in brackets (`[::1]`);
/// - port: required, 1-65535, decimal without leading zeros;
/// - path: required, starts with `/`, RFC 3986 path characters and `%XX` escapes only;
/// - no userinfo (`user@`), no query (`?`), no fragment (`#`);
/// - at most [`MAX_MP_URI_BYTES`](crate::limits::MAX_MP_URI_BYTES) bytes in all.
///
/// Errors quote the input through [`excerpt`](crate::excerpt): bounded, escaped.
///
/// Every accepted string displays back exactly as written.
///
/// ```
/// use media_blob::MpUri;
/// let uri: MpUri = "quic://media.example.com:4433/MediaProcessor".parse()?;
/// assert_eq!(uri.scheme(), "quic");
/// assert_eq!(uri.host(), "media.example.com");
/// assert_eq!(uri.port(), 4433);
/// assert_eq!(uri.path(), "/MediaProcessor");
/// assert_eq!(uri, MpUri::quic("media.example.com", 4433)?);
/// assert_eq!(
///     "net.tcp://host:0/MediaProcessor".parse::<MpUri>().expect_err("port 0").to_string(),
///     "mpUri: port 0 out of range (1-65535)"
/// );
/// # Ok::<(), media_blob::BlobError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUri {
    scheme: String,
    /// As written; IPv6 addresses without their brackets.
    host: String,
    port: u16,
    path: String,
}

impl MpUri {
    /// Scheme of our QUIC media transport.
    pub const QUIC_SCHEME: &'static str = "quic";
    /// Scheme of Microsoft's media platform.
    pub const NET_TCP_SCHEME: &'static str = "net.tcp";
    /// The path both processors use.
    pub const DEFAULT_PATH: &'static str = "/MediaProcessor";

    /// Builds and validates a URI from its parts.
    ///
    /// `host` may be an IPv6 address with or without brackets.
    pub fn new(scheme: &str, host: &str, port: u16, path: &str) -> Result<Self, BlobError> {
        let total = scheme.len() + host.len() + path.len() + 10;
        if total > crate::limits::MAX_MP_URI_BYTES {
            return Err(invalid(format!(
                "about {total} bytes, more than the {} allowed",
                crate::limits::MAX_MP_URI_BYTES
            )));
        }
        validate_scheme(scheme)?;
        let host = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| {
                invalid(format!(
                    "unterminated IPv6 address in host {}",
                    quoted(host)
                ))
            })?;
            validate_ipv6(inner)?;
            inner
        } else if host.contains(':') {
            validate_ipv6(host)?;
            host
        } else {
            validate_host(host)?;
            host
        };
        validate_port_number(u32::from(port))?;
        validate_path(path)?;
        Ok(MpUri {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// `quic://host:port/MediaProcessor`, the form our processor listens on.
    pub fn quic(host: &str, port: u16) -> Result<Self, BlobError> {
        Self::new(Self::QUIC_SCHEME, host, port, Self::DEFAULT_PATH)
    }

    /// `net.tcp://host:port/MediaProcessor`, the form Microsoft's processor uses.
    pub fn net_tcp(host: &str, port: u16) -> Result<Self, BlobError> {
        Self::new(Self::NET_TCP_SCHEME, host, port, Self::DEFAULT_PATH)
    }

    /// The scheme as written, e.g. `quic` or `net.tcp`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host as written; an IPv6 address is returned without brackets (`::1`),
    /// so `(uri.host(), uri.port())` can be resolved with `ToSocketAddrs`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, 1-65535.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path, starting with `/`, e.g. `/MediaProcessor`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The host as an IP address, if it is an IPv4 or IPv6 literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for MpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}{}",
                self.scheme, self.host, self.port, self.path
            )
        } else {
            write!(
                f,
                "{}://{}:{}{}",
                self.scheme, self.host, self.port, self.path
            )
        }
    }
}

impl FromStr for MpUri {
    type Err = BlobError;

    /// Parses `scheme://host:port/path`; errors have the path `mpUri`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::limits::check_len(FIELD, s, crate::limits::MAX_MP_URI_BYTES)?;
        if s.is_empty() {
            return Err(invalid("empty (expected scheme://host:port/path)"));
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(invalid(format!(
                "missing scheme in {} (expected scheme://host:port/path)",
                quoted(s)
            )));
        };
        validate_scheme(scheme)?;
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') {
            return Err(invalid("userinfo not allowed"));
        }
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        let (host, port) = split_host_port(authority)?;
        if tail.contains('#') {
            return Err(invalid("fragment not allowed"));
        }
        if tail.contains('?') {
            return Err(invalid("query not allowed"));
        }
        if tail.is_empty() {
            return Err(invalid("missing path (expected e.g. /MediaProcessor)"));
        }
        validate_path(tail)?;
        Ok(MpUri {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
            path: tail.to_owned(),
        })
    }
}

impl serde::Serialize for MpUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MpUri {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn invalid(problem: impl Into<String>) -> BlobError {
    BlobError::invalid(FIELD, problem)
}

/// A string as a bounded, escaped excerpt, for unambiguous error messages.
fn quoted(s: &str) -> String {
    crate::text::excerpt(s)
}

/// Splits `host:port` or `[v6]:port`; returns the host without brackets.
fn split_host_port(authority: &str) -> Result<(&str, u16), BlobError> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return Err(invalid(format!(
                "unterminated IPv6 address in host {}",
                quoted(authority)
            )));
        };
        validate_ipv6(v6)?;
        if after.is_empty() {
            return Err(invalid("missing port"));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(invalid(format!(
                "unexpected {} after IPv6 address (expected :port)",
                quoted(after)
            )));
        };
        (v6, port)
    } else {
        let Some((host, port)) = authority.rsplit_once(':') else {
            validate_host(authority)?;
            return Err(invalid("missing port"));
        };
        if host.contains(':') {
            return Err(invalid(format!(
                "IPv6 address {} must be written in brackets",
                quoted(host)
            )));
        }
        validate_host(host)?;
        (host, port)
    };
    Ok((host, parse_port(port)?))
}

fn parse_port(port: &str) -> Result<u16, BlobError> {
    if port.is_empty() {
        return Err(invalid("missing port"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "invalid port {} (expected 1-65535)",
            quoted(port)
        )));
    }
    if port.len() > 1 && port.starts_with('0') {
        return Err(invalid(format!(
            "invalid port {} (leading zero)",
            quoted(port)
        )));
    }
    if port.len() > 5 {
        return Err(invalid(format!("port {port} out of range (1-65535)")));
    }
    let n: u32 = port
        .parse()
        .map_err(|_| invalid(format!("invalid port {}", quoted(port))))?;
    validate_port_number(n)?;
    u16::try_from(n).map_err(|_| invalid(format!("port {n} out of range (1-65535)")))
}

fn validate_port_number(n: u32) -> Result<(), BlobError> {
    if n == 0 || n > 65_535 {
        return Err(invalid(format!("port {n} out of range (1-65535)")));
    }
    Ok(())
}

fn validate_scheme(scheme: &str) -> Result<(), BlobError> {
    let mut chars = scheme.chars();
    match chars.next() {
        None => return Err(invalid("missing scheme (expected scheme://host:port/path)")),
        Some(c) if c.is_ascii_alphabetic() => {}
        Some(_) => {
            return Err(invalid(format!(
                "invalid scheme {} (must start with a letter)",
                quoted(scheme)
            )));
        }
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return Err(invalid(format!(
            "invalid scheme {} (letters, digits, +, - and . only)",
            quoted(scheme)
        )));
    }
    Ok(())
}

fn validate_ipv6(s: &str) -> Result<(), BlobError> {
    s.parse::<Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| invalid(format!("invalid IPv6 address {}", quoted(s))))
}

/// A DNS name or a dotted-quad IPv4 address (not an IPv6 address).
fn validate_host(host: &str) -> Result<(), BlobError> {
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| invalid(format!("invalid IPv4 address {}", quoted(host))));
    }
    if host.len() > 253 {
        return Err(invalid(format!(
            "host name too long ({} characters, at most 253)",
            host.len()
        )));
    }
    for label in host.split('.') {
        let problem = if label.is_empty() {
            Some("empty label")
        } else if label.len() > 63 {
            Some("label longer than 63 characters")
        } else if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            Some("letters, digits, - and . only")
        } else if label.starts_with('-') || label.ends_with('-') {
            Some("label starts or ends with -")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(invalid(format!(
                "invalid host {} ({problem})",
                quoted(host)
            )));
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), BlobError> {
    if path.is_empty() {
        return Err(invalid("missing path (expected e.g. /MediaProcessor)"));
    }
    if !path.starts_with('/') {
        return Err(invalid(format!("path {} must start with /", quoted(path))));
    }
    if path.contains('?') {
        return Err(invalid("query not allowed"));
    }
    if path.contains('#') {
        return Err(invalid("fragment not allowed"));
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(invalid(format!(
                    "invalid percent-escape in path {}",
                    quoted(path)
                )));
            }
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
            );
        if !allowed {
            return Err(invalid(format!(
                "invalid character in path {} (RFC 3986 path characters and %XX escapes only)",
                quoted(path)
            )));
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        s.parse::<MpUri>().expect_err(s).to_string()
    }

    #[test]
    fn parses_the_seed_uri() {
        let s = "net.tcp://bot.contoso.com:18732/MediaProcessor";
        let u: MpUri = s.parse().expect("valid");
        assert_eq!(u.scheme(), "net.tcp");
        assert_eq!(u.host(), "bot.contoso.com");
        assert_eq!(u.port(), 18732);
        assert_eq!(u.path(), "/MediaProcessor");
        assert_eq!(u.to_string(), s);
        assert_eq!(u, MpUri::net_tcp("bot.contoso.com", 18732).expect("helper"));
        assert_eq!(u.ip(), None);
    }

    #[test]
    fn quic_helper() {
        let u = MpUri::quic("127.0.0.1", 4433).expect("valid");
        assert_eq!(u.to_string(), "quic://127.0.0.1:4433/MediaProcessor");
        assert_eq!(u.ip(), Some(IpAddr::from([127, 0, 0, 1])));
    }

    #[test]
    fn ipv6_in_brackets() {
        let u: MpUri = "quic://[::1]:4433/MediaProcessor".parse().expect("valid");
        assert_eq!(u.host(), "::1");
        assert_eq!(u.to_string(), "quic://[::1]:4433/MediaProcessor");
        assert_eq!(MpUri::quic("::1", 4433).expect("bare v6"), u);
        assert_eq!(MpUri::quic("[::1]", 4433).expect("bracketed v6"), u);
        assert_eq!(u.ip(), Some(IpAddr::from(Ipv6Addr::LOCALHOST)));
        assert_eq!(
            err("quic://::1:4433/MediaProcessor"),
            "mpUri: IPv6 address \"::1\" must be written in brackets"
        );
        assert_eq!(
            err("quic://[::1/MediaProcessor"),
            "mpUri: unterminated IPv6 address in host \"[::1\""
        );
        assert_eq!(err("quic://[::1]/MediaProcessor"), "mpUri: missing port");
        assert_eq!(err("quic://[zz]:1/M"), "mpUri: invalid IPv6 address \"zz\"");
        assert!("quic://[::1]x:1/M".parse::<MpUri>().is_err());
    }

    #[test]
    fn port_rules() {
        assert_eq!(
            err("net.tcp://bot.contoso.com/MediaProcessor"),
            "mpUri: missing port"
        );
        assert_eq!(
            err("net.tcp://bot.contoso.com:/MediaProcessor"),
            "mpUri: missing port"
        );
        assert_eq!(
            err("quic://h:0/MediaProcessor"),
            "mpUri: port 0 out of range (1-65535)"
        );
        assert_eq!(
            err("quic://h:65536/MediaProcessor"),
            "mpUri: port 65536 out of range (1-65535)"
        );
        assert_eq!(
            err("quic://h:99999999999999999999/M"),
            "mpUri: port 99999999999999999999 out of range (1-65535)"
        );
        assert_eq!(
            err("quic://h:+1/M"),
            "mpUri: invalid port \"+1\" (expected 1-65535)"
        );
        assert_eq!(
            err("quic://h:080/M"),
            "mpUri: invalid port \"080\" (leading zero)"
        );
        assert!("quic://h:65535/M".parse::<MpUri>().is_ok());
        assert!("quic://h:1/M".parse::<MpUri>().is_ok());
        assert!(MpUri::quic("h", 0).is_err());
    }

    #[test]
    fn scheme_rules() {
        assert!(err("bot.contoso.com:18732/MediaProcessor").starts_with("mpUri: missing scheme"));
        assert!(err("://h:1/M").starts_with("mpUri: missing scheme"));
        assert_eq!(
            err("1quic://h:1/M"),
            "mpUri: invalid scheme \"1quic\" (must start with a letter)"
        );
        assert_eq!(
            err("qu_ic://h:1/M"),
            "mpUri: invalid scheme \"qu_ic\" (letters, digits, +, - and . only)"
        );
        assert!("a+b-c.d://h:1/M".parse::<MpUri>().is_ok());
        assert!(MpUri::new("", "h", 1, "/M").is_err());
    }

    #[test]
    fn host_rules() {
        assert_eq!(err("quic://:1/M"), "mpUri: missing host");
        assert_eq!(err("quic:///M"), "mpUri: missing host");
        assert_eq!(
            err("quic://a..b:1/M"),
            "mpUri: invalid host \"a..b\" (empty label)"
        );
        assert_eq!(
            err("quic://-a.b:1/M"),
            "mpUri: invalid host \"-a.b\" (label starts or ends with -)"
        );
        assert_eq!(
            err("quic://a_b:1/M"),
            "mpUri: invalid host \"a_b\" (letters, digits, - and . only)"
        );
        assert_eq!(
            err("quic://256.1.1.1:1/M"),
            "mpUri: invalid IPv4 address \"256.1.1.1\""
        );
        assert!(err(&format!("quic://{}:1/M", "a".repeat(64))).contains("longer than 63"));
        assert!(err(&format!("quic://{}:1/M", "a.".repeat(127) + "a")).contains("too long"));
        assert!("quic://localhost:1/M".parse::<MpUri>().is_ok());
        assert!("quic://xn--bcher-kva.example:1/M".parse::<MpUri>().is_ok());
        assert!(MpUri::quic("bad host", 1).is_err());
        assert!(MpUri::quic("[::1", 1).is_err());
    }

    #[test]
    fn no_userinfo_query_fragment() {
        assert_eq!(err("quic://u@h:1/M"), "mpUri: userinfo not allowed");
        assert_eq!(err("quic://h:1/M?x=1"), "mpUri: query not allowed");
        assert_eq!(err("quic://h:1/M#f"), "mpUri: fragment not allowed");
        assert_eq!(err("quic://h:1?x"), "mpUri: query not allowed");
    }

    #[test]
    fn path_rules() {
        assert_eq!(
            err("quic://h:1"),
            "mpUri: missing path (expected e.g. /MediaProcessor)"
        );
        assert!(err("quic://h:1/a b").contains("invalid character in path"));
        assert!(err("quic://h:1/a%zz").contains("invalid percent-escape"));
        assert!(err("quic://h:1/a%2").contains("invalid percent-escape"));
        assert!("quic://h:1/a%2Fb/c;d=e:f@g".parse::<MpUri>().is_ok());
        assert!("quic://h:1/".parse::<MpUri>().is_ok());
        assert_eq!(
            MpUri::new("quic", "h", 1, "MediaProcessor")
                .expect_err("relative")
                .to_string(),
            "mpUri: path \"MediaProcessor\" must start with /"
        );
        assert!(MpUri::new("quic", "h", 1, "/M?q").is_err());
    }

    #[test]
    fn empty_and_unicode_inputs() {
        assert!(err("").starts_with("mpUri: empty"));
        assert!("quic://bücher.example:1/M".parse::<MpUri>().is_err());
        assert!("quic://h:1/ü".parse::<MpUri>().is_err());
        assert!("quic://h:١/M".parse::<MpUri>().is_err());
    }

    #[test]
    fn serde_as_string() {
        let u = MpUri::quic("h", 9).expect("valid");
        let j = serde_json::to_string(&u).expect("ser");
        assert_eq!(j, "\"quic://h:9/MediaProcessor\"");
        assert_eq!(serde_json::from_str::<MpUri>(&j).expect("de"), u);
        assert!(serde_json::from_str::<MpUri>("\"quic://h/M\"").is_err());
    }
}
