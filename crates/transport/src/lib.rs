//! Media links of a call: the QUIC media protocol and the reactor that runs calls.
//!
//! **Job:** carry one call's real-time audio (20 ms frames, 16 kHz mono, PCM or Opus)
//! and its control messages between a bot's media processor and the far end of the
//! call, behind media-core's link seam ([`media_core::link::MediaLink`]): one QUIC
//! connection per call, media as unreliable QUIC DATAGRAMs, control (join, leave,
//! DTMF, speakers, reports) as length-prefixed JSON on one bidirectional stream.
//!
//! - [`wire`]: the byte formats (`docs/wire-format.md`). Encodes into and decodes from
//!   caller-owned buffers without allocating; no sockets, no clock.
//! - [`quic`]: the protocol over quinn-proto, sans-IO ([`quic::Core`] returns events)
//!   and [`quic::QuicLink`], the QUIC implementation of the seam.
//! - [`reactor`]: threads that own a UDP socket, a core and the calls on it, with
//!   batched socket I/O: [`reactor::ReactorServer`] (the media processor) and
//!   [`reactor::ReactorClient`] (far ends that dial).
//! - [`tls`]: PEM identities, development certificates (rcgen) with SHA-256
//!   fingerprints, and a pinning certificate verifier; [`ratelimit`]: a token bucket
//!   with time as an argument; [`registry`]: admission verdicts and a ready-made
//!   session set.
//!
//! # Data flow
//!
//! ```text
//!  far end (ReactorClient)                       media processor (ReactorServer)
//!  -----------------------                       -------------------------------
//!  dial(mpUri host:port) ==QUIC/TLS 1.3, ALPN "mp-audio/1"==> Core: Event::Join
//!  control stream: Join {mpMediaSessionId, callId, contexts, codecs} ->  CallApp::admit
//!       <---- Accept {codec, stream ids}         |  or  Reject {code} + close
//!                                                v      CallApp::start -> CallHandler
//!  CallHandler <== DATAGRAM: 14-byte header + 20 ms frame ==> Event::Packet -> CallHandler
//!     (CallMedia)   control messages both ways                 (CallMedia)
//!  any end ─> Event::Closed { CloseReason, LinkStats } ─> the handler's last event
//! ```
//!
//! Datagrams that arrive before `Accept` are dropped and counted. After it, each
//! datagram is decoded, checked against the assigned stream ids and a per-stream rate
//! limit, and handed to the call; everything dropped is counted in the call's
//! [`LinkStats`](media_core::link::LinkStats). A misbehaving peer only affects its own
//! call; protocol errors on the control stream close only that connection.
//!
//! # Example: the wire format (sans-IO)
//!
//! ```
//! use transport::wire::{self, Codec, DatagramHeader, DatagramRef, Flags, HEADER_LEN};
//! use media_core::frame::FRAME_BYTES;
//! use media_core::packet::TIMESTAMP_STEP;
//!
//! let frame = [0u8; FRAME_BYTES]; // 20 ms of 16 kHz PCM silence
//! let header = DatagramHeader {
//!     flags: Flags::MARKER,
//!     codec: Codec::Pcm16k,
//!     stream_id: 1,
//!     sequence: 7,
//!     timestamp: 7 * TIMESTAMP_STEP,
//!     source: 0,
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
//! A server that echoes every call is in the [`reactor`] documentation; the media
//! platform (`platform` crate) runs each call's `CallMedia` behind the same seam.
//!
//! # Realtime safety
//! Decoding and encoding datagrams never allocate and never panic on any input. The
//! core allocates one `BytesMut` per sent datagram (quinn-proto takes ownership) and
//! none per received one (the payload is a slice of quinn-proto's buffer).

pub mod quic;
pub mod ratelimit;
pub mod reactor;
pub mod registry;
mod settings;
pub mod thread;
pub mod tls;
pub mod wire;

pub use ratelimit::{RateLimit, TokenBucket};
pub use registry::{Admission, KnownSessions, SessionRegistry, mismatch_reject};
pub use settings::{
    ClientConfig, CloseCode, ConnectError, ServerConfig, SocketBuffers, TransportError,
    TransportSettings, close_reason, quic_client_config, quic_server_config,
};
pub use tls::{CertFingerprint, PinnedCertVerifier, ServerIdentity, ServerTrust, TlsError};
