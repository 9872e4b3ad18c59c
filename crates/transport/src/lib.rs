//! Media over QUIC between a media processor and the remote media side of a call.
//!
//! **Job:** carry one call's real-time audio (20 ms frames, 16 kHz mono, PCM or Opus)
//! and its control events between a bot's media processor and a peer, over one QUIC
//! connection per call: media as unreliable QUIC DATAGRAMs, control (join, leave,
//! DTMF, speakers, stats) as length-prefixed JSON on one bidirectional stream.
//!
//! The crate has a sans-IO core and a thin quinn driver:
//!
//! - [`wire`]: the byte formats. [`wire::DatagramRef`] encodes into and decodes from
//!   caller-owned buffers without allocating; [`wire::ControlDecoder`] reassembles
//!   control messages split at any byte boundary. No sockets, no clock. Specified in
//!   `docs/wire-format.md`.
//! - [`ratelimit`]: a token bucket with time as an argument.
//! - [`tls`]: PEM identities, development certificates (rcgen) with SHA-256
//!   fingerprints, and a pinning certificate verifier.
//! - [`endpoint`]: [`MediaServer`] / [`MediaClient`] and the per-call
//!   [`MediaConnection`] handle (tokio + quinn).
//! - [`reactor`]: the same server protocol on quinn-proto, run by one thread that owns
//!   the socket, every connection and the application's calls, with batched socket
//!   I/O ([`reactor::ReactorServer`]; docs/reactor.md).
//!
//! # Data flow
//!
//! ```text
//!  peer (MediaClient)                       media processor (MediaServer)
//!  ------------------                       -----------------------------
//!  connect(mpUri host:port) ==QUIC/TLS 1.3, ALPN "mp-audio/1"==> accept
//!  control stream: Join {mpMediaSessionId, callId, contexts, codecs} ---->
//!                                           SessionRegistry::admit(&join)
//!       <---- Accept {codec, stream ids}    |  or  Reject {code} + close
//!                                           v
//!  MediaConnection  <== DATAGRAM: 14-byte header + 20 ms frame ==>  MediaConnection
//!    send_datagram / recv_datagram (never blocks; drops are counted)    (one per call)
//!    send_control / recv_control   (DTMF, dominant/active speakers, send status, stats)
//!    closed() -> CloseReason       (peer left / vanished (idle timeout) / protocol error)
//! ```
//!
//! Datagrams that arrive before `Accept` are dropped and counted. After it, each
//! datagram is decoded, checked against the assigned stream ids and a per-stream
//! rate limit, and queued for the application; everything dropped is counted in
//! [`LinkStats`]. Each connection runs its own tasks, so a misbehaving peer only
//! affects its own call; protocol errors on the control stream close only that
//! connection.
//!
//! # Example: the wire format (sans-IO)
//!
//! ```
//! use transport::wire::{self, Codec, DatagramHeader, DatagramRef, Flags, HEADER_LEN};
//!
//! let frame = [0u8; media_core::frame::FRAME_BYTES]; // 20 ms of 16 kHz PCM silence
//! let header = DatagramHeader {
//!     flags: Flags::MARKER,
//!     codec: Codec::Pcm16k,
//!     stream_id: 1,
//!     sequence: 7,
//!     timestamp: 7 * media_core::packet::TIMESTAMP_STEP,
//! };
//! let mut buf = [0u8; wire::MAX_DATAGRAM_LEN]; // caller-owned, reused per frame
//! let n = DatagramRef::new(header, &frame).encode_into(&mut buf)?;
//! assert_eq!(n, HEADER_LEN + 640);
//! assert_eq!(&buf[..4], &[1, 0x02, 0, 0]); // version 1, MARKER, PCM, reserved
//!
//! let d = wire::decode(&buf[..n])?; // borrows the payload, no allocation
//! assert_eq!(d.header, header);
//! assert_eq!(d.payload.len(), 640);
//! assert!(matches!(wire::decode(&buf[..5]), Err(wire::WireError::Truncated { need: 14, got: 5 })));
//!
//! // Control messages: framed JSON, decoded incrementally.
//! use wire::{ControlDecoder, ControlMessage, Dtmf, DtmfTone};
//! let msg = ControlMessage::Dtmf(Dtmf { tone: DtmfTone::Pound, stream_id: 1, duration_ms: 80 });
//! let bytes = wire::encode_control(&msg)?;
//! let mut dec = ControlDecoder::new();
//! dec.push(&bytes[..3]); // any split works
//! assert!(dec.poll().is_none());
//! dec.push(&bytes[3..]);
//! assert_eq!(dec.poll(), Some(Ok(msg)));
//! # Ok::<(), wire::WireError>(())
//! ```
//!
//! # Example: a processor and a peer on loopback
//!
//! ```no_run
//! use std::sync::Arc;
//! use transport::wire::Join;
//! use transport::{
//!     ClientConfig, KnownSessions, MediaClient, MediaServer, ServerConfig, ServerIdentity,
//!     ServerTrust,
//! };
//! use uuid::Uuid;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Processor side: a development certificate, and the sessions we expect.
//! let identity = ServerIdentity::self_signed(&["localhost"])?;
//! let fingerprint = identity.fingerprint(); // give this to the peer
//! let sessions = Arc::new(KnownSessions::new());
//! let session_id = Uuid::new_v4(); // the blob's mpMediaSessionId
//! sessions.expect(session_id);
//! let server = MediaServer::bind(
//!     ServerConfig::new("127.0.0.1:8445".parse()?, identity),
//!     sessions.clone(),
//! )?;
//!
//! // Peer side: pin the certificate, join with the blob's identifiers.
//! let join = Join::new(session_id, Uuid::new_v4(), vec![Uuid::new_v4()], vec![Uuid::new_v4()]);
//! let cfg = ClientConfig::new(server.local_addr(), ServerTrust::pinned(fingerprint));
//! let peer = MediaClient::connect(cfg, join).await?;
//!
//! let mut call = server.accept().await.ok_or("server closed")?;
//! let stream = call.accept().streams[0].stream_id;
//! # let _ = (peer, stream);
//! while let Some(frame) = call.recv_datagram().await {
//!     // hand frame.payload (20 ms) to the jitter buffer ...
//! #   let _ = frame;
//! }
//! println!("call ended: {}", call.closed().await);
//! # Ok(()) }
//! ```
//!
//! # Realtime safety
//!
//! Decoding and encoding datagrams never allocate and never panic on any input. The
//! driver allocates one `Bytes` per sent datagram (quinn takes ownership) and
//! none per received one (the payload is a slice of quinn's buffer).

pub mod endpoint;
pub mod ratelimit;
pub mod reactor;
pub mod registry;
pub mod thread;
pub mod tls;
pub mod wire;

pub use endpoint::{
    ClientConfig, CloseCode, CloseReason, ConnectError, LinkStats, MediaClient, MediaConnection,
    MediaDatagram, MediaSender, MediaServer, SendError, ServerConfig, ServerStats, SocketBuffers,
    TransportError, TransportSettings, quinn_client_config, quinn_server_config,
};
pub use ratelimit::{RateLimit, TokenBucket};
pub use registry::{Admission, KnownSessions, SessionRegistry};
pub use tls::{CertFingerprint, PinnedCertVerifier, ServerIdentity, ServerTrust, TlsError};
