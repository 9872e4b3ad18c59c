//! The host's configuration: a TOML file, then `MP_<SECTION>_<KEY>` environment
//! overrides, then validation. Every key is listed in [`KEYS`] (and in
//! `docs/host-config.md`); an unknown key in the file or an unknown `MP_<SECTION>_…`
//! variable of a host section is refused by name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What a configuration key holds (how an environment value is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Str,
    /// A non-negative integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// A list of text, comma-separated in the environment.
    List,
}

/// One documented configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Its section (`[graph]`, ...).
    pub section: &'static str,
    /// Its name in the section.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// What it means.
    pub doc: &'static str,
}

impl Key {
    /// The environment variable that overrides it: `MP_<SECTION>_<NAME>`, upper case.
    pub fn env_var(&self) -> String {
        format!("MP_{}_{}", self.section, self.name).to_ascii_uppercase()
    }
}

const fn key(section: &'static str, name: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key {
        section,
        name,
        kind,
        doc,
    }
}

/// Every key the host reads.
pub const KEYS: &[Key] = &[
    key(
        "graph",
        "base_url",
        Kind::Str,
        "Graph base URL, e.g. https://graph.microsoft.com/v1.0 (required)",
    ),
    key(
        "graph",
        "token_url",
        Kind::Str,
        "OAuth2 token endpoint of the tenant (required)",
    ),
    key(
        "graph",
        "client_id",
        Kind::Str,
        "the bot's application (client) id (required)",
    ),
    key(
        "graph",
        "client_secret",
        Kind::Str,
        "its client secret (this or client_certificate_file; better from MP_GRAPH_CLIENT_SECRET)",
    ),
    key(
        "graph",
        "client_certificate_file",
        Kind::Str,
        "PEM certificate registered for the app: tokens are requested with a client assertion signed with client_key_file (instead of client_secret)",
    ),
    key(
        "graph",
        "client_key_file",
        Kind::Str,
        "PEM RSA private key of client_certificate_file (with it)",
    ),
    key(
        "graph",
        "keep_alive_s",
        Kind::Int,
        "seconds between keepAlive requests per call (default 900)",
    ),
    key(
        "callback",
        "bind",
        Kind::Str,
        "TCP address of the callback server (default 127.0.0.1:9442)",
    ),
    key(
        "callback",
        "public_url",
        Kind::Str,
        "the shared callbackUri (the bot's registered one, for incoming calls; default http://{bound address}/callback); calls this instance creates get {it, a trailing /callback dropped}/callbacks/{routing.instance_id}",
    ),
    key(
        "callback",
        "tls_cert_file",
        Kind::Str,
        "PEM certificate chain (leaf first) of the callback server: it then serves HTTPS only (with tls_key_file; default: plain HTTP)",
    ),
    key(
        "callback",
        "tls_key_file",
        Kind::Str,
        "PEM private key of tls_cert_file's certificate (with tls_cert_file)",
    ),
    key(
        "callback",
        "openid_url",
        Kind::Str,
        "OpenID configuration whose keys sign the service's callbacks (required unless allow_unauthenticated)",
    ),
    key(
        "callback",
        "allow_unauthenticated",
        Kind::Bool,
        "accept callbacks without checking their JWT: local tests only (default false)",
    ),
    key(
        "media",
        "bind",
        Kind::Str,
        "UDP address of the QUIC media server (default 127.0.0.1:0)",
    ),
    key(
        "media",
        "public_host",
        Kind::Str,
        "host name or address in each blob's mpUri (default: the bind IP)",
    ),
    key(
        "media",
        "public_port",
        Kind::Int,
        "port in each blob's mpUri (default: the bound port)",
    ),
    key(
        "media",
        "cert_file",
        Kind::Str,
        "PEM certificate chain of the media server (with key_file; default: a development self-signed certificate)",
    ),
    key(
        "media",
        "key_file",
        Kind::Str,
        "PEM private key (with cert_file)",
    ),
    key(
        "media",
        "max_sessions",
        Kind::Int,
        "media sessions held at most (default 10000)",
    ),
    key(
        "media",
        "reactor_threads",
        Kind::Int,
        "reactor threads; 0 = one per CPU (default 0)",
    ),
    key(
        "media",
        "codecs",
        Kind::List,
        "codecs accepted, most preferred first: pcm, opus (default [\"pcm\", \"opus\"])",
    ),
    key(
        "admin",
        "bind",
        Kind::Str,
        "TCP address of the admin port: /metrics, /healthz, /readyz (default 127.0.0.1:9100)",
    ),
    key(
        "bot",
        "kind",
        Kind::Str,
        "the bot every call runs: echo (default echo)",
    ),
    key(
        "bot",
        "answer_incoming",
        Kind::Bool,
        "answer calls the service offers, app-hosted (default true; false: reject them)",
    ),
    key(
        "calls",
        "place",
        Kind::List,
        "seed scenarios to place at start, one call each (e.g. [\"p2p-voip-app\"]; default none)",
    ),
    key(
        "drain",
        "deadline_s",
        Kind::Int,
        "on SIGTERM, seconds calls may run on before they are hung up (default 30)",
    ),
    key(
        "drain",
        "linger_ms",
        Kind::Int,
        "after the last call ended, how long callbacks are still taken, in ms (default 2000)",
    ),
    key(
        "routing",
        "instance_id",
        Kind::Str,
        "this instance's name in its calls' callbackUri {base}/callbacks/{instance_id}: letters, digits, '.', '_', '-', at most 63 (default: the host name, else \"host\")",
    ),
    key(
        "routing",
        "peers",
        Kind::List,
        "base URLs (http(s)://host:port) of the other instances' callback servers, to which notifications of calls this instance does not own are forwarded (default none)",
    ),
];

