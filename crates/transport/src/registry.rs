//! Admission: which joins the media server accepts.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use media_blob::MediaSessionConfig;
use uuid::Uuid;

use crate::wire::{Codec, Join, Reject, RejectCode};
use media_core::call::AudioStreams;
use media_core::link::CloseReason;

/// The server's verdict on an admitted join.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Admission {
    /// Codec for the call; must be one of `join.codecs`. `None` takes the peer's
    /// first (most preferred) codec.
    pub codec: Option<Codec>,
    /// The audio the receiving side asked for: the mix (default), unmixed streams,
    /// or both. The accept grants at most the unmixed streams the join offered, and
    /// the mix whenever it grants none ([`AudioStreams::negotiate`]).
    pub streams: AudioStreams,
}

impl Admission {
    /// Admit with the peer's preferred codec.
    pub fn new() -> Self {
        Admission {
            codec: None,
            streams: AudioStreams::MIXED,
        }
    }

    /// Admit with a specific codec.
    pub fn with_codec(codec: Codec) -> Self {
        Admission {
            codec: Some(codec),
            streams: AudioStreams::MIXED,
        }
    }

    /// The same admission asking for `streams` (unmixed audio).
    #[must_use]
    pub fn with_streams(self, streams: AudioStreams) -> Self {
        Admission { streams, ..self }
    }
}

/// Decides whether a `Join` may proceed: the admission half of a
/// [`CallApp`](crate::reactor::CallApp), shareable between reactor threads.
///
/// Called on a reactor thread: return quickly, do not block on I/O.
pub trait SessionRegistry: Send + Sync + 'static {
    /// Admit or refuse a join. The server has already checked the protocol
    /// version and that the join has contexts and codecs.
    fn admit(&self, join: &Join) -> Result<Admission, Reject>;

    /// Called once when an admitted connection ends (for any reason), so the session
    /// can be joined again. Default: nothing.
    fn release(&self, join: &Join, reason: &CloseReason) {
        let _ = (join, reason);
    }
}

/// A ready-made registry: a set of expected `mpMediaSessionId`s, each joinable by one
/// connection at a time.
///
/// Unknown ids are refused with [`RejectCode::UnknownSession`], a second
/// concurrent join with [`RejectCode::AlreadyJoined`]. A session registered with
/// its blob ([`expect_blob`](Self::expect_blob)) admits only joins carrying the
/// blob's `callId` and audio contexts; others get [`RejectCode::InvalidJoin`] with
/// the first difference ([`mismatch_reject`]). The codec is the first of the
/// registry's preference list that the peer offers.
#[derive(Debug)]
pub struct KnownSessions {
    sessions: Mutex<HashMap<Uuid, Expected>>,
    preference: Vec<Codec>,
}

/// One expected session: whether a connection holds it, and the blob a join must match.
#[derive(Debug)]
struct Expected {
    joined: bool,
    blob: Option<Box<MediaSessionConfig>>,
}

/// The reject for a join whose `callId` or contexts differ from the blob of the
/// session it names: [`RejectCode::InvalidJoin`], the message naming the session and
/// the first difference (`callId: the join says X, the session was created for Y`).
/// `None` when the join matches ([`MediaSessionConfig::check_join`]).
pub fn mismatch_reject(blob: &MediaSessionConfig, join: &Join) -> Option<Reject> {
    blob.check_join(
        join.call_id,
        &join.audio_source_contexts,
        &join.audio_render_contexts,
    )
    .err()
    .map(|e| {
        Reject::new(
            RejectCode::InvalidJoin,
            format!(
                "join does not match media session {}: {e}",
                join.mp_media_session_id
            ),
        )
    })
}

impl Default for KnownSessions {
    fn default() -> Self {
        Self::new()
    }
}

impl KnownSessions {
    /// An empty registry preferring PCM, then Opus.
    pub fn new() -> Self {
        Self::with_codec_preference(vec![Codec::Pcm16k, Codec::Opus16k])
    }

