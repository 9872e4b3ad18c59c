//! # webrtc-link
//!
//! **Job:** WebRTC calls as links of the media-link seam. A browser (or GStreamer's
//! `webrtcbin`, or any WHIP client) posts its SDP offer to the WHIP endpoint (RFC
//! 9725); the answer makes this server an ICE-lite peer with one host candidate, DTLS-
//! SRTP and RTP/RTCP on str0m (sans-IO), and the call becomes an ordinary platform
//! call: the bot sees the same [`platform::AudioSocket`], events and QoE as for a
//! QUIC call.
//!
//! # Data flow
//!
//! ```text
//!  client (browser, webrtcbin)        webrtc-link                                         bot
//!  ───────────────────────────        ───────────                                         ───
//!  POST /whip (application/sdp) ──>   http_guard::HttpServer, bearer token (401 if not)
//!                                     sdp::check_offer: SDP? audio? common codec? (4xx naming it)
//!                                     str0m Rtc (ICE-lite, one codec) + UDP socket + host candidate
//!                                     CallAcceptor::accept ─> PlatformCalls ─> IncomingCall {info, AudioSocket}
//!  <── 201 Created, answer, Location /whip/{id}
//!  STUN / DTLS / SRTP ────────────>   RtcLink (MediaLink): Rtc::handle_input, drained
//!  RTP Opus (48 kHz clock) ───────>   RtpInbound: Opus as is (ts / 3) | G.711 → 16 kHz ─> CallHandler
//!                                         (PlatformCall: jitter buffer, Opus PLC/FEC) ────────> frames
//!  RTCP RR (loss, jitter, RTT) ───>   Control::Report ─> QoE, Opus FEC follows the loss
//!  RFC 4733 telephone events <──>    Control::Dtmf ─> ToneReceived; send_dtmf ─> events out
//!  <── RTP ───────────────────────    RtpOutbound <── Opus16k / Pcm16k packets <── paced 50/s <── enqueue
//!  DELETE /whip/{id} ─────────────>   LinkEvent::Closed(PeerLeft) ────────────────────────────> Ended
//! ```
//!
//! [`peer::WhipPeer`] is the other end, sans-IO (a str0m peer that offers, sends
//! frames and records the echo) with its driver [`peer::WhipPeer::run`], for tests and
//! `loadtest --transport webrtc` (crate harness).
//!
//! Codecs ([`AudioCodec`]): Opus at the 48 kHz RTP clock passes through to the call's
//! own 16 kHz Opus codec (RFC 7587: any Opus packet decodes at 16 kHz, 16 kHz packets
//! are valid Opus); PCMU and PCMA are converted to and from 16 kHz PCM here. The
//! answer names exactly one codec: the first of the server's preferences that the
//! offer has.
//!
//! # Example: an echo bot behind a WHIP endpoint
//!
//! ```no_run
//! use std::sync::Arc;
//! use platform::{FrameDelivery, MediaPlatform, MediaPlatformSettings};
//! use webrtc_link::{PlatformCalls, WhipConfig, WhipServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let platform = Arc::new(MediaPlatform::start(MediaPlatformSettings::dev_loopback())?);
//! let echo = |_: &webrtc_link::WhipCallInfo| {
//!     FrameDelivery::Callback(Box::new(|frame, tx| {
//!         let _ = tx.enqueue(&frame.samples);
//!     }))
//! };
//! let (calls, mut incoming) = PlatformCalls::new(platform.clone(), echo);
//! let server = WhipServer::bind("127.0.0.1:0".parse()?, WhipConfig::default(), Arc::new(calls)).await?;
//! println!("WHIP endpoint: {} (test page: {})", server.url(), server.page_url());
//! while let Some(call) = incoming.recv().await {
//!     // Hold the socket for as long as the call runs (dropping it hangs up).
//!     tokio::spawn(async move {
//!         let mut socket = call.socket;
//!         while let Some(event) = socket.next_event().await {
//!             println!("{} ({}): {event:?}", call.info.session_id, call.info.codec);
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! # Realtime safety
//! Per call, the `Rtc`, resamplers and buffers are created when the offer is
//! answered. Converting RTP payloads allocates nothing; str0m itself allocates per
//! datagram (its transmit buffers and the `MediaData` payload), on the call's own
//! task, never on a reactor thread. Each call runs on a tokio task with its own UDP
//! socket ([`server`] says why not on the QUIC reactor).

pub mod codec;
pub mod link;
pub mod media;
pub mod peer;
pub mod sdp;
pub mod server;

use std::sync::Arc;
use std::time::Instant;

use media_core::link::CallHandler;
use platform::{AudioSocket, FrameDelivery, LinkedCall, LinkedCalls, MediaPlatform};
use tokio::sync::mpsc;

pub use codec::AudioCodec;
pub use link::RtcLink;
pub use sdp::{OfferError, check_offer};
pub use server::{CallAcceptor, WhipCallInfo, WhipConfig, WhipServer, WhipStats};

/// A WHIP call that became a platform call: what the server knows of it, and the
/// bot's socket. Dropping the socket hangs up.
#[derive(Debug)]
pub struct IncomingCall {
    /// The call's offer and addresses.
    pub info: WhipCallInfo,
    /// The call's audio socket, connected.
    pub socket: AudioSocket,
}

/// How the frames of a new call reach the bot.
pub type DeliveryChooser = platform::linked::DeliveryChooser<WhipCallInfo>;

/// The [`CallAcceptor`] of a [`MediaPlatform`]: each accepted offer becomes a call of
/// the platform ([`MediaPlatform::start_linked_call`], in the codec the call's packets
/// use) whose socket comes out of the receiver [`PlatformCalls::new`] returns.
#[derive(Debug)]
pub struct PlatformCalls(LinkedCalls<WhipCallInfo, IncomingCall>);

impl PlatformCalls {
    /// Offers become calls of `platform`, delivering frames as `delivery` chooses per
    /// call; the new calls come out of the receiver.
    pub fn new(
        platform: Arc<MediaPlatform>,
        delivery: impl Fn(&WhipCallInfo) -> FrameDelivery + Send + Sync + 'static,
    ) -> (Self, mpsc::UnboundedReceiver<IncomingCall>) {
        let (calls, rx) = LinkedCalls::new(platform, delivery);
        (Self(calls), rx)
    }
}

impl CallAcceptor for PlatformCalls {
    fn accept(
        &self,
        info: &WhipCallInfo,
        now: Instant,
        waker: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Box<dyn CallHandler>, String> {
        let call = LinkedCall {
            codec: info.codec.call_codec(),
            ..LinkedCall::default()
        };
        self.0
            .start(info, info.session_id, call, now, waker, |socket| {
                IncomingCall {
                    info: info.clone(),
                    socket,
                }
            })
    }
}