/// Environment variables of host sections that other commands read (ignored here).
const FOREIGN_ENV: &[&str] = &["MP_BOT_AUTH_TOKEN"];

/// A configuration problem, naming the key (or variable, or file) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {problem}")]
pub struct ConfigError {
    /// The key (`media.cert_file`), environment variable or file.
    pub what: String,
    /// What is wrong with it.
    pub problem: String,
}

fn err(what: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        what: what.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    graph: RawGraph,
    #[serde(default)]
    callback: RawCallback,
    #[serde(default)]
    media: RawMedia,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    bot: RawBot,
    #[serde(default)]
    calls: RawCalls,
    #[serde(default)]
    drain: RawDrain,
    #[serde(default)]
    routing: RawRouting,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraph {
    base_url: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_certificate_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    keep_alive_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCallback {
    bind: Option<String>,
    public_url: Option<String>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    openid_url: Option<String>,
    allow_unauthenticated: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    bind: Option<String>,
    public_host: Option<String>,
    public_port: Option<u64>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    max_sessions: Option<u64>,
    reactor_threads: Option<u64>,
    codecs: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    bind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    kind: Option<String>,
    answer_incoming: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalls {
    place: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrain {
    deadline_s: Option<u64>,
    linger_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    instance_id: Option<String>,
    peers: Option<Vec<String>>,
}

/// Where the host reaches Graph.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Graph base URL.
    pub base_url: String,
    /// OAuth2 token endpoint.
    pub token_url: String,
    /// The bot's application (client) id.
    pub client_id: String,
    /// Its client secret (empty when `client_certificate` is set).
    pub client_secret: String,
    /// Its certificate credential (`graph.client_certificate_file` and
    /// `graph.client_key_file`), used instead of the secret.
    pub client_certificate: Option<graph::ClientCertificate>,
    /// keepAlive interval per call.
    pub keep_alive: Duration,
}

/// The callback server.
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// Where it listens.
    pub bind: SocketAddr,
    /// The shared callbackUri (`None`: `http://{bound}/callback`); calls this instance
    /// creates get `{it without a trailing /callback}/callbacks/{instance_id}`.
    pub public_url: Option<String>,
    /// OpenID configuration of the callbacks' signing keys (`None`: unauthenticated).
    pub openid_url: Option<String>,
    /// HTTPS (`callback.tls_cert_file` and `callback.tls_key_file`); `None`: plain HTTP.
    pub tls: Option<CallbackTls>,
}

/// The callback server's TLS identity, loaded and checked (the key matches the
/// certificate) when the configuration is.
#[derive(Debug, Clone)]
pub struct CallbackTls {
    /// The PEM certificate chain file.
    pub cert_file: PathBuf,
    /// The PEM private key file.
    pub key_file: PathBuf,
    /// The TLS server configuration made of them.
    pub(crate) server: std::sync::Arc<rustls::ServerConfig>,
}

/// Routing between instances behind one shared callback URL (see the `routing`
/// module of the service for the rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSettings {
    /// This instance's name: calls it creates get the callbackUri
    /// `{base}/callbacks/{instance_id}`.
    pub instance_id: String,
    /// Base URLs of the other instances' callback servers (no trailing `/`).
    pub peers: Vec<String>,
}

/// The default instance id: the host name (a pod's name under Kubernetes), if it is
/// a valid id, else `host`.
fn default_instance_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| valid_instance_id(h))
        .unwrap_or_else(|| "host".to_owned())
}

