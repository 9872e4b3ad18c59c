//! The host's configuration: a TOML file, then `MP_<SECTION>_<KEY>` environment
//! overrides, then validation. Every key is listed in [`KEYS`] (and in
//! `docs/host-config.md`); an unknown key in the file or an unknown `MP_<SECTION>_…`
//! variable of a host section is refused by name.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
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
    key(
        "whip",
        "bind",
        Kind::Str,
        "TCP address of the WHIP endpoint (POST /whip: WebRTC calls, each served by the bot; required in [whip]; no [whip] section: no WHIP)",
    ),
    key(
        "whip",
        "token",
        Kind::Str,
        "bearer token every WHIP POST and DELETE must carry (default none: open; better from MP_WHIP_TOKEN)",
    ),
    key(
        "whip",
        "candidate_ip",
        Kind::Str,
        "address of the WebRTC calls' ICE host candidates (default: the bind IP, or for 0.0.0.0 the local address of the route to each client)",
    ),
    key(
        "ws",
        "bind",
        Kind::Str,
        "TCP address of the platforms' media WebSockets /acs, /twilio, /vonage (each stream a call served by the bot; required in [ws]; no [ws] section: none)",
    ),
    key(
        "ws",
        "twilio_auth_token",
        Kind::Str,
        "Twilio auth token: /twilio handshakes must carry its X-Twilio-Signature (default none: open; better from MP_WS_TWILIO_AUTH_TOKEN)",
    ),
    key(
        "ws",
        "twilio_public_url",
        Kind::Str,
        "public URL base Twilio connects to (ws:// or wss://, e.g. wss://media.example.com), for the signature behind a proxy (default: the request's Host)",
    ),
    key(
        "ws",
        "vonage_token",
        Kind::Str,
        "bearer token /vonage handshakes must carry (the NCCO's headers; default none: open; better from MP_WS_VONAGE_TOKEN)",
    ),
    key(
        "ws",
        "acs_audience",
        Kind::Str,
        "ACS resource id: /acs handshakes must carry a JWT with this audience (with acs_jwks_url; default none: open)",
    ),
    key(
        "ws",
        "acs_jwks_url",
        Kind::Str,
        "http(s) URL of the key set (JWKS) ACS signs its streaming tokens with (with acs_audience)",
    ),
    key(
        "ws",
        "acs_issuer",
        Kind::Str,
        "issuer the ACS tokens must name (default https://acscallautomation.communication.azure.com)",
    ),
    key(
        "ws",
        "acs_audio",
        Kind::Str,
        "what /acs streams carry, as the ACS subscription's audioChannelType: mixed or unmixed (each participant's own stream besides the mix, up to 4; default mixed)",
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
    whip: Option<RawWhip>,
    ws: Option<RawWs>,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhip {
    bind: Option<String>,
    token: Option<String>,
    candidate_ip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWs {
    bind: Option<String>,
    twilio_auth_token: Option<String>,
    twilio_public_url: Option<String>,
    vonage_token: Option<String>,
    acs_audience: Option<String>,
    acs_jwks_url: Option<String>,
    acs_issuer: Option<String>,
    acs_audio: Option<String>,
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

/// The WHIP endpoint (`[whip]`): WebRTC calls, each served by the host's bot.
#[derive(Clone)]
pub struct WhipSettings {
    /// Where it listens (`whip.bind`).
    pub bind: SocketAddr,
    /// Bearer token offers and DELETEs must carry (`whip.token`; `None`: open).
    pub token: Option<String>,
    /// Address of the calls' ICE host candidates (`whip.candidate_ip`; `None`: the
    /// bind IP, or per client for an unspecified bind).
    pub candidate_ip: Option<IpAddr>,
}

impl std::fmt::Debug for WhipSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhipSettings")
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("candidate_ip", &self.candidate_ip)
            .finish()
    }
}

/// The platforms' media WebSockets (`[ws]`): ACS, Twilio and Vonage streams, each a
/// call served by the host's bot.
#[derive(Clone)]
pub struct WsSettings {
    /// Where they listen (`ws.bind`).
    pub bind: SocketAddr,
    /// Credentials per dialect (a dialect without any is served unauthenticated).
    pub auth: ws_link::WsAuthConfig,
    /// What `/acs` streams carry (`ws.acs_audio`).
    pub acs_audio: platform::AudioStreams,
}

impl std::fmt::Debug for WsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: bool| if o { "<open>" } else { "<set>" };
        f.debug_struct("WsSettings")
            .field("bind", &self.bind)
            .field("acs", &set(self.auth.is_open(ws_link::Dialect::Acs)))
            .field("twilio", &set(self.auth.is_open(ws_link::Dialect::Twilio)))
            .field("vonage", &set(self.auth.is_open(ws_link::Dialect::Vonage)))
            .field("acs_audio", &self.acs_audio)
            .finish()
    }
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
    /// The WHIP endpoint (`None`: no `[whip]` section, no WHIP).
    pub whip: Option<WhipSettings>,
    /// The media WebSockets (`None`: no `[ws]` section, none).
    pub ws: Option<WsSettings>,
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
        whip: raw.whip.map(check_whip).transpose()?,
        ws: raw.ws.map(check_ws).transpose()?,
    })
}

