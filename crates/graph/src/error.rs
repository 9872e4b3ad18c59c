//! [`GraphError`]: what went wrong talking to Graph, and whose fault it is.

use signaling::RequestError;

/// An error of the Graph client. Display says who is at fault and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// The create-call request was refused before sending (the bot's fault: fix the
    /// property named).
    #[error("invalid create-call request, not sent: {0}")]
    InvalidRequest(#[from] RequestError),
    /// An in-call action's body Graph would refuse (checked before sending).
    #[error(
        "invalid {action} request, not sent: {}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    InvalidAction {
        /// The action (`answer`, `reject`, ...).
        action: &'static str,
        /// What is wrong, each naming its property.
        problems: Vec<signaling::actions::ActionProblem>,
    },
    /// The service answered with an error status.
    #[error(
        "Graph answered {status} {code}: {message} (request-id {request_id}, \
         client-request-id {client_request_id}, after {attempts} attempt(s))",
        code = code.as_deref().unwrap_or("(no code)"),
        message = message.as_deref().unwrap_or("(no message)"),
        request_id = request_id.as_deref().unwrap_or("?"),
        client_request_id = client_request_id.as_deref().unwrap_or("?"),
    )]
    Service {
        /// HTTP status.
        status: u16,
        /// Graph's `error.code`.
        code: Option<String>,
        /// Graph's `error.message`.
        message: Option<String>,
        /// The service's `request-id` (response header or `error.innerError`).
        request_id: Option<String>,
        /// The `client-request-id` this client sent (echoed by the service).
        client_request_id: Option<String>,
        /// Attempts made (retries on 429/503 included).
        attempts: u32,
    },
    /// The token endpoint refused or failed (check client id, secret, tenant, scope).
    #[error("token endpoint: {message}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Token {
        /// HTTP status, when the endpoint answered.
        status: Option<u16>,
        /// What went wrong (`error_description` when the endpoint sent one).
        message: String,
    },
    /// The request did not get an answer (connect error, timeout, ...), after retries.
    #[error(
        "transport error calling Graph after {attempts} attempt(s) \
         (client-request-id {client_request_id}): {message}"
    )]
    Transport {
        /// What failed.
        message: String,
        /// The `client-request-id` sent.
        client_request_id: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The service answered success with a body this client cannot read (the
    /// service's fault, or a wrong base URL).
    #[error("unreadable Graph response (HTTP {status}): {message}")]
    InvalidResponse {
        /// HTTP status.
        status: u16,
        /// What is wrong.
        message: String,
    },
    /// The client configuration is unusable (the operator's fault).
    #[error("graph client configuration: {0}")]
    Config(String),
}

impl GraphError {
    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Service { status, .. } | GraphError::InvalidResponse { status, .. } => {
                Some(*status)
            }
            GraphError::Token { status, .. } => *status,
            _ => None,
        }
    }

    /// Graph's `error.code`, if the service sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// True for a `404 Not Found` from the service (e.g. keepAlive on a call that is gone).
    pub fn is_not_found(&self) -> bool {
        matches!(self, GraphError::Service { status: 404, .. })
    }
}