fn valid_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The bot every call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BotKind {
    /// Every received frame goes back, paced.
    Echo,
}

/// A checked host configuration.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Graph.
    pub graph: GraphSettings,
    /// The callback server.
    pub callback: CallbackSettings,
    /// The media platform.
    pub media: platform::MediaPlatformSettings,
    /// The admin port.
    pub admin_bind: SocketAddr,
    /// The bot.
    pub bot: BotKind,
    /// Answer offered calls (else reject them).
    pub answer_incoming: bool,
    /// Calls placed at start.
    pub place: Vec<signaling::Scenario>,
    /// How long calls run on after SIGTERM.
    pub drain_deadline: Duration,
    /// How long callbacks are still taken after the last call ended.
    pub drain_linger: Duration,
    /// Routing between instances.
    pub routing: RoutingSettings,
}

impl HostConfig {
    /// Reads `path` (TOML), applies the process environment's `MP_…` overrides, and
    /// checks the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
        Self::from_toml(&text, std::env::vars(), &path.display().to_string())
    }

    /// Parses `text` (TOML; `origin` names it in errors), applies the `MP_…`
    /// variables of `env`, and checks the result.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        origin: &str,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            err(origin, format!("not valid TOML: {}", e.message().trim()))
        })?;
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("MP_"))
            .collect();
        apply_env(&mut table, &env)?;
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| err(origin, e.message().trim().to_owned()))?;
        check(raw)
    }
}

/// Sets each key whose `MP_<SECTION>_<KEY>` variable is set; refuses unknown variables
/// of the host's sections.
fn apply_env(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (var, value) in env {
        let known = KEYS.iter().find(|k| k.env_var() == *var);
        let Some(k) = known else {
            let host_section = KEYS
                .iter()
                .any(|k| var.starts_with(&format!("MP_{}_", k.section.to_ascii_uppercase())));
            if host_section && !FOREIGN_ENV.contains(&var.as_str()) {
                return Err(err(
                    var.clone(),
                    "unknown host setting (see docs/host-config.md for the variables)",
                ));
            }
            continue;
        };
        let v = match k.kind {
            Kind::Str => toml::Value::String(value.clone()),
            Kind::Int => toml::Value::Integer(
                value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| {
                        err(
                            var.clone(),
                            format!("not a non-negative integer: {value:?}"),
                        )
                    })?
                    .into(),
            ),
            Kind::Bool => toml::Value::Boolean(match value.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(err(var.clone(), format!("not true or false: {value:?}"))),
            }),
            Kind::List => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
        };
        let section = table
            .entry(k.section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section) = section.as_table_mut() else {
            return Err(err(k.section, "must be a table ([section])"));
        };
        section.insert(k.name.to_owned(), v);
    }
    Ok(())
}

fn required(value: Option<String>, key: &str) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(err(key, "empty")),
        None => Err(err(key, "missing (required)")),
    }
}

fn addr(value: Option<String>, key: &str, default: &str) -> Result<SocketAddr, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    text.parse()
        .map_err(|_| err(key, format!("not an address like 127.0.0.1:9100: {text:?}")))
}

fn url(value: &str, key: &str) -> Result<(), ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(())
    } else {
        Err(err(key, format!("not an http(s) URL: {value:?}")))
    }
}

