//! Errors of the platform API.

use std::net::SocketAddr;

/// Why a platform operation failed. Each variant says who is at fault and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The platform is `Overloaded`: new calls are refused until the load drops.
    /// Retry later or on another processor.
    #[error("media platform is overloaded: new media sessions are refused until the load drops")]
    Overloaded,
    /// `limits.max_sessions` sessions exist already. Hang up a call or raise the limit.
    #[error("media platform is at capacity ({max} sessions)")]
    AtCapacity {
        /// The configured maximum.
        max: usize,
    },
    /// The settings are unusable (the message says which field).
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// `MediaPlatform::start` was called outside a tokio runtime.
    #[error("MediaPlatform::start must be called inside a tokio runtime")]
    NoRuntime,
    /// Binding or configuring the QUIC server failed (address in use, bad certificate).
    #[error("cannot start the media server on {addr}: {source}")]
    Transport {
        /// The bind address.
        addr: SocketAddr,
        /// The transport error.
        #[source]
        source: transport::TransportError,
    },
    /// TLS material could not be created or loaded.
    #[error(transparent)]
    Tls(#[from] transport::TlsError),
    /// A call's media could not be set up (its codec state); the message says why.
    #[error("cannot start the call's media: {0}")]
    CallStart(String),
    /// The media session configuration could not be built (bad public host name).
    #[error("cannot build the media session configuration: {0}")]
    Blob(#[from] media_blob::BlobError),
}

/// Why a control message (DTMF, ...) could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The peer has not joined yet (or the call ended).
    #[error("no peer connected")]
    NotConnected,
    /// The bot queued more control messages than the call sends per tick: try again.
    #[error("control queue full")]
    QueueFull,
}
