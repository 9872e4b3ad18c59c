//! Admission: which joins the media server accepts.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

use crate::wire::{Codec, Join, Reject, RejectCode};
use media_core::link::CloseReason;

/// The server's verdict on an admitted join.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Admission {
    /// Codec for the call; must be one of `join.codecs`. `None` takes the peer's
    /// first (most preferred) codec.
    pub codec: Option<Codec>,
}

impl Admission {
    /// Admit with the peer's preferred codec.
    pub fn new() -> Self {
        Admission { codec: None }
    }

    /// Admit with a specific codec.
    pub fn with_codec(codec: Codec) -> Self {
        Admission { codec: Some(codec) }
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
/// concurrent join with [`RejectCode::AlreadyJoined`]. The codec is the first of
/// the registry's preference list that the peer offers.
#[derive(Debug)]
pub struct KnownSessions {
    sessions: Mutex<HashMap<Uuid, bool>>,
    preference: Vec<Codec>,
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

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, bool>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expect a join for this media session (e.g. after creating its blob).
    pub fn expect(&self, mp_media_session_id: Uuid) {
        self.lock().entry(mp_media_session_id).or_insert(false);
    }

    /// Stop expecting this session (an existing connection is not affected).
    pub fn forget(&self, mp_media_session_id: &Uuid) {
        self.lock().remove(mp_media_session_id);
    }

    /// True while a connection holds this session.
    pub fn is_joined(&self, mp_media_session_id: &Uuid) -> bool {
        self.lock()
            .get(mp_media_session_id)
            .copied()
            .unwrap_or(false)
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
            Some(true) => Err(Reject::new(
                RejectCode::AlreadyJoined,
                format!(
                    "media session {} is already joined",
                    join.mp_media_session_id
                ),
            )),
            Some(joined) => {
                *joined = true;
                Ok(Admission::with_codec(codec))
            }
        }
    }

    fn release(&self, join: &Join, _reason: &CloseReason) {
        if let Some(joined) = self.lock().get_mut(&join.mp_media_session_id) {
            *joined = false;
        }
    }
}
