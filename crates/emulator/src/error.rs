//! Errors of the emulator's own API (starting it, configuring it).

use std::net::SocketAddr;

/// Why the emulator could not do what its API was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The configuration cannot work; the message names the field.
    #[error("emulator config: {0}")]
    Config(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another --bind address or port")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Generating or using the RSA signing key failed.
    #[error("signing key: {0}")]
    Key(String),
    /// The HTTP client for callbacks could not be built.
    #[error("callback HTTP client: {0}")]
    Http(String),
    /// A fault to inject is not valid; the message names the field.
    #[error("fault: {0}")]
    Fault(String),
    /// No live (or, for tones, established) call with this id: it ended or never
    /// existed.
    #[error("call: {0}")]
    UnknownCall(String),
    /// A call operation of the emulator's API (speakers, tones) could not be done: an
    /// unknown participant or tone, no connected media. The message names which.
    #[error("call: {0}")]
    Call(String),
    /// The tokio runtime could not be built or Ctrl-C could not be awaited.
    #[error("runtime: {0}")]
    Runtime(String),
}