    /// An empty registry with the given codec preference (most preferred first).
    pub fn with_codec_preference(preference: Vec<Codec>) -> Self {
        KnownSessions {
            sessions: Mutex::new(HashMap::new()),
            preference,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Expected>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expect a join for this media session id, with any `callId` and contexts.
    /// Prefer [`expect_blob`](Self::expect_blob), which checks them against the blob.
    pub fn expect(&self, mp_media_session_id: Uuid) {
        self.lock().entry(mp_media_session_id).or_insert(Expected {
            joined: false,
            blob: None,
        });
    }

    /// Expect a join for the session `blob` describes (after handing the blob out):
    /// only a join with the blob's `mpMediaSessionId`, `callId` and audio contexts
    /// is admitted. Registering the same session again replaces its blob.
    pub fn expect_blob(&self, blob: &MediaSessionConfig) {
        let mut map = self.lock();
        let entry = map.entry(blob.session_id()).or_insert(Expected {
            joined: false,
            blob: None,
        });
        entry.blob = Some(Box::new(blob.clone()));
    }

    /// Stop expecting this session (an existing connection is not affected).
    pub fn forget(&self, mp_media_session_id: &Uuid) {
        self.lock().remove(mp_media_session_id);
    }

    /// True while a connection holds this session.
    pub fn is_joined(&self, mp_media_session_id: &Uuid) -> bool {
        self.lock()
            .get(mp_media_session_id)
            .is_some_and(|e| e.joined)
    }
}

impl SessionRegistry for KnownSessions {
    fn admit(&self, join: &Join) -> Result<Admission, Reject> {
        let codec = join.choose_codec(&self.preference)?;
        let mut map = self.lock();
        match map.get_mut(&join.mp_media_session_id) {
            None => Err(Reject::new(
                RejectCode::UnknownSession,
                format!(
                    "no media session {} is expected here",
                    join.mp_media_session_id
                ),
            )),
            Some(e) if e.joined => Err(Reject::new(
                RejectCode::AlreadyJoined,
                format!(
                    "media session {} is already joined",
                    join.mp_media_session_id
                ),
            )),
            Some(e) => {
                if let Some(reject) = e.blob.as_deref().and_then(|b| mismatch_reject(b, join)) {
                    return Err(reject);
                }
                e.joined = true;
                Ok(Admission::with_codec(codec))
            }
        }
    }

    fn release(&self, join: &Join, _reason: &CloseReason) {
        if let Some(e) = self.lock().get_mut(&join.mp_media_session_id) {
            e.joined = false;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use media_blob::MpUri;

    fn blob() -> MediaSessionConfig {
        MediaSessionConfig::builder(MpUri::quic("localhost", 4433).unwrap(), Uuid::new_v4())
            .try_build()
            .unwrap()
    }

    fn join_of(b: &MediaSessionConfig) -> Join {
        let (source, render) = b.join_contexts();
        Join::new(b.session_id(), b.call_id().unwrap(), source, render)
    }

    #[test]
    fn a_join_must_carry_its_blobs_call_id_and_contexts() {
        let b = blob();
        let reg = KnownSessions::new();
        reg.expect_blob(&b);
        let mut wrong_call = join_of(&b);
        wrong_call.call_id = Uuid::new_v4();
        let rej = reg.admit(&wrong_call).unwrap_err();
        assert_eq!(rej.code, RejectCode::InvalidJoin);
        assert!(
            rej.message.starts_with(&format!(
                "join does not match media session {}: callId: the join says {}",
                b.session_id(),
                wrong_call.call_id
            )),
            "{rej}"
        );
        let mut wrong_context = join_of(&b);
        wrong_context.audio_render_contexts[0] = Uuid::new_v4();
        let rej = reg.admit(&wrong_context).unwrap_err();
        assert!(
            rej.message
                .contains("audioRenderContexts[0]: the join says"),
            "{rej}"
        );
        let mut swapped = join_of(&b);
        std::mem::swap(
            &mut swapped.audio_render_contexts,
            &mut swapped.audio_source_contexts,
        );
        assert_eq!(
            reg.admit(&swapped).unwrap_err().code,
            RejectCode::InvalidJoin
        );
        assert!(
            !reg.is_joined(&b.session_id()),
            "refused joins hold nothing"
        );
        assert!(reg.admit(&join_of(&b)).is_ok());
        assert!(reg.is_joined(&b.session_id()));
    }

    #[test]
    fn a_session_without_a_blob_admits_any_call_id() {
        let reg = KnownSessions::new();
        let id = Uuid::new_v4();
        reg.expect(id);
        let j = Join::new(id, Uuid::new_v4(), vec![Uuid::new_v4()], vec![]);
        assert!(reg.admit(&j).is_ok());
        assert_eq!(reg.admit(&j).unwrap_err().code, RejectCode::AlreadyJoined);
    }
}
