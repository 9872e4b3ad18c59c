//! Calls whose link another driver runs (a platform's media WebSocket, a WebRTC peer):
//! what such a call is ([`LinkedCall`]) and the part every link's acceptor shares
//! ([`LinkedCalls`]): start the call on a [`MediaPlatform`], hand the bot's end to
//! whoever takes the link's calls, give the link its [`CallHandler`].

use std::sync::Arc;
use std::time::Instant;

use media_core::call::AudioStreams;
use media_core::codec::Codec;
use media_core::link::CallHandler;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{AudioSocket, FrameDelivery, MediaPlatform};

/// What a linked call carries between itself and its link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkedCall {
    /// The packets' codec: `Pcm16k` for a link that converts its own formats (the
    /// platforms' WebSockets), `Opus` for a far end whose Opus packets the call's own
    /// jitter buffer, decoder (PLC, in-band FEC) and loss-adaptive encoder take as
    /// they are (WebRTC).
    pub codec: Codec,
    /// The received audio streams: the mix, or also each speaker's own (ACS unmixed
    /// audio), the packets' [`source`](media_core::packet::AudioPacket::source)
    /// naming the speaker's MSI. No negotiation: the link knows what its far end sends.
    pub streams: AudioStreams,
}

impl Default for LinkedCall {
    /// `Pcm16k`, the mix only.
    fn default() -> Self {
        Self {
            codec: Codec::Pcm16k,
            streams: AudioStreams::MIXED,
        }
    }
}

/// How the frames of a new call whose link knows it as `I` reach the bot.
pub type DeliveryChooser<I> = dyn Fn(&I) -> FrameDelivery + Send + Sync;

/// Starts a link's calls on a [`MediaPlatform`] and hands each one (`C`: the link's
/// description `I` of it plus the bot's [`AudioSocket`]) to the receiver that
/// [`LinkedCalls::new`] returns. A link's acceptor wraps one.
pub struct LinkedCalls<I, C> {
    platform: Arc<MediaPlatform>,
    delivery: Box<DeliveryChooser<I>>,
    calls: mpsc::UnboundedSender<C>,
}

impl<I, C> std::fmt::Debug for LinkedCalls<I, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedCalls")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

impl<I, C> LinkedCalls<I, C> {
    /// Calls become calls of `platform`, delivering frames as `delivery` chooses per
    /// call; the new calls come out of the receiver.
    pub fn new(
        platform: Arc<MediaPlatform>,
        delivery: impl Fn(&I) -> FrameDelivery + Send + Sync + 'static,
    ) -> (Self, mpsc::UnboundedReceiver<C>) {
        let (calls, rx) = mpsc::unbounded_channel();
        (
            Self {
                platform,
                delivery: Box::new(delivery),
                calls,
            },
            rx,
        )
    }

    /// Starts the call the link knows as `info` ([`MediaPlatform::start_linked_call`])
    /// and hands `hand_out(socket)` to the receiver; returns the call's handler for
    /// the link's driver. Refused, with the reason for the far end, when nobody takes
    /// calls any more (the receiver is gone) or the platform cannot start one.
    pub fn start(
        &self,
        info: &I,
        call_id: Uuid,
        call: LinkedCall,
        now: Instant,
        waker: Box<dyn Fn() + Send + Sync>,
        hand_out: impl FnOnce(AudioSocket) -> C,
    ) -> Result<Box<dyn CallHandler>, String> {
        const NOBODY: &str = "nobody takes calls on this endpoint now";
        if self.calls.is_closed() {
            return Err(NOBODY.into());
        }
        let (socket, handler) = self
            .platform
            .start_linked_call(call_id, call, (self.delivery)(info), now, waker)
            .map_err(|e| e.to_string())?;
        self.calls
            .send(hand_out(socket))
            .map_err(|_| NOBODY.to_owned())?;
        Ok(handler)
    }
}
