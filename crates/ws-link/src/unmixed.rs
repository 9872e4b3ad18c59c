//! ACS unmixed audio: each participant's own stream on one WebSocket, sans-IO.
//!
//! ACS audio streaming with `audioChannelType: "unmixed"` sends the audio of up to
//! four (dominant) speakers separately: every `AudioData` message carries one
//! participant's 20 ms, named by its `participantRawID`, all interleaved on one
//! WebSocket. [`InboundStreams`] gives each participant a stable media source id (MSI,
//! 1, 2, ... by first appearance; never [`MIXED_SOURCE`]) and a timeline of its own
//! (an [`InboundAudio`]: its own numbering on its own timestamps), so the call plays
//! each one through its own unmixed slot ([`AudioPacket::source`] set) and the bot gets
//! one [`UnmixedBuffer`](media_core::call::UnmixedBuffer) per participant. A message
//! naming no participant is the mix. [`Participants`] tells the bot which
//! `participantRawID` an MSI stands for.
//!
//! A stream has as many timelines as it asked unmixed streams for
//! ([`StreamInfo::audio`](crate::StreamInfo::audio), at most four); a new participant
//! while all are taken gets the one heard from least recently (its packets start a
//! new timeline; the call's slot eviction does the same on its side). At most
//! [`MAX_PARTICIPANTS`] distinct participants are named on one stream; one more closes
//! the stream (1008).
//!
//! # Realtime safety
//! Timelines are created with the stream; a new participant's name is stored (one
//! allocation) when it first speaks; routing a chunk allocates nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use media_core::call::AudioStreams;
use media_core::packet::{AudioPacket, MIXED_SOURCE};
use media_core::resample::ResamplerSetupError;

use crate::dialect::{AudioChunk, CLOSE_POLICY, Encoding, ProtocolError};
use crate::media::{InboundAudio, InboundCounters};

/// Most distinct participants one stream may name.
pub const MAX_PARTICIPANTS: usize = 256;

/// Which participant each MSI of one stream stands for (ACS `participantRawID`), shared
/// between the stream's task (which adds them as they first speak) and the bot.
/// Cloning shares the same table. Reading takes a lock: look names up when a new MSI
/// shows up in [`AudioFrame::unmixed`](media_core::call::AudioFrame::unmixed), not in a
/// realtime callback on every frame.
#[derive(Debug, Clone, Default)]
pub struct Participants {
    inner: Arc<RwLock<Vec<(u32, String)>>>,
}

impl Participants {
    /// The `participantRawID` the MSI `msi` stands for, if the stream named it.
    pub fn raw_id(&self, msi: u32) -> Option<String> {
        let table = self.inner.read().unwrap_or_else(|e| e.into_inner());
        table
            .iter()
            .find(|(m, _)| *m == msi)
            .map(|(_, id)| id.clone())
    }

    /// The MSI of the participant `raw_id`, if it has spoken on the stream.
    pub fn msi(&self, raw_id: &str) -> Option<u32> {
        let table = self.inner.read().unwrap_or_else(|e| e.into_inner());
        table.iter().find(|(_, id)| id == raw_id).map(|(m, _)| *m)
    }

    /// Every (MSI, `participantRawID`) so far, in order of first appearance.
    pub fn all(&self) -> Vec<(u32, String)> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn add(&self, msi: u32, raw_id: &str) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((msi, raw_id.to_owned()));
    }
}

/// One timeline of an unmixed stream.
#[derive(Debug)]
struct Timeline {
    /// The participant on it ([`MIXED_SOURCE`]: free).
    msi: u32,
    audio: InboundAudio,
    /// Chunk count of the stream when it was last used.
    last_used: u64,
}

/// A stream's inbound audio, the mix and, on an unmixed stream, each participant's own
/// (see the [module documentation](self)).
#[derive(Debug)]
pub struct InboundStreams {
    mix: InboundAudio,
    timelines: Vec<Timeline>,
    /// `participantRawID` -> MSI, every participant named so far.
    names: HashMap<String, u32>,
    participants: Participants,
    chunks: u64,
    /// Chunks naming a participant, taken as the mix (a mixed stream).
    unrouted: u64,
}

impl InboundStreams {
    /// The inbound audio of a stream in `encoding` running `audio` (a timeline per
    /// unmixed stream), naming its participants in `participants`.
    pub fn new(
        encoding: Encoding,
        audio: AudioStreams,
        participants: Participants,
    ) -> Result<Self, ResamplerSetupError> {
        let n = usize::from(audio.unmixed).min(media_core::packet::MAX_UNMIXED_STREAMS);
        let timelines = (0..n)
            .map(|_| {
                Ok(Timeline {
                    msi: MIXED_SOURCE,
                    audio: InboundAudio::new(encoding)?,
                    last_used: 0,
                })
            })
            .collect::<Result<_, ResamplerSetupError>>()?;
        Ok(Self {
            mix: InboundAudio::new(encoding)?,
            timelines,
            names: HashMap::new(),
            participants,
            chunks: 0,
            unrouted: 0,
        })
    }

    /// The mix's counters.
    pub fn mix_counters(&self) -> InboundCounters {
        self.mix.counters()
    }

    /// The counters of the participant `msi`'s current timeline, if it has one.
    pub fn participant_counters(&self, msi: u32) -> Option<InboundCounters> {
        self.timelines
            .iter()
            .find(|t| t.msi == msi)
            .map(|t| t.audio.counters())
    }

