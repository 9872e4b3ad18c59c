//! The targets: which parser each feeds, its seeds, its input size and memory bound.

mod blob;
mod control;
mod datagram;
mod graph_call;
mod jwt;
mod notification;
mod ws;

use std::fmt;

/// What a target made of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The parser accepted the input (and every property held).
    Accepted,
    /// The parser refused the input (with a bounded, printable error).
    Rejected,
}

impl Verdict {
    /// `Accepted` if either is.
    #[must_use]
    pub fn or(self, other: Verdict) -> Verdict {
        if self == Verdict::Accepted {
            self
        } else {
            other
        }
    }
}

/// One fuzz target: a parser of untrusted input and the properties it must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// The media session configuration (`media_blob`).
    Blob,
    /// Graph call documents (`signaling::Call`), validation, classification.
    GraphCall,
    /// Callback bodies (`signaling::CommsNotifications`) and the call state machine.
    Notification,
    /// Media datagrams (`transport::wire::datagram`).
    Datagram,
    /// The control stream (`transport::wire::control`).
    Control,
    /// The callback `Authorization` JWT (`graph::JwtValidator`).
    Jwt,
    /// The platforms' media WebSocket messages and audio (`ws_link`).
    Ws,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 7] = [
        Target::Blob,
        Target::GraphCall,
        Target::Notification,
        Target::Datagram,
        Target::Control,
        Target::Jwt,
        Target::Ws,
    ];

    /// The target's name: its function in this crate and its binary in `fuzz/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Blob => "blob",
            Target::GraphCall => "graph_call",
            Target::Notification => "notification",
            Target::Datagram => "datagram",
            Target::Control => "control",
            Target::Jwt => "jwt",
            Target::Ws => "ws",
        }
    }

    /// Feeds `data` to the target's parser and checks its properties; panics when one
    /// does not hold.
    pub fn run(self, data: &[u8]) -> Verdict {
        match self {
            Target::Blob => blob::run(data),
            Target::GraphCall => graph_call::run(data),
            Target::Notification => notification::run(data),
            Target::Datagram => datagram::run(data),
            Target::Control => control::run(data),
            Target::Jwt => jwt::run(data),
            Target::Ws => ws::run(data),
        }
    }

    /// The seed corpus: valid inputs (the seed page's documents, encoder output,
    /// signed tokens) and a few near misses.
    pub fn seeds(self) -> Vec<Vec<u8>> {
        match self {
            Target::Blob => blob::seeds(),
            Target::GraphCall => graph_call::seeds(),
            Target::Notification => notification::seeds(),
            Target::Datagram => datagram::seeds(),
            Target::Control => control::seeds(),
            Target::Jwt => jwt::seeds(),
            Target::Ws => ws::seeds(),
        }
    }

    /// Longest input the mutator makes: past each parser's own limit, so the limit
    /// itself is exercised (blob text 16 KiB, escaped 32 KiB; datagram 1162 bytes;
    /// control body 64 KiB), and for the documents the size of a large real one.
    pub fn max_len(self) -> usize {
        match self {
            Target::Blob => 40 * 1024,
            Target::GraphCall | Target::Notification => 64 * 1024,
            Target::Datagram => 1300,
            Target::Control => 80 * 1024,
            Target::Jwt => 16 * 1024,
            Target::Ws => 64 * 1024,
        }
    }

    /// Most bytes one case may hold at its peak for an input of `len` bytes:
    /// `per_byte * len + base` (see [`Target::memory_bound_terms`]).
    pub fn memory_bound(self, len: usize) -> usize {
        let (per_byte, base) = self.memory_bound_terms();
        per_byte.saturating_mul(len).saturating_add(base)
    }

    /// The terms of [`Target::memory_bound`]: bytes per input byte, and a base.
    ///
    /// A JSON document parsed into `serde_json::Value`s with ordered maps costs up to
    /// ~40 bytes per input byte (`[0,0,...]`: a 32-byte value per 2 bytes, vectors
    /// grown by doubling), and a target holds the document a few times over (value,
    /// typed model, re-serialization, second parse); the base covers the fixed costs
    /// (decoder buffers, a key fetch). Measured worst cases are in the crate docs.
    /// Datagrams are decoded and encoded without allocating: their bound is zero.
    pub fn memory_bound_terms(self) -> (usize, usize) {
        const MIB: usize = 1 << 20;
        match self {
            Target::Blob => (256, MIB),
            Target::GraphCall | Target::Notification => (256, MIB),
            Target::Datagram => (0, 0),
            Target::Control => (256, MIB),
            Target::Jwt => (256, MIB),
            // A stream's resamplers (8 or 24 kHz, in and out): about 0.6 MB at start.
            Target::Ws => (256, 2 * MIB),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One public function per target, `name(data: &[u8])`, for `cargo fuzz` binaries.
macro_rules! target_functions {
    ($($name:ident => $variant:ident),* $(,)?) => {$(
        #[doc = concat!("Runs the `", stringify!($name), "` target on `data` ([`Target::", stringify!($variant), "`]); panics when a property breaks.")]
        pub fn $name(data: &[u8]) {
            Target::$variant.run(data);
        }
    )*};
}

crate::with_targets!(target_functions);

/// The seed page's documents, from the `signaling` and `media-blob` test fixtures.
mod fixtures {
    macro_rules! signaling_fixtures {
        ($($name:literal),* $(,)?) => {
            &[$(include_str!(concat!("../../../signaling/tests/fixtures/", $name))),*]
        };
    }

    /// Every create-call request and `201 Created` response.
    pub(super) const CALLS: &[&str] = signaling_fixtures![
        "01_p2p_voip_service_hosted.request.json",
        "01_p2p_voip_service_hosted.response.json",
        "02_p2p_voip_app_hosted.request.json",
        "02_p2p_voip_app_hosted.response.json",
        "03_group_call_service_hosted.request.json",
        "04_group_call_app_hosted.request.json",
        "05_join_scheduled_meeting_service_hosted.request.json",
        "05_join_scheduled_meeting_service_hosted.response.json",
        "06_join_scheduled_meeting_app_hosted.request.json",
        "07_join_channel_meeting_service_hosted.request.json",
        "08_join_channel_meeting_as_guest.request.json",
        "09_p2p_pstn_service_hosted.request.json",
        "09_p2p_pstn_service_hosted.response.json",
        "10_p2p_pstn_app_hosted.request.json",
        "10_p2p_pstn_app_hosted.response.json",
    ];

    /// Every `commsNotifications` body.
    pub(super) const NOTIFICATIONS: &[&str] = signaling_fixtures![
        "01_notification_establishing.json",
        "01_notification_established.json",
        "01_notification_content_sharing_started.json",
        "01_notification_content_sharing_updated.json",
        "01_notification_content_sharing_ended.json",
        "05_notification_establishing.json",
        "05_notification_established.json",
        "05_notification_roster.json",
        "08_notification_roster_lobby.json",
    ];

    /// The seed page's media session configuration (example 2).
    pub(super) const BLOB: &[u8] = include_bytes!(
        "../../../signaling/tests/fixtures/02_media_session_configuration.blob.json"
    );
}
