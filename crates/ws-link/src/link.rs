//! [`WsLink`]: one platform WebSocket as a [`MediaLink`].
//!
//! The call's media hands it `Pcm16k` packets (paced at 50/s by `CallMedia`); it
//! converts each into the stream's encoding and dialect ([`OutboundAudio`],
//! [`OutboundEncoder`]) and queues the message for the connection's writer task. The
//! queue is bounded: a platform that stops reading loses frames (counted as
//! `send_dropped`) instead of stalling the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use media_core::control::Control;
use media_core::link::{Delivery, LinkError, LinkStats, MediaLink};
use media_core::packet::AudioPacket;
use tokio::sync::mpsc;

use crate::dialect::{Outbound, OutboundEncoder, StreamInfo};
use crate::media::OutboundAudio;

/// Close code of an orderly end (RFC 6455).
pub const CLOSE_NORMAL: u16 = 1000;
/// Longest close reason a WebSocket close frame carries, bytes.
pub const MAX_CLOSE_REASON: usize = 123;

/// What the connection's writer task sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteItem {
    /// A message.
    Message(Outbound),
    /// A close frame (code, reason); the writer stops after it.
    Close(u16, String),
}

/// Cuts `reason` to what a close frame carries, on a character boundary.
pub fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// One platform WebSocket as a [`MediaLink`] (see the [module documentation](self)).
#[derive(Debug)]
pub struct WsLink {
    out: mpsc::Sender<WriteItem>,
    encoder: OutboundEncoder,
    audio: OutboundAudio,
    stats: LinkStats,
    closing: Option<String>,
    close_reported: bool,
    /// Media packets queued for the platform (shared with the stream's `Playback`).
    sent: Arc<AtomicU64>,
}

impl WsLink {
    /// The link of the stream `info` describes, writing to `out`.
    pub fn new(
        out: mpsc::Sender<WriteItem>,
        info: &StreamInfo,
    ) -> Result<Self, media_core::resample::ResamplerSetupError> {
        Ok(Self {
            out,
            encoder: OutboundEncoder::new(info),
            audio: OutboundAudio::new(info.encoding)?,
            stats: LinkStats::default(),
            closing: None,
            close_reported: false,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Counts the media packets sent in `sent` as well (a stream's
    /// [`Playback`](crate::Playback) places marks by it).
    pub(crate) fn count_sent_in(&mut self, sent: Arc<AtomicU64>) {
        self.sent = sent;
    }

    /// Media packets queued for the platform so far.
    pub fn packets_sent(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }

    /// The stream's encoder (for `clear` and marks).
    pub fn encoder(&self) -> &OutboundEncoder {
        &self.encoder
    }

    /// Queues a message for the platform (not counted as media).
    pub fn send_message(&mut self, message: Outbound) -> Result<(), LinkError> {
        if self.closing.is_some() {
            return Err(LinkError::Closed);
        }
        self.push(WriteItem::Message(message))
    }

    fn push(&mut self, item: WriteItem) -> Result<(), LinkError> {
        match self.out.try_send(item) {
            Ok(()) => {
                self.stats.transport_sent += 1;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(LinkError::QueueFull),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(LinkError::Closed),
        }
    }

    /// Ends the stream with `code` (the peer's fault, or the server's) unless it is
    /// closing already.
    pub fn close_with(&mut self, code: u16, reason: &str) {
        if self.closing.is_none() {
            self.closing = Some(reason.to_owned());
            // A full queue still ends: the writer stops when the channel closes.
            let _ = self
                .out
                .try_send(WriteItem::Close(code, close_reason(reason)));
        }
    }

    /// The reason of a [`MediaLink::close`] not yet reported to the call (once).
    pub fn take_local_close(&mut self) -> Option<String> {
        if self.close_reported {
            return None;
        }
        let reason = self.closing.clone()?;
        self.close_reported = true;
        Some(reason)
    }

    /// True once closing.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Counters the connection's reader keeps.
    pub fn stats_mut(&mut self) -> &mut LinkStats {
        &mut self.stats
    }
}

impl MediaLink for WsLink {
    fn send_packet(&mut self, packet: &AudioPacket) -> Result<(), LinkError> {
        let result = if self.closing.is_some() {
            Err(LinkError::Closed)
        } else {
            match self.audio.encode(packet) {
                Ok(bytes) => {
                    let message = self.encoder.audio(bytes);
                    self.push(WriteItem::Message(message))
                }
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => {
                self.stats.packets_sent += 1;
                self.sent.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => self.stats.send_dropped += 1,
        }
        result
    }

    fn send_control(&mut self, control: &Control) -> Result<(), LinkError> {
        // The platforms' media WebSockets carry audio and (inbound) DTMF only: DTMF
        // out, speakers and quality reports have no message there.
        Err(LinkError::Unsupported(match control {
            Control::Dtmf { .. } => "the platform's media WebSocket carries no outgoing DTMF",
            _ => "the platform's media WebSocket carries audio and DTMF only",
        }))
    }

    fn close(&mut self, reason: &str) {
        self.close_with(CLOSE_NORMAL, reason);
    }

    fn stats(&mut self) -> LinkStats {
        self.stats
    }

    /// A WebSocket runs over TCP: every frame arrives, in order, late at worst.
    fn delivery(&self) -> Delivery {
        Delivery::ReliableOrdered
    }
}