    /// Chunks that named a participant on a stream without unmixed timelines (taken
    /// as the mix).
    pub fn unrouted(&self) -> u64 {
        self.unrouted
    }

    /// Takes one chunk: the mix's, or (on an unmixed stream) its participant's; `emit`
    /// receives each finished 20 ms packet, `source` set, in order.
    pub fn push(
        &mut self,
        chunk: &AudioChunk<'_>,
        emit: impl FnMut(&AudioPacket),
    ) -> Result<(), ProtocolError> {
        self.chunks += 1;
        let Some(id) = chunk.participant else {
            return self.mix.push(chunk, emit);
        };
        if self.timelines.is_empty() {
            self.unrouted += 1;
            return self.mix.push(chunk, emit);
        }
        let msi = match self.names.get(id) {
            Some(&msi) => msi,
            None => {
                if self.names.len() >= MAX_PARTICIPANTS {
                    return Err(ProtocolError::new(
                        CLOSE_POLICY,
                        format!(
                            "audioData.participantRawID names a participant beyond the {MAX_PARTICIPANTS} this stream takes"
                        ),
                    ));
                }
                let msi = self.names.len() as u32 + 1;
                self.names.insert(id.to_owned(), msi);
                self.participants.add(msi, id);
                msi
            }
        };
        let at = match self.timelines.iter().position(|t| t.msi == msi) {
            Some(at) => at,
            None => {
                // A free timeline, else the one heard from least recently.
                let at = self
                    .timelines
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, t)| (t.msi != MIXED_SOURCE, t.last_used))
                    .map_or(0, |(at, _)| at);
                let t = &mut self.timelines[at];
                t.msi = msi;
                t.audio.restart();
                t.audio.set_source(msi);
                at
            }
        };
        let t = &mut self.timelines[at];
        t.last_used = self.chunks;
        t.audio.push(chunk, emit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk<'a>(bytes: &'a [u8], ts: u64, who: Option<&'a str>) -> AudioChunk<'a> {
        AudioChunk {
            bytes,
            timestamp_ms: Some(ts),
            silent: false,
            participant: who,
        }
    }

    #[test]
    fn each_participant_has_a_stable_msi_and_a_timeline_of_its_own() {
        let names = Participants::default();
        let mut s = InboundStreams::new(
            Encoding::Pcm16 { rate: 16_000 },
            AudioStreams::mixed_and_unmixed(2),
            names.clone(),
        )
        .expect("16k");
        let bytes = [0u8; 640];
        let mut got: Vec<(u32, u16)> = Vec::new();
        for k in 0..5u64 {
            for who in [Some("8:acs:a"), Some("8:acs:b"), None] {
                s.push(&chunk(&bytes, 1000 + k * 20, who), |p| {
                    got.push((p.source, p.seq))
                })
                .expect("chunk");
            }
        }
        let seqs = |src: u32| -> Vec<u16> {
            got.iter()
                .filter(|(s, _)| *s == src)
                .map(|(_, q)| *q)
                .collect()
        };
        assert_eq!(seqs(1), [0, 1, 2, 3, 4]);
        assert_eq!(seqs(2), [0, 1, 2, 3, 4]);
        assert_eq!(seqs(MIXED_SOURCE), [0, 1, 2, 3, 4]);
        assert_eq!(names.raw_id(1).as_deref(), Some("8:acs:a"));
        assert_eq!(names.msi("8:acs:b"), Some(2));
        // A third participant takes the timeline heard from least recently (a's);
        // a keeps its MSI when it comes back.
        s.push(&chunk(&bytes, 1100, Some("8:acs:c")), |p| {
            assert_eq!((p.source, p.seq), (3, 0));
        })
        .expect("chunk");
        s.push(&chunk(&bytes, 1120, Some("8:acs:a")), |p| {
            assert_eq!((p.source, p.seq), (1, 0));
        })
        .expect("chunk");
        assert_eq!(names.all().len(), 3);
    }

    #[test]
    fn a_mixed_stream_takes_named_chunks_as_the_mix() {
        let mut s = InboundStreams::new(
            Encoding::Pcm16 { rate: 16_000 },
            AudioStreams::MIXED,
            Participants::default(),
        )
        .expect("16k");
        let bytes = [0u8; 640];
        s.push(&chunk(&bytes, 0, Some("8:acs:a")), |p| {
            assert_eq!(p.source, MIXED_SOURCE)
        })
        .expect("chunk");
        assert_eq!(s.unrouted(), 1);
    }

    #[test]
    fn too_many_participants_close_the_stream_with_a_policy_error() {
        let mut s = InboundStreams::new(
            Encoding::Pcm16 { rate: 16_000 },
            AudioStreams::unmixed_only(4),
            Participants::default(),
        )
        .expect("16k");
        let bytes = [0u8; 640];
        for i in 0..MAX_PARTICIPANTS {
            let id = format!("8:acs:{i}");
            s.push(&chunk(&bytes, 0, Some(&id)), |_| {}).expect("taken");
        }
        let e = s
            .push(&chunk(&bytes, 0, Some("8:acs:one-more")), |_| {})
            .expect_err("refused");
        assert_eq!(e.code, CLOSE_POLICY);
        assert!(e.detail.contains("participantRawID"), "{}", e.detail);
    }
}
