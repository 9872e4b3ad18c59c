//! Unmixed audio: each of up to four speakers' own stream besides the call's mix
//! (Microsoft's `ReceiveUnmixedMeetingAudio` / `UnmixedAudioBuffers`).
//!
//! A packet whose [`AudioPacket::source`] is not [`MIXED_SOURCE`] is one participant's
//! own audio, named by its media source id (MSI). A call negotiated for `n` unmixed
//! streams ([`AudioStreams::unmixed`]) has `n` receive slots, each a jitter buffer and
//! a decoder created with the call: an MSI takes a free slot with its first packet,
//! or the slot idle the longest once that one has been idle [`EVICT_AFTER`]; a
//! speaker silent for [`RELEASE_AFTER`] frees its slot. Every playout tick fills the
//! frame's fixed [`UnmixedBuffers`] (one 20 ms buffer per playing slot, tagged with
//! its MSI). The sending side ([`CallMedia::send_unmixed`](super::CallMedia::send_unmixed))
//! has `n` send pipelines, each numbering its own sequence and timestamps.
//!
//! What does not fit is refused and counted by name in [`UnmixedStats`]: unmixed
//! packets on a call that negotiated none (`refused_not_negotiated`), a new speaker
//! while every slot is busy (`refused_no_slot`), a packet the slot's jitter buffer
//! discards (`discarded`).
//!
//! # Realtime safety
//! Slots, pipelines, decoders and encoders are created by [`CallMedia::new`]
//! (super::CallMedia::new); routing a packet and filling the buffers allocates
//! nothing.

use std::time::{Duration, Instant};

use crate::codec::{Codec, CodecError, OpusConfig, new_decoder};
use crate::frame::Pcm16kFrame;
use crate::packet::{AudioPacket, MAX_UNMIXED_STREAMS, MIXED_SOURCE};
use crate::playout::{ReceiveConfig, ReceivePipeline};
use crate::send::{SendConfig, SendPipeline, SendSetupError};
use crate::time::Ticks100ns;

/// A slot whose speaker sent nothing for this long may be given to a new speaker.
pub const EVICT_AFTER: Duration = Duration::from_millis(200);

/// A slot whose speaker sent nothing for this long is freed (its buffers stop).
pub const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// Send ticks (20 ms) after which an idle send slot may carry another speaker.
const SEND_EVICT_TICKS: u64 = 10;

/// Which received audio a call asks for: the mix, up to four speakers' own streams,
/// or both (Microsoft's `ReceiveUnmixedMeetingAudio`). The default is the mix only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioStreams {
    /// Receive the mixed stream (every participant but this side, mixed).
    pub mixed: bool,
    /// Unmixed streams, 0 to [`MAX_UNMIXED_STREAMS`] (the loudest speakers).
    pub unmixed: u8,
}

impl Default for AudioStreams {
    fn default() -> Self {
        Self::MIXED
    }
}

impl AudioStreams {
    /// The mixed stream only (what every call had before unmixed audio).
    pub const MIXED: AudioStreams = AudioStreams {
        mixed: true,
        unmixed: 0,
    };

    /// The mix plus up to `n` speakers' own streams (`n` capped at 4).
    pub fn mixed_and_unmixed(n: u8) -> Self {
        AudioStreams {
            mixed: true,
            unmixed: cap(n),
        }
    }

    /// Up to `n` speakers' own streams and no mix (`n` capped at 4). A far end that
    /// cannot send unmixed audio sends the mix anyway: see [`negotiate`](Self::negotiate).
    pub fn unmixed_only(n: u8) -> Self {
        AudioStreams {
            mixed: false,
            unmixed: cap(n),
        }
    }

    /// What a call gets when this is asked for and the far end can send `offered`
    /// unmixed streams: at most both, and the mix whenever no unmixed stream is left.
    pub fn negotiate(self, offered: u8) -> Self {
        let unmixed = cap(self.unmixed).min(offered);
        AudioStreams {
            mixed: self.mixed || unmixed == 0,
            unmixed,
        }
    }
}

fn cap(n: u8) -> u8 {
    n.min(MAX_UNMIXED_STREAMS as u8)
}

/// One speaker's 20 ms of a playout tick (Microsoft's `UnmixedAudioBuffer`).
#[derive(Debug, Clone, Copy)]
pub struct UnmixedBuffer {
    /// The speaker's media source id (`ActiveSpeakerId`); map it to a participant
    /// with the call's roster.
    pub msi: u32,
    /// 320 samples of 16 kHz mono PCM.
    pub samples: Pcm16kFrame,
    /// Media time of the first sample on the speaker's own clock, 100 ns ticks
    /// (`OriginalSenderTimestamp`).
    pub timestamp: Ticks100ns,
    /// The buffer is silence.
    pub is_silence: bool,
    /// Some samples were concealed (packet loss).
    pub concealed: bool,
}