fn check(raw: RawConfig) -> Result<HostConfig, ConfigError> {
    let g = raw.graph;
    let graph = GraphSettings {
        base_url: required(g.base_url, "graph.base_url")?,
        token_url: required(g.token_url, "graph.token_url")?,
        client_id: required(g.client_id, "graph.client_id")?,
        client_secret: String::new(),
        client_certificate: None,
        keep_alive: Duration::from_secs(g.keep_alive_s.unwrap_or(900)),
    };
    let mut graph = graph;
    match (
        g.client_secret,
        g.client_certificate_file,
        g.client_key_file,
    ) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(err(
                "graph.client_secret",
                "set together with graph.client_certificate_file/client_key_file: use exactly one kind of credential",
            ));
        }
        (Some(secret), None, None) => {
            graph.client_secret = required(Some(secret), "graph.client_secret")?
        }
        (None, Some(cert), Some(key)) => {
            let cert_pem = std::fs::read_to_string(&cert).map_err(|e| {
                err(
                    "graph.client_certificate_file",
                    format!("{}: cannot read: {e}", cert.display()),
                )
            })?;
            let key_pem = std::fs::read_to_string(&key).map_err(|e| {
                err(
                    "graph.client_key_file",
                    format!("{}: cannot read: {e}", key.display()),
                )
            })?;
            if graph::assertion::certificate_der(&cert_pem).is_none() {
                return Err(err(
                    "graph.client_certificate_file",
                    format!("{}: not PEM: no CERTIFICATE block in it", cert.display()),
                ));
            }
            let certificate = graph::ClientCertificate::from_pem(&cert_pem, &key_pem)
                .map_err(|e| err("graph.client_key_file", format!("{}: {e}", key.display())))?;
            graph.client_certificate = Some(certificate);
        }
        (None, Some(_), None) => {
            return Err(err(
                "graph.client_key_file",
                "missing (client_certificate_file needs it)",
            ));
        }
        (None, None, Some(_)) => {
            return Err(err(
                "graph.client_certificate_file",
                "missing (client_key_file needs it)",
            ));
        }
        (None, None, None) => {
            return Err(err(
                "graph.client_secret",
                "missing (required, or graph.client_certificate_file and graph.client_key_file)",
            ));
        }
    }
    url(&graph.base_url, "graph.base_url")?;
    url(&graph.token_url, "graph.token_url")?;
    if graph.keep_alive.is_zero() || graph.keep_alive > Duration::from_secs(45 * 60) {
        return Err(err(
            "graph.keep_alive_s",
            "must be 1..2700 (the service ends calls without keepAlive for 45 min)",
        ));
    }

    let c = raw.callback;
    if let Some(u) = &c.public_url {
        url(u, "callback.public_url")?;
    }
    if let Some(u) = &c.openid_url {
        url(u, "callback.openid_url")?;
    }
    let tls = match (c.tls_cert_file, c.tls_key_file) {
        (Some(cert_file), Some(key_file)) => {
            let server = crate::tls::server_config(
                &cert_file,
                &key_file,
                "callback.tls_cert_file",
                "callback.tls_key_file",
            )?;
            Some(CallbackTls {
                cert_file,
                key_file,
                server,
            })
        }
        (Some(_), None) => {
            return Err(err(
                "callback.tls_key_file",
                "missing (tls_cert_file needs it)",
            ));
        }
        (None, Some(_)) => {
            return Err(err(
                "callback.tls_cert_file",
                "missing (tls_key_file needs it)",
            ));
        }
        (None, None) => None,
    };
    if tls.is_some()
        && let Some(u) = &c.public_url
        && !u.starts_with("https://")
    {
        return Err(err(
            "callback.public_url",
            format!(
                "must be https:// when the callback server serves TLS (callback.tls_cert_file): {u:?}"
            ),
        ));
    }
    let unauthenticated = c.allow_unauthenticated.unwrap_or(false);
    if c.openid_url.is_none() && !unauthenticated {
        return Err(err(
            "callback.openid_url",
            "missing: callbacks must be authenticated (set callback.allow_unauthenticated = true for local tests only)",
        ));
    }
    let callback = CallbackSettings {
        bind: addr(c.bind, "callback.bind", "127.0.0.1:9442")?,
        public_url: c.public_url,
        openid_url: c.openid_url,
        tls,
    };

    let m = raw.media;
    let mut media = platform::MediaPlatformSettings::dev_loopback();
    media.bind = addr(m.bind, "media.bind", "127.0.0.1:0")?;
    media.public_host = match m.public_host {
        Some(h) if h.trim().is_empty() => return Err(err("media.public_host", "empty")),
        Some(h) => h,
        None => media.bind.ip().to_string(),
    };
    media.public_port = match m.public_port {
        Some(p) => Some(
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| err("media.public_port", format!("not a port (1-65535): {p}")))?,
        ),
        None => None,
    };
    media.certificate = match (m.cert_file, m.key_file) {
        (Some(cert), Some(key)) => platform::Certificate::Identity(
            platform::ServerIdentity::from_pem_files(&cert, &key).map_err(|e| {
                err(
                    "media.cert_file",
                    format!("{} / {}: {e}", cert.display(), key.display()),
                )
            })?,
        ),
        (Some(_), None) => return Err(err("media.key_file", "missing (cert_file needs it)")),
        (None, Some(_)) => return Err(err("media.cert_file", "missing (key_file needs it)")),
        (None, None) => platform::Certificate::DevSelfSigned,
    };
    if let Some(n) = m.max_sessions {
        if n == 0 {
            return Err(err("media.max_sessions", "must be at least 1"));
        }
        media.limits.max_sessions = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(n) = m.reactor_threads {
        media.reactor_threads =
            usize::try_from(n)
                .ok()
                .filter(|n| *n <= 1024)
                .ok_or_else(|| {
                    err(
                        "media.reactor_threads",
                        format!("too many: {n} (at most 1024)"),
                    )
                })?;
    }
    if let Some(names) = m.codecs {
        if names.is_empty() {
            return Err(err("media.codecs", "empty: name at least one of pcm, opus"));
        }
        media.codecs = names
            .iter()
            .map(|n| {
                n.parse::<platform::Codec>()
                    .map_err(|e| err("media.codecs", format!("{n:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
    }

    let admin_bind = addr(raw.admin.bind, "admin.bind", "127.0.0.1:9100")?;
    let bot = match raw.bot.kind.as_deref().unwrap_or("echo") {
        "echo" => BotKind::Echo,
        other => {
            return Err(err(
                "bot.kind",
                format!("unknown bot {other:?} (this host runs: echo)"),
            ));
        }
    };
    let place = raw
        .calls
        .place
        .unwrap_or_default()
        .iter()
        .map(|n| {
            n.parse::<signaling::Scenario>().map_err(|_| {
                err(
                    "calls.place",
                    format!(
                        "unknown scenario {n:?} (one of: {})",
                        signaling::Scenario::names().join(", ")
                    ),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let d = raw.drain;
    let drain_deadline = Duration::from_secs(d.deadline_s.unwrap_or(30));
    if drain_deadline > Duration::from_secs(24 * 3600) {
        return Err(err("drain.deadline_s", "more than a day"));
    }
    let drain_linger = Duration::from_millis(d.linger_ms.unwrap_or(2000));
    if drain_linger > Duration::from_secs(600) {
        return Err(err("drain.linger_ms", "more than 10 minutes"));
    }
    let r = raw.routing;
    let instance_id = match r.instance_id {
        Some(id) if valid_instance_id(&id) => id,
        Some(id) => {
            return Err(err(
                "routing.instance_id",
                format!("not 1-63 letters, digits, '.', '_' or '-': {id:?}"),
            ));
        }
        None => default_instance_id(),
    };
    let peers = r
        .peers
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let p = p.trim().trim_end_matches('/').to_owned();
            url(&p, "routing.peers")?;
            let rest = p.split_once("://").map_or("", |(_, r)| r);
            if rest.is_empty() || rest.contains('/') || rest.contains('?') {
                return Err(err(
                    "routing.peers",
                    format!("not a base URL like http://10.0.0.2:9442 (no path): {p:?}"),
                ));
            }
            Ok(p)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HostConfig {
        graph,
        callback,
        media,
        admin_bind,
        bot,
        answer_incoming: raw.bot.answer_incoming.unwrap_or(true),
        place,
        drain_deadline,
        drain_linger,
        routing: RoutingSettings { instance_id, peers },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[graph]
base_url = "http://127.0.0.1:8080/v1.0"
token_url = "http://127.0.0.1:8080/t/oauth2/v2.0/token"
client_id = "app"
client_secret = "secret"
[callback]
allow_unauthenticated = true
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<HostConfig, ConfigError> {
        HostConfig::from_toml(
            text,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            "host.toml",
        )
    }

    #[test]
    fn minimal_file_takes_the_defaults() {
        let c = load(MINIMAL, &[]).expect("valid");
        assert_eq!(c.admin_bind.to_string(), "127.0.0.1:9100");
        assert_eq!(c.callback.bind.to_string(), "127.0.0.1:9442");
        assert_eq!(c.drain_deadline, Duration::from_secs(30));
        assert_eq!(c.bot, BotKind::Echo);
        assert!(c.answer_incoming);
        assert!(c.place.is_empty());
        assert!(valid_instance_id(&c.routing.instance_id));
        assert!(c.routing.peers.is_empty());
    }

    #[test]
    fn routing_from_the_file_and_the_environment() {
        let c = load(
            &format!(
                "{MINIMAL}[routing]\ninstance_id = 'mp-0'\npeers = ['http://10.0.0.2:9442/']\n"
            ),
            &[],
        )
        .expect("valid");
        assert_eq!(c.routing.instance_id, "mp-0");
        assert_eq!(c.routing.peers, ["http://10.0.0.2:9442"]);
        let c = load(
            MINIMAL,
            &[
                ("MP_ROUTING_INSTANCE_ID", "mp-1"),
                ("MP_ROUTING_PEERS", "http://a:1, https://b:2"),
            ],
        )
        .expect("valid");
        assert_eq!(c.routing.instance_id, "mp-1");
        assert_eq!(c.routing.peers, ["http://a:1", "https://b:2"]);
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            MINIMAL,
            &[
                ("MP_GRAPH_CLIENT_SECRET", "from-env"),
                ("MP_DRAIN_DEADLINE_S", "5"),
                ("MP_CALLS_PLACE", "p2p-voip-app, group-app"),
                ("MP_BOT_ANSWER_INCOMING", "false"),
                ("MP_BOT_AUTH_TOKEN", "serve's, ignored"),
                ("PATH", "/bin"),
            ],
        )
        .expect("valid");
        assert_eq!(c.graph.client_secret, "from-env");
        assert_eq!(c.drain_deadline, Duration::from_secs(5));
        assert_eq!(c.place.len(), 2);
        assert!(!c.answer_incoming);
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        /// A file, its environment, and what the error must say.
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            ("[graph]\nbase_url = 'x'\n", &[], "graph.token_url: missing"),
            (
                MINIMAL,
                &[("MP_DRAIN_DEADLINE_S", "soon")],
                "MP_DRAIN_DEADLINE_S: not a non-negative integer",
            ),
            (
                MINIMAL,
                &[("MP_MEDIA_PORT", "1")],
                "MP_MEDIA_PORT: unknown host setting",
            ),
            (
                &format!("{MINIMAL}[media]\ncodecs = ['mp3']\n"),
                &[],
                "media.codecs: \"mp3\"",
            ),
            (
                &format!("{MINIMAL}[media]\nbind = 'nowhere'\n"),
                &[],
                "media.bind: not an address",
            ),
            (
                &format!("{MINIMAL}[media]\ncert_file = 'a.pem'\n"),
                &[],
                "media.key_file: missing",
            ),
            (
                &format!("{MINIMAL}[calls]\nplace = ['p2p']\n"),
                &[],
                "calls.place: unknown scenario \"p2p\"",
            ),
            (
                &format!("{MINIMAL}[bot]\nkind = 'wav'\n"),
                &[],
                "bot.kind: unknown bot",
            ),
            (
                &format!("{MINIMAL}[drain]\ndeadline = 3\n"),
                &[],
                "unknown field `deadline`",
            ),
            (
                &format!("{MINIMAL}[metrics]\n"),
                &[],
                "unknown field `metrics`",
            ),
            ("[graph\n", &[], "host.toml: not valid TOML"),
            (
                &MINIMAL.replace("allow_unauthenticated = true", ""),
                &[],
                "callback.openid_url: missing",
            ),
            (
                &format!("{MINIMAL}[media]\npublic_port = 70000\n"),
                &[],
                "media.public_port: not a port",
            ),
            (
                MINIMAL,
                &[("MP_ROUTING_INSTANCE_ID", "a/b")],
                "routing.instance_id: not 1-63",
            ),
            (
                MINIMAL,
                &[("MP_ROUTING_PEERS", "10.0.0.2:9442")],
                "routing.peers: not an http(s) URL",
            ),
            (
                MINIMAL,
                &[("MP_ROUTING_PEERS", "http://a:1/callback")],
                "routing.peers: not a base URL",
            ),
            (
                &format!("{MINIMAL}[routing]\npeer = []\n"),
                &[],
                "unknown field `peer`",
            ),
        ];
        for (text, env, want) in cases {
            let e = load(text, env).expect_err(want).to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    #[test]
    fn every_key_is_documented() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/host-config.md"
        ))
        .expect("docs/host-config.md");
        for k in KEYS {
            assert!(
                doc.contains(&format!("`{}.{}`", k.section, k.name)),
                "{}.{} undocumented",
                k.section,
                k.name
            );
            assert!(doc.contains(&k.env_var()), "{} undocumented", k.env_var());
        }
    }
}
