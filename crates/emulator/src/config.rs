//! Emulator configuration: registered apps, timing, limits, the media connector.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use signaling::Permission;

use crate::keys::SigningKey;
use crate::media::{MediaPeerConnector, NoMediaConnector};

/// An application registered with the emulator's identity platform (an Entra app
/// registration): the OAuth client it authenticates as and the identity its calls
/// carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredApp {
    /// Directory (tenant) id; the token endpoint is `/{tenant}/oauth2/v2.0/token`.
    pub tenant_id: String,
    /// Application (client) id: the `client_id` of the token request, the audience of
    /// callback JWTs, the `application.id` of calls without a `source`.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Display name of the application identity.
    pub display_name: String,
    /// Application permissions granted (the token's `roles`); create-call requests
    /// needing more get 403.
    pub permissions: Vec<Permission>,
    /// The app's certificate credential (PEM; RSA key): token requests may then
    /// authenticate with a client assertion signed with its key instead of the secret.
    pub certificate_pem: Option<String>,
}

impl RegisteredApp {
    /// An app with every calling permission.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        RegisteredApp {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            display_name: "Calling Bot".into(),
            permissions: Permission::ALL.to_vec(),
            certificate_pem: None,
        }
    }

    /// Registers a certificate credential (PEM) for the app.
    pub fn certificate(mut self, pem: impl Into<String>) -> Self {
        self.certificate_pem = Some(pem.into());
        self
    }

    /// The demo app: the seed's tenant and "Calling Bot" application id, secret
    /// [`RegisteredApp::DEMO_SECRET`].
    pub fn demo() -> Self {
        RegisteredApp::new(Self::DEMO_TENANT, Self::DEMO_CLIENT_ID, Self::DEMO_SECRET)
    }

    /// The demo app's tenant (the seed's).
    pub const DEMO_TENANT: &'static str = "aa67bd4c-8475-432d-bd41-39f255720e0a";
    /// The demo app's client id (the seed's "Calling Bot").
    pub const DEMO_CLIENT_ID: &'static str = "2891555a-92ff-42e6-80fa-6e1300c6b5c6";
    /// The demo app's client secret.
    pub const DEMO_SECRET: &'static str = "emulator-demo-secret";

    /// Replace the display name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = name.into();
        self
    }

    /// Replace the granted permissions.
    pub fn permissions(mut self, permissions: impl IntoIterator<Item = Permission>) -> Self {
        self.permissions = permissions.into_iter().collect();
        self
    }
}

/// Delays of the scripted call flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between the `201` and the first notification, and between scripted steps.
    pub step_delay: Duration,
    /// How long a guest waits in the lobby before being admitted.
    pub lobby_delay: Duration,
    /// Longest a [`MediaPeerConnector`] may take to connect.
    pub media_connect_timeout: Duration,
    /// How long an offered (incoming) call waits for the bot's answer, reject or
    /// redirect before it ends (Graph: 15 s).
    pub answer_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            step_delay: Duration::from_millis(100),
            lobby_delay: Duration::from_millis(500),
            media_connect_timeout: Duration::from_secs(10),
            answer_timeout: Duration::from_secs(15),
        }
    }
}

/// How notifications are delivered to the bot's `callbackUri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts per notification (the first included) while the bot answers 5xx or
    /// cannot be reached; 4xx answers are not retried.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each retry.
    pub retry_delay: Duration,
    /// Timeout of one callback request.
    pub request_timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            max_attempts: 4,
            retry_delay: Duration::from_millis(200),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Everything the emulator needs to start. `EmulatorConfig::default()` is the demo:
/// 127.0.0.1 on a free port, the demo app, Graph's 45-minute keepAlive timeout.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub bind: SocketAddr,
    /// Base URL written in `Location` headers and `jwks_uri`; by default
    /// `http://{bound address}`.
    pub public_base_url: Option<String>,
    /// Registered apps (at least one).
    pub apps: Vec<RegisteredApp>,
    /// Lifetime of issued access tokens (`expires_in`).
    pub token_lifetime: Duration,
    /// Lifetime of callback JWTs.
    pub callback_token_lifetime: Duration,
    /// A call without keepAlive for this long ends (Graph: 45 minutes).
    pub keepalive_timeout: Duration,
    /// Delays of the call flows.
    pub timing: Timing,
    /// Notification delivery.
    pub delivery: Delivery,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Connects the far end of app-hosted calls.
    pub media: Arc<dyn MediaPeerConnector>,
    /// The RSA signing key; generated at start (2048 bit) when `None`.
    pub signing_key: Option<SigningKey>,
    /// Limits of the HTTP server: header and body read timeouts, connection caps in
    /// total and per source address, keep-alive (default [`http_guard::Limits`]'s).
    pub http_limits: http_guard::Limits,
    /// The bearer token the `/_emulator/*` control endpoints require (fault injection,
    /// call listing, remote hang-up); a random one is made at start when `None` (read
    /// it from [`EmulatorHandle::control_token`](crate::EmulatorHandle::control_token)).
    /// At least [`MIN_CONTROL_TOKEN_LEN`] characters.
    pub control_token: Option<String>,
    /// Extra certificate authorities (PEM, one or more certificates) the notification
    /// client trusts besides the public roots, for bots whose callback server uses a
    /// private CA (tests). Graph itself trusts public CAs only.
    pub notification_root_ca_pem: Option<String>,
}

/// Shortest control token accepted.
pub const MIN_CONTROL_TOKEN_LEN: usize = 16;

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            public_base_url: None,
            apps: vec![RegisteredApp::demo()],
            token_lifetime: Duration::from_secs(3599),
            callback_token_lifetime: Duration::from_secs(3600),
            keepalive_timeout: Duration::from_secs(45 * 60),
            timing: Timing::default(),
            delivery: Delivery::default(),
            max_body_bytes: 4 * 1024 * 1024,
            media: Arc::new(NoMediaConnector),
            signing_key: None,
            http_limits: http_guard::Limits::default(),
            control_token: None,
            notification_root_ca_pem: None,
        }
    }
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("bind", &self.bind)
            .field("public_base_url", &self.public_base_url)
            .field("apps", &self.apps)
            .field("token_lifetime", &self.token_lifetime)
            .field("callback_token_lifetime", &self.callback_token_lifetime)
            .field("keepalive_timeout", &self.keepalive_timeout)
            .field("timing", &self.timing)
            .field("delivery", &self.delivery)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("signing_key", &self.signing_key)
            .field("http_limits", &self.http_limits)
            .field(
                "control_token",
                &self.control_token.as_ref().map(|_| "(set)"),
            )
            .field(
                "notification_root_ca_pem",
                &self.notification_root_ca_pem.as_ref().map(|_| "(set)"),
            )
            .finish_non_exhaustive()
    }
}

impl EmulatorConfig {
    /// Why the configuration cannot start, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.apps.is_empty() {
            return Some("apps: register at least one app".into());
        }
        for (i, app) in self.apps.iter().enumerate() {
            if app.tenant_id.is_empty() || app.client_id.is_empty() {
                return Some(format!(
                    "apps[{i}]: tenant_id and client_id must not be empty"
                ));
            }
        }
        if let Some(t) = &self.control_token
            && (t.chars().count() < MIN_CONTROL_TOKEN_LEN
                || !t.chars().all(|c| c.is_ascii_graphic()))
        {
            return Some(format!(
                "control_token: must be at least {MIN_CONTROL_TOKEN_LEN} printable ASCII \
                 characters without spaces"
            ));
        }
        if self.token_lifetime.is_zero() || self.keepalive_timeout.is_zero() {
            return Some("token_lifetime and keepalive_timeout must be positive".into());
        }
        if self.delivery.max_attempts == 0 {
            return Some("delivery.max_attempts: must be at least 1".into());
        }
        if let Some(problem) = self.http_limits.problem() {
            return Some(format!("http_{problem}"));
        }
        None
    }
}