impl UnmixedBuffer {
    const EMPTY: UnmixedBuffer = UnmixedBuffer {
        msi: MIXED_SOURCE,
        samples: Pcm16kFrame::silent(),
        timestamp: Ticks100ns(0),
        is_silence: true,
        concealed: false,
    };
}

/// The unmixed buffers of one playout tick: up to four, fixed size, no allocation.
#[derive(Debug, Clone, Copy)]
pub struct UnmixedBuffers {
    len: u8,
    buffers: [UnmixedBuffer; MAX_UNMIXED_STREAMS],
}

impl Default for UnmixedBuffers {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl UnmixedBuffers {
    /// No buffers (a call without unmixed audio, or nobody speaking).
    pub const EMPTY: UnmixedBuffers = UnmixedBuffers {
        len: 0,
        buffers: [UnmixedBuffer::EMPTY; MAX_UNMIXED_STREAMS],
    };

    /// The buffers of this tick, one per speaker, in slot order.
    pub fn as_slice(&self) -> &[UnmixedBuffer] {
        &self.buffers[..usize::from(self.len)]
    }

    /// How many buffers this tick has.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when this tick has no buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer of speaker `msi`, if it has one this tick.
    pub fn get(&self, msi: u32) -> Option<&UnmixedBuffer> {
        self.as_slice().iter().find(|b| b.msi == msi)
    }
}

/// What a call's unmixed streams did, both ways (in [`CallStats`](super::CallStats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnmixedStats {
    /// Unmixed packets taken into a slot.
    pub packets: u64,
    /// Unmixed buffers played out (one per speaker per tick).
    pub buffers: u64,
    /// Speakers that took a slot (a free one or an evicted one).
    pub streams_started: u64,
    /// Slots taken from a speaker idle for [`EVICT_AFTER`] for a new one.
    pub evicted: u64,
    /// Refused: an unmixed packet on a call that negotiated no unmixed stream.
    pub refused_not_negotiated: u64,
    /// Refused: a packet of a new speaker while every slot's speaker is still live
    /// (more speakers than negotiated streams).
    pub refused_no_slot: u64,
    /// Refused by the slot's jitter buffer (wrong codec, too late, duplicate, ...).
    pub discarded: u64,
    /// Unmixed frames this side encoded for sending.
    pub frames_sent: u64,
    /// Unmixed frames this side could not send (no slot free, source 0, queue full).
    pub send_refused: u64,
}

/// Why [`CallMedia::send_unmixed`](super::CallMedia::send_unmixed) refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnmixedSendError {
    /// The call has no unmixed send stream (`CallConfig::streams.unmixed` is 0).
    #[error("the call negotiated no unmixed stream")]
    NotNegotiated,
    /// Source 0 is the mix: an unmixed frame names its speaker's MSI.
    #[error("an unmixed frame needs its speaker's MSI (0 is the mix)")]
    NoSource,
    /// Every send stream carries another speaker sent to within the last 200 ms.
    #[error("every unmixed stream carries another live speaker")]
    AllStreamsBusy,
    /// The stream's queue is full: the caller skipped draining the outputs.
    #[error("the unmixed stream's queue is full")]
    QueueFull,
    /// The call is closed.
    #[error("the call is closed")]
    Closed,
}

struct RecvSlot {
    msi: u32,
    pipe: ReceivePipeline,
    last_packet: Instant,
    playing: bool,
}

/// The receiving half: slots by MSI, each its own pipeline.
pub(crate) struct UnmixedReceiver {
    slots: Vec<RecvSlot>,
}

impl UnmixedReceiver {
    /// `n` slots (decoders created here).
    pub(crate) fn new(
        now: Instant,
        n: u8,
        receive: ReceiveConfig,
        codec: Codec,
    ) -> Result<Self, CodecError> {
        let slots = (0..cap(n))
            .map(|_| {
                Ok(RecvSlot {
                    msi: MIXED_SOURCE,
                    pipe: ReceivePipeline::new(receive, new_decoder(codec)?),
                    last_packet: now,
                    playing: false,
                })
            })
            .collect::<Result<_, CodecError>>()?;
        Ok(Self { slots })
    }