/// A secret that, when given, is not empty.
fn secret(value: Option<String>, key: &str) -> Result<Option<String>, ConfigError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(err(key, "empty (leave it out for none)")),
        v => Ok(v),
    }
}

fn check_whip(w: RawWhip) -> Result<WhipSettings, ConfigError> {
    let bind = w.bind.ok_or_else(|| {
        err(
            "whip.bind",
            "missing (required in [whip]; leave the section out to serve no WHIP)",
        )
    })?;
    let candidate_ip = match w.candidate_ip {
        Some(text) => {
            let ip: IpAddr = text.trim().parse().map_err(|_| {
                err(
                    "whip.candidate_ip",
                    format!("not an IP address like 192.0.2.10: {text:?}"),
                )
            })?;
            if ip.is_unspecified() {
                return Err(err(
                    "whip.candidate_ip",
                    format!("{ip} is no address a client can reach"),
                ));
            }
            Some(ip)
        }
        None => None,
    };
    Ok(WhipSettings {
        bind: addr(Some(bind), "whip.bind", "")?,
        token: secret(w.token, "whip.token")?,
        candidate_ip,
    })
}

fn check_ws(w: RawWs) -> Result<WsSettings, ConfigError> {
    let bind = w.bind.ok_or_else(|| {
        err(
            "ws.bind",
            "missing (required in [ws]; leave the section out to serve no media WebSockets)",
        )
    })?;
    let bind = addr(Some(bind), "ws.bind", "")?;
    let twilio_auth_token = secret(w.twilio_auth_token, "ws.twilio_auth_token")?;
    if let Some(u) = &w.twilio_public_url {
        if twilio_auth_token.is_none() {
            return Err(err(
                "ws.twilio_public_url",
                "set without ws.twilio_auth_token (it is only used to check Twilio's signature)",
            ));
        }
        if !(u.starts_with("ws://") || u.starts_with("wss://")) {
            return Err(err(
                "ws.twilio_public_url",
                format!("not a ws:// or wss:// URL: {u:?}"),
            ));
        }
    }
    let acs = match (secret(w.acs_audience, "ws.acs_audience")?, w.acs_jwks_url) {
        (Some(audience), Some(jwks)) => {
            url(&jwks, "ws.acs_jwks_url")?;
            let issuer = match w.acs_issuer {
                Some(i) if i.trim().is_empty() => return Err(err("ws.acs_issuer", "empty")),
                Some(i) => i,
                None => ws_link::ACS_ISSUER.to_owned(),
            };
            Some(graph::AuthConfig::for_jwks(audience, jwks, issuer))
        }
        (Some(_), None) => {
            return Err(err("ws.acs_jwks_url", "missing (ws.acs_audience needs it)"));
        }
        (None, Some(_)) => {
            return Err(err("ws.acs_audience", "missing (ws.acs_jwks_url needs it)"));
        }
        (None, None) => {
            if w.acs_issuer.is_some() {
                return Err(err(
                    "ws.acs_issuer",
                    "set without ws.acs_audience and ws.acs_jwks_url",
                ));
            }
            None
        }
    };
    let acs_audio = match w.acs_audio.as_deref().unwrap_or("mixed") {
        "mixed" => platform::AudioStreams::MIXED,
        "unmixed" => platform::AudioStreams::mixed_and_unmixed(4),
        other => {
            return Err(err(
                "ws.acs_audio",
                format!("{other:?}: one of mixed, unmixed"),
            ));
        }
    };
    Ok(WsSettings {
        bind,
        auth: ws_link::WsAuthConfig {
            acs,
            twilio_auth_token,
            twilio_public_url: w.twilio_public_url,
            vonage_token: secret(w.vonage_token, "ws.vonage_token")?,
        },
        acs_audio,
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
            (
                &format!("{MINIMAL}[whip]\ntoken = 't'\n"),
                &[],
                "whip.bind: missing",
            ),
            (
                MINIMAL,
                &[
                    ("MP_WHIP_BIND", "127.0.0.1:0"),
                    ("MP_WHIP_CANDIDATE_IP", "0.0.0.0"),
                ],
                "whip.candidate_ip: 0.0.0.0 is no address",
            ),
            (
                &format!("{MINIMAL}[whip]\nbind = '127.0.0.1:0'\ntoken = ''\n"),
                &[],
                "whip.token: empty",
            ),
            (&format!("{MINIMAL}[ws]\n"), &[], "ws.bind: missing"),
            (
                &format!("{MINIMAL}[ws]\nbind = '127.0.0.1:0'\nacs_audience = 'r'\n"),
                &[],
                "ws.acs_jwks_url: missing",
            ),
            (
                &format!("{MINIMAL}[ws]\nbind = '127.0.0.1:0'\nacs_audio = 'stereo'\n"),
                &[],
                "ws.acs_audio: \"stereo\"",
            ),
            (
                &format!("{MINIMAL}[ws]\nbind = '127.0.0.1:0'\ntwilio_public_url = 'wss://a'\n"),
                &[],
                "ws.twilio_public_url: set without ws.twilio_auth_token",
            ),
            (
                &format!("{MINIMAL}[ws]\nbind = '127.0.0.1:0'\nvonage = 'x'\n"),
                &[],
                "unknown field `vonage`",
            ),
        ];
        for (text, env, want) in cases {
            let e = load(text, env).expect_err(want).to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    #[test]
    fn links_are_off_without_their_sections_and_read_from_file_and_environment() {
        let c = load(MINIMAL, &[]).expect("valid");
        assert!(c.whip.is_none() && c.ws.is_none());
        let c = load(
            &format!(
                "{MINIMAL}[whip]\nbind = '127.0.0.1:8080'\ncandidate_ip = '192.0.2.10'\n\
                 [ws]\nbind = '127.0.0.1:8081'\nacs_audience = 'res'\n\
                 acs_jwks_url = 'https://keys.example/jwks'\nacs_audio = 'unmixed'\n"
            ),
            &[
                ("MP_WHIP_TOKEN", "whip-secret"),
                ("MP_WS_VONAGE_TOKEN", "vonage-secret"),
            ],
        )
        .expect("valid");
        let whip = c.whip.expect("whip");
        assert_eq!(whip.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(whip.token.as_deref(), Some("whip-secret"));
        assert_eq!(whip.candidate_ip, Some("192.0.2.10".parse().expect("ip")));
        assert!(!format!("{whip:?}").contains("whip-secret"));
        let ws = c.ws.expect("ws");
        assert_eq!(ws.bind.to_string(), "127.0.0.1:8081");
        assert_eq!(ws.auth.vonage_token.as_deref(), Some("vonage-secret"));
        assert!(!ws.auth.is_open(ws_link::Dialect::Acs));
        assert!(ws.auth.is_open(ws_link::Dialect::Twilio));
        assert_eq!(ws.acs_audio, platform::AudioStreams::mixed_and_unmixed(4));
        assert!(!format!("{ws:?}").contains("vonage-secret"));
        // The environment alone turns a link on.
        let c = load(MINIMAL, &[("MP_WS_BIND", "127.0.0.1:0")]).expect("valid");
        assert!(c.ws.expect("ws").auth.is_open(ws_link::Dialect::Vonage));
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