    /// Routes one unmixed packet (`packet.source != 0`) to its speaker's slot.
    /// `true` if a slot took it.
    pub(crate) fn handle_packet(
        &mut self,
        now: Instant,
        packet: &AudioPacket,
        stats: &mut UnmixedStats,
    ) -> bool {
        if self.slots.is_empty() {
            stats.refused_not_negotiated += 1;
            return false;
        }
        let msi = packet.source;
        let index = match self.slots.iter().position(|s| s.msi == msi) {
            Some(i) => i,
            None => {
                let free = self.slots.iter().position(|s| s.msi == MIXED_SOURCE);
                let i = match free {
                    Some(i) => i,
                    None => {
                        let (i, idle) = self
                            .slots
                            .iter()
                            .enumerate()
                            .map(|(i, s)| (i, now.saturating_duration_since(s.last_packet)))
                            .max_by_key(|&(_, idle)| idle)
                            .unwrap_or((0, Duration::ZERO));
                        if idle < EVICT_AFTER {
                            stats.refused_no_slot += 1;
                            return false;
                        }
                        stats.evicted += 1;
                        i
                    }
                };
                let Some(slot) = self.slots.get_mut(i) else {
                    return false;
                };
                slot.pipe.reset();
                slot.msi = msi;
                slot.playing = false;
                stats.streams_started += 1;
                i
            }
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        slot.last_packet = now;
        stats.packets += 1;
        if slot.pipe.handle_packet(now, packet).is_ok() {
            slot.playing = true;
            true
        } else {
            stats.discarded += 1;
            false
        }
    }

    /// One playout tick: a buffer per playing slot into `out`; frees slots whose
    /// speaker went quiet for [`RELEASE_AFTER`].
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        out: &mut UnmixedBuffers,
        stats: &mut UnmixedStats,
    ) {
        let mut len = 0;
        for slot in &mut self.slots {
            if slot.msi == MIXED_SOURCE || !slot.playing {
                continue;
            }
            if now.saturating_duration_since(slot.last_packet) >= RELEASE_AFTER {
                slot.msi = MIXED_SOURCE;
                slot.playing = false;
                slot.pipe.reset();
                continue;
            }
            let Some(b) = out.buffers.get_mut(len) else {
                break;
            };
            let info = slot.pipe.poll_frame(now, &mut b.samples);
            b.msi = slot.msi;
            b.timestamp = info.timestamp;
            b.is_silence = info.silence;
            b.concealed = info.concealed;
            len += 1;
        }
        out.len = len as u8;
        stats.buffers += len as u64;
    }

    /// The slots' speakers now (0: free), for tests and diagnostics.
    #[cfg(test)]
    pub(crate) fn speakers(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().map(|s| s.msi)
    }
}

struct SendSlot {
    msi: u32,
    pipe: SendPipeline,
    last_tick: u64,
    first: bool,
}

/// The sending half: one send pipeline per unmixed stream.
pub(crate) struct UnmixedSender {
    slots: Vec<SendSlot>,
    /// A frame went in since the pipelines were last found empty.
    pub(crate) encoding: bool,
}

impl UnmixedSender {
    /// `n` send pipelines (encoders created here).
    pub(crate) fn new(n: u8, codec: Codec, opus: OpusConfig) -> Result<Self, SendSetupError> {
        let slots = (0..cap(n))
            .map(|_| {
                Ok(SendSlot {
                    msi: MIXED_SOURCE,
                    pipe: SendPipeline::new(&SendConfig {
                        codec,
                        opus,
                        queue_frames: 2,
                        ..SendConfig::default()
                    })?,
                    last_tick: 0,
                    first: true,
                })
            })
            .collect::<Result<_, SendSetupError>>()?;
        Ok(Self {
            slots,
            encoding: false,
        })
    }

    /// Queues `frame` on speaker `source`'s stream at send tick `tick`.
    pub(crate) fn push(
        &mut self,
        source: u32,
        frame: &Pcm16kFrame,
        tick: u64,
    ) -> Result<(), UnmixedSendError> {
        if self.slots.is_empty() {
            return Err(UnmixedSendError::NotNegotiated);
        }
        if source == MIXED_SOURCE {
            return Err(UnmixedSendError::NoSource);
        }
        let index = match self.slots.iter().position(|s| s.msi == source) {
            Some(i) => i,
            None => {
                let free = self.slots.iter().position(|s| s.msi == MIXED_SOURCE);
                let i = match free {
                    Some(i) => i,
                    None => self
                        .slots
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| tick.saturating_sub(s.last_tick) >= SEND_EVICT_TICKS)
                        .min_by_key(|(_, s)| s.last_tick)
                        .map(|(i, _)| i)
                        .ok_or(UnmixedSendError::AllStreamsBusy)?,
                };
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.msi = source;
                    slot.first = true;
                }
                i
            }
        };
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(UnmixedSendError::AllStreamsBusy)?;
        slot.last_tick = tick;
        slot.pipe
            .push_pcm16k_frame(frame)
            .map_err(|_| UnmixedSendError::QueueFull)?;
        self.encoding = true;
        Ok(())
    }

    /// The next encoded unmixed packet into `out` (its `source` set). `false` when
    /// every stream is drained.
    pub(crate) fn poll_packet(&mut self, out: &mut AudioPacket) -> bool {
        for slot in &mut self.slots {
            if slot.pipe.poll_packet(out) {
                out.source = slot.msi;
                out.marker = std::mem::take(&mut slot.first);
                return true;
            }
        }
        self.encoding = false;
        false
    }
}
