//! Control messages: JSON bodies framed by a 4-byte big-endian length prefix, carried
//! on one bidirectional QUIC stream per connection.
//!
//! ```text
//! +--------+--------+--------+--------+----------------------------+
//! |      body length N (u32 BE)       |  N bytes of UTF-8 JSON ...  |
//! +--------+--------+--------+--------+----------------------------+
//! ```
//!
//! The body is one object with a `"type"` tag (`"join"`, `"accept"`, `"reject"`,
//! `"leave"`, `"dtmf"`, `"dominantSpeaker"`, `"activeSpeakers"`, `"sendStatus"`,
//! `"stats"`) and camelCase fields. Unknown fields are ignored (forward compatible);
//! unknown types are an error. `N` is at most [`MAX_CONTROL_LEN`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use media_core::control::{
    DtmfTone, QualityReport as StatsReport, SendStatus as SendStatusKind,
};

use super::{Codec, WireError};

/// Control protocol version carried in `Join` and `Accept`.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest control message body, in bytes (64 KiB).
pub const MAX_CONTROL_LEN: usize = 64 * 1024;

/// TLS ALPN protocol identifier of this protocol.
pub const AUDIO_ALPN: &[u8] = b"mp-audio/1";

/// `DominantSpeaker::msi` value meaning "nobody" (Microsoft's `None = 0xFFFFFFFF`).
pub const NO_DOMINANT_SPEAKER: u32 = 0xFFFF_FFFF;

/// Length of the frame length prefix.
const PREFIX_LEN: usize = 4;

/// One message on the control stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ControlMessage {
    /// Peer → processor, first message: which media session to join.
    Join(Join),
    /// Processor → peer: the join is admitted; media may flow.
    Accept(Accept),
    /// Processor → peer: the join is refused; the connection closes.
    Reject(Reject),
    /// Either side: orderly end of the call's media.
    Leave(Leave),
    /// Either side: a DTMF tone was received.
    Dtmf(Dtmf),
    /// Either side: the dominant speaker changed.
    DominantSpeaker(DominantSpeaker),
    /// Either side: the set of active speakers changed.
    ActiveSpeakers(ActiveSpeakers),
    /// Either side: whether the receiver should send audio now.
    SendStatus(SendStatus),
    /// Either side: periodic quality report.
    Stats(StatsReport),
}

impl ControlMessage {
    /// The `type` tag of this message.
    pub fn kind(&self) -> &'static str {
        match self {
            ControlMessage::Join(_) => "join",
            ControlMessage::Accept(_) => "accept",
            ControlMessage::Reject(_) => "reject",
            ControlMessage::Leave(_) => "leave",
            ControlMessage::Dtmf(_) => "dtmf",
            ControlMessage::DominantSpeaker(_) => "dominantSpeaker",
            ControlMessage::ActiveSpeakers(_) => "activeSpeakers",
            ControlMessage::SendStatus(_) => "sendStatus",
            ControlMessage::Stats(_) => "stats",
        }
    }

    /// True for `Join`, `Accept` and `Reject`, which only appear during admission.
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            ControlMessage::Join(_) | ControlMessage::Accept(_) | ControlMessage::Reject(_)
        )
    }
}

/// Request to join a media session, built from the app-hosted media blob.
///
/// Codec names this version does not know (a newer peer's `"opus48k"`, say) do not
/// make the join malformed: they are kept apart in [`Join::unknown_codecs`] and the
/// call settles on the first common known codec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "JoinWire", into = "JoinWire")]
pub struct Join {
    /// Control protocol version the peer speaks ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// The blob's `mpMediaSessionId`.
    pub mp_media_session_id: Uuid,
    /// The blob's `callId`.
    pub call_id: Uuid,
    /// The blob's `audioSourceContexts`.
    #[serde(default)]
    pub audio_source_contexts: Vec<Uuid>,
    /// The blob's `audioRenderContexts`.
    #[serde(default)]
    pub audio_render_contexts: Vec<Uuid>,
    /// Codecs the peer can send and receive, most preferred first.
    pub codecs: Vec<Codec>,
    /// Codec names offered that this version does not know, in offer order, each cut
    /// to [`MAX_CODEC_NAME_CHARS`] characters; at most [`MAX_UNKNOWN_CODECS`] are kept.
    /// Written back after `codecs` when the join is encoded.
    pub unknown_codecs: Vec<String>,
    /// How many unmixed (per-speaker) streams the peer can send besides the mix, 0 to
    /// [`MAX_UNMIXED`](super::MAX_UNMIXED) (its loudest speakers). Absent on the wire
    /// when 0 (every earlier join).
    pub unmixed: u8,
}

/// Most unknown codec names a decoded [`Join`] keeps (the rest are counted out).
pub const MAX_UNKNOWN_CODECS: usize = 16;

/// Longest unknown codec name a decoded [`Join`] keeps, in characters.
pub const MAX_CODEC_NAME_CHARS: usize = 32;

/// One entry of a join's `codecs` list as it travels: a codec this version knows, or
/// any other name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum OfferedCodec {
    Known(Codec),
    Unknown(String),
}

/// The wire form of [`Join`]: one `codecs` list mixing known and unknown names.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinWire {
    version: u16,
    mp_media_session_id: Uuid,
    call_id: Uuid,
    #[serde(default)]
    audio_source_contexts: Vec<Uuid>,
    #[serde(default)]
    audio_render_contexts: Vec<Uuid>,
    codecs: Vec<OfferedCodec>,
    #[serde(default, skip_serializing_if = "is_zero")]
    unmixed: u8,
}

/// Serde: a count left out of the JSON when 0 (the default).
fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// Serde: `Accept.mixed` left out of the JSON when true (the default).
fn is_true(b: &bool) -> bool {
    *b
}

/// Serde: the default of `Accept.mixed`.
fn yes() -> bool {
    true
}

impl From<JoinWire> for Join {
    fn from(w: JoinWire) -> Self {
        let mut codecs = Vec::new();
        let mut unknown_codecs = Vec::new();
        for offered in w.codecs {
            match offered {
                OfferedCodec::Known(c) => codecs.push(c),
                OfferedCodec::Unknown(name) if unknown_codecs.len() < MAX_UNKNOWN_CODECS => {
                    unknown_codecs.push(name.chars().take(MAX_CODEC_NAME_CHARS).collect());
                }
                OfferedCodec::Unknown(_) => {}
            }
        }
        Join {
            version: w.version,
            mp_media_session_id: w.mp_media_session_id,
            call_id: w.call_id,
            audio_source_contexts: w.audio_source_contexts,
            audio_render_contexts: w.audio_render_contexts,
            codecs,
            unknown_codecs,
            unmixed: w.unmixed,
        }
    }
}

impl From<Join> for JoinWire {
    fn from(j: Join) -> Self {
        let known = j.codecs.into_iter().map(OfferedCodec::Known);
        let unknown = j.unknown_codecs.into_iter().map(OfferedCodec::Unknown);
        JoinWire {
            version: j.version,
            mp_media_session_id: j.mp_media_session_id,
            call_id: j.call_id,
            audio_source_contexts: j.audio_source_contexts,
            audio_render_contexts: j.audio_render_contexts,
            codecs: known.chain(unknown).collect(),
            unmixed: j.unmixed,
        }
    }
}

impl Join {
    /// A version-1 join offering PCM then Opus.
    pub fn new(
        mp_media_session_id: Uuid,
        call_id: Uuid,
        audio_source_contexts: Vec<Uuid>,
        audio_render_contexts: Vec<Uuid>,
    ) -> Self {
        Join {
            version: PROTOCOL_VERSION,
            mp_media_session_id,
            call_id,
            audio_source_contexts,
            audio_render_contexts,
            codecs: vec![Codec::Pcm16k, Codec::Opus16k],
            unknown_codecs: Vec::new(),
            unmixed: 0,
        }
    }

    /// Total number of contexts (source + render).
    pub fn context_count(&self) -> usize {
        self.audio_source_contexts.len() + self.audio_render_contexts.len()
    }

    /// The codec for the call: the first of `supported` (the processor's codecs, most
    /// preferred first) that the peer offers; unknown names in the offer are passed
    /// over. A [`RejectCode::NoCommonCodec`] reject naming both lists (unknown names
    /// escaped) when there is none.
    pub fn choose_codec(&self, supported: &[Codec]) -> Result<Codec, Reject> {
        supported
            .iter()
            .copied()
            .find(|c| self.codecs.contains(c))
            .ok_or_else(|| {
                // Each known codec once, in offer order: a join may repeat one
                // thousands of times, and the reject quotes only a bounded list.
                let mut offered: Vec<Codec> = Vec::with_capacity(Codec::ALL.len());
                for c in &self.codecs {
                    if !offered.contains(c) {
                        offered.push(*c);
                    }
                }
                let unknown: Vec<String> = self
                    .unknown_codecs
                    .iter()
                    .map(|n| media_blob::excerpt(n))
                    .collect();
                Reject::new(
                    RejectCode::NoCommonCodec,
                    format!(
                        "offered {:?} and {} unknown [{}], this processor speaks {:?}",
                        offered,
                        unknown.len(),
                        unknown.join(", "),
                        supported
                    ),
                )
            })
    }
}

/// Which list of the blob a stream comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamDirection {
    /// From `audioSourceContexts`: audio the bot sends into the call.
    Source,
    /// From `audioRenderContexts`: audio the bot receives from the call.
    Render,
}

/// Mapping of one blob context GUID to the small stream id used in datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamAssignment {
    /// Context GUID from the blob.
    pub context: Uuid,
    /// Stream id used in the datagram header.
    pub stream_id: u32,
    /// Which blob list the context came from.
    pub direction: StreamDirection,
}

/// Join admitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accept {
    /// Control protocol version the processor speaks.
    pub version: u16,
    /// Codec both sides use for the call.
    pub codec: Codec,
    /// One stream id per context of the join, sources first, in join order.
    pub streams: Vec<StreamAssignment>,
    /// Largest datagram payload the processor accepts.
    pub max_payload: u32,
    /// How many unmixed (per-speaker) streams the peer is to send: at most what the
    /// join offered, at most what the bot asked for. Absent on the wire when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unmixed: u8,
    /// Whether the peer is to send the mixed stream (false: the bot asked for
    /// unmixed audio only). Absent on the wire when true.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub mixed: bool,
}

impl Accept {
    /// The stream id assigned to `context`, if any.
    pub fn stream_id(&self, context: &Uuid) -> Option<u32> {
        self.streams
            .iter()
            .find(|s| s.context == *context)
            .map(|s| s.stream_id)
    }
}

/// Why a join was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum RejectCode {
    /// No media session with this `mpMediaSessionId` is expected: the bot has not
    /// created it (or it ended). Check the blob the bot sent.
    UnknownSession,
    /// Another connection already joined this session.
    AlreadyJoined,
    /// The join's protocol version is not supported.
    UnsupportedVersion,
    /// None of the offered codecs is supported.
    NoCommonCodec,
    /// The join is malformed (no contexts, too many contexts, no codecs).
    InvalidJoin,
    /// The processor is at capacity; retry later or elsewhere.
    Overloaded,
    /// Any code this version does not know.
    #[serde(other)]
    Other,
}

/// Join refused, with a code for programs and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reject {
    /// Machine-readable reason.
    pub code: RejectCode,
    /// Human-readable detail.
    pub message: String,
}

impl Reject {
    /// A reject with the given code and message.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Reject {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// Orderly end of the call's media.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leave {
    /// Human-readable reason (e.g. "call terminated").
    pub reason: String,
}

/// A DTMF tone event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dtmf {
    /// The tone.
    pub tone: DtmfTone,
    /// Stream the tone was detected on (0 if not stream specific).
    #[serde(default)]
    pub stream_id: u32,
    /// Tone duration in milliseconds (0 if unknown).
    #[serde(default)]
    pub duration_ms: u32,
}

/// The dominant speaker changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DominantSpeaker {
    /// Media source id of the speaker, or [`NO_DOMINANT_SPEAKER`].
    pub msi: u32,
}

/// The set of active speakers changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveSpeakers {
    /// Media source ids, loudest first.
    pub msis: Vec<u32>,
}

/// Whether the receiver of this message should send audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendStatus {
    /// Active or inactive.
    pub status: SendStatusKind,
}

/// Appends one framed control message (prefix + JSON) to `out`.
///
/// Fails with [`WireError::ControlTooLarge`] if the body exceeds [`MAX_CONTROL_LEN`]
/// (nothing is appended) or [`WireError::InvalidControl`] for a non-finite number.
pub fn encode_control_into(msg: &ControlMessage, out: &mut Vec<u8>) -> Result<usize, WireError> {
    check_finite(msg)?;
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_LEN]);
    if let Err(e) = serde_json::to_writer(&mut *out, msg) {
        out.truncate(start);
        return Err(json_error(&e));
    }
    let body = out.len() - start - PREFIX_LEN;
    if body > MAX_CONTROL_LEN {
        out.truncate(start);
        return Err(WireError::ControlTooLarge {
            len: body,
            max: MAX_CONTROL_LEN,
        });
    }
    let prefix = u32::try_from(body).map_err(|_| WireError::ControlTooLarge {
        len: body,
        max: MAX_CONTROL_LEN,
    })?;
    out[start..start + PREFIX_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(out.len() - start)
}

/// Encodes one framed control message into a new buffer.
pub fn encode_control(msg: &ControlMessage) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(128);
    encode_control_into(msg, &mut out)?;
    Ok(out)
}

/// Broad class of a JSON decoding failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JsonErrorKind {
    /// Not valid JSON (or not UTF-8).
    Syntax,
    /// Valid JSON, but not a known control message (unknown type, missing or
    /// mistyped field).
    Data,
    /// The body ended in the middle of a JSON value.
    Eof,
    /// An I/O error inside the serializer (should not happen).
    Io,
}

/// Refuses a stats report with a non-finite number, both ways: JSON has none, but a
/// literal beyond `f32` (`1e39`) decodes to infinity.
fn check_finite(msg: &ControlMessage) -> Result<(), WireError> {
    match msg {
        ControlMessage::Stats(s) if !s.is_finite() => Err(WireError::InvalidControl {
            kind: JsonErrorKind::Data,
            line: 0,
            column: 0,
        }),
        _ => Ok(()),
    }
}

fn json_error(e: &serde_json::Error) -> WireError {
    let kind = match e.classify() {
        serde_json::error::Category::Syntax => JsonErrorKind::Syntax,
        serde_json::error::Category::Data => JsonErrorKind::Data,
        serde_json::error::Category::Eof => JsonErrorKind::Eof,
        serde_json::error::Category::Io => JsonErrorKind::Io,
    };
    WireError::InvalidControl {
        kind,
        line: e.line(),
        column: e.column(),
    }
}

/// Incremental, sans-IO decoder for the control stream.
///
/// Feed received bytes with [`push`](Self::push) in chunks of any size, then call
/// [`poll`](Self::poll) until it returns `None`. Messages come out in order no
/// matter where the input was split.
///
/// Errors:
/// - a length prefix above [`MAX_CONTROL_LEN`] yields [`WireError::ControlTooLarge`]
///   once; the decoder is then *failed*: later input is discarded and `poll`
///   returns `None` (framing is lost, so the connection should be closed);
/// - a body that is not a valid message (a stats report with a number beyond `f32`
///   included) yields [`WireError::InvalidControl`]; the frame is consumed and
///   decoding continues with the next frame.
///
/// Buffering is bounded by what the caller pushes between polls; a frame is
/// buffered until complete, at most `4 + MAX_CONTROL_LEN` bytes.
#[derive(Debug, Default)]
pub struct ControlDecoder {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    failed: bool,
}

impl ControlDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        ControlDecoder {
            buf: Vec::with_capacity(4096),
            pos: 0,
            failed: false,
        }
    }

    /// Appends received bytes. Ignored once the decoder has failed.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= 4096 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next message or error, or `None` if more input is needed (or the
    /// decoder has failed).
    pub fn poll(&mut self) -> Option<Result<ControlMessage, WireError>> {
        if self.failed {
            return None;
        }
        let avail = &self.buf[self.pos..];
        let prefix: [u8; PREFIX_LEN] = avail.get(..PREFIX_LEN)?.try_into().ok()?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len > MAX_CONTROL_LEN {
            self.failed = true;
            self.buf = Vec::new();
            self.pos = 0;
            return Some(Err(WireError::ControlTooLarge {
                len,
                max: MAX_CONTROL_LEN,
            }));
        }
        let body = avail.get(PREFIX_LEN..PREFIX_LEN + len)?;
        let result = serde_json::from_slice::<ControlMessage>(body)
            .map_err(|e| json_error(&e))
            .and_then(|m| check_finite(&m).map(|()| m));
        self.pos += PREFIX_LEN + len;
        Some(result)
    }

    /// Bytes pushed but not yet consumed by `poll`.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True once an oversized length prefix was seen.
    pub fn is_failed(&self) -> bool {
        self.failed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codec_choice_follows_the_processor_preference() {
        let mut join = Join::new(Uuid::nil(), Uuid::nil(), Vec::new(), Vec::new());
        assert_eq!(
            join.choose_codec(&[Codec::Opus16k, Codec::Pcm16k]),
            Ok(Codec::Opus16k)
        );
        join.codecs = vec![Codec::Pcm16k];
        let r = join
            .choose_codec(&[Codec::Opus16k])
            .expect_err("no common codec");
        assert_eq!(r.code, RejectCode::NoCommonCodec);
        assert!(
            r.message.contains("Pcm16k") && r.message.contains("Opus16k"),
            "{r}"
        );
    }

    #[test]
    fn unknown_codec_names_are_kept_apart_and_round_trip() {
        let body = r#"{"type":"join","version":1,
            "mpMediaSessionId":"00000000-0000-0000-0000-000000000001",
            "callId":"00000000-0000-0000-0000-000000000002",
            "codecs":["opus48k","pcm16k","x"]}"#;
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body.as_bytes());
        let mut dec = ControlDecoder::new();
        dec.push(&frame);
        let Some(Ok(ControlMessage::Join(join))) = dec.poll() else {
            panic!("a join with an unknown codec must decode")
        };
        assert_eq!(join.codecs, [Codec::Pcm16k]);
        assert_eq!(join.unknown_codecs, ["opus48k", "x"]);
        assert_eq!(join.choose_codec(&Codec::ALL), Ok(Codec::Pcm16k));
        // Encoded again: known names first, then the unknown ones, nothing lost.
        let again = encode_control(&ControlMessage::Join(join.clone())).unwrap();
        assert!(
            std::str::from_utf8(&again[4..])
                .unwrap()
                .contains(r#""codecs":["pcm16k","opus48k","x"]"#)
        );
        // A hostile offer keeps at most 16 names of at most 32 characters.
        let mut many = Join::new(Uuid::nil(), Uuid::nil(), Vec::new(), Vec::new());
        many.codecs.clear();
        many.unknown_codecs = (0..100)
            .map(|i| format!("{i}{}", "y".repeat(100)))
            .collect();
        let bytes = encode_control(&ControlMessage::Join(many)).unwrap();
        let mut dec = ControlDecoder::new();
        dec.push(&bytes);
        let Some(Ok(ControlMessage::Join(cut))) = dec.poll() else {
            panic!("decodes")
        };
        assert_eq!(cut.unknown_codecs.len(), MAX_UNKNOWN_CODECS);
        assert!(cut.unknown_codecs.iter().all(|n| n.chars().count() == 32));
        let r = cut.choose_codec(&Codec::ALL).expect_err("nothing known");
        assert_eq!(r.code, RejectCode::NoCommonCodec);
        assert!(r.message.contains("and 16 unknown"), "{r}");
    }

    /// Found by fuzzing: a join repeating a codec thousands of times (up to the 64 KiB
    /// frame) made a NoCommonCodec reject quoting every repetition (~56 KB).
    #[test]
    fn a_repeated_codec_is_named_once() {
        let mut join = Join::new(Uuid::nil(), Uuid::nil(), Vec::new(), Vec::new());
        join.codecs = [Codec::Pcm16k, Codec::Pcm16k].repeat(3500);
        let r = join
            .choose_codec(&[Codec::Opus16k])
            .expect_err("no common codec");
        assert_eq!(
            r.message,
            "offered [Pcm16k] and 0 unknown [], this processor speaks [Opus16k]"
        );
    }

    #[test]
    fn json_shapes() {
        let m = ControlMessage::Dtmf(Dtmf {
            tone: DtmfTone::Pound,
            stream_id: 1,
            duration_ms: 0,
        });
        let bytes = encode_control(&m).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes[4..]).unwrap(),
            r##"{"type":"dtmf","tone":"#","streamId":1,"durationMs":0}"##
        );
        assert_eq!(&bytes[..4], &(bytes.len() as u32 - 4).to_be_bytes());
        let m = ControlMessage::DominantSpeaker(DominantSpeaker {
            msi: NO_DOMINANT_SPEAKER,
        });
        let bytes = encode_control(&m).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes[4..]).unwrap(),
            r#"{"type":"dominantSpeaker","msi":4294967295}"#
        );
    }

    /// The examples in docs/wire-format.md.
    #[test]
    fn documented_examples() {
        let u = |s: &str| Uuid::parse_str(s).unwrap();
        let (src, ren) = (
            u("c6d3e4f5-0000-4000-8000-000000000003"),
            u("d7e4f5a6-0000-4000-8000-000000000004"),
        );
        let join = ControlMessage::Join(Join::new(
            u("a4b1c2d3-0000-4000-8000-000000000001"),
            u("b5c2d3e4-0000-4000-8000-000000000002"),
            vec![src],
            vec![ren],
        ));
        let bytes = encode_control(&join).unwrap();
        assert_eq!(&bytes[..4], &[0, 0, 1, 0x21]);
        assert_eq!(
            std::str::from_utf8(&bytes[4..]).unwrap(),
            concat!(
                r#"{"type":"join","version":1,"mpMediaSessionId":"a4b1c2d3-0000-4000-8000-000000000001","#,
                r#""callId":"b5c2d3e4-0000-4000-8000-000000000002","#,
                r#""audioSourceContexts":["c6d3e4f5-0000-4000-8000-000000000003"],"#,
                r#""audioRenderContexts":["d7e4f5a6-0000-4000-8000-000000000004"],"#,
                r#""codecs":["pcm16k","opus16k"]}"#
            )
        );
        let dtmf = ControlMessage::Dtmf(Dtmf {
            tone: DtmfTone::Pound,
            stream_id: 1,
            duration_ms: 80,
        });
        let bytes = encode_control(&dtmf).unwrap();
        assert_eq!(&bytes[..4], &[0, 0, 0, 0x37]);
        let accept = ControlMessage::Accept(Accept {
            version: 1,
            codec: Codec::Pcm16k,
            streams: vec![
                StreamAssignment {
                    context: src,
                    stream_id: 1,
                    direction: StreamDirection::Source,
                },
                StreamAssignment {
                    context: ren,
                    stream_id: 2,
                    direction: StreamDirection::Render,
                },
            ],
            max_payload: 1148,
            unmixed: 0,
            mixed: true,
        });
        let json = serde_json::to_string(&accept).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"type":"accept","version":1,"codec":"pcm16k","#,
                r#""streams":[{"context":"c6d3e4f5-0000-4000-8000-000000000003","streamId":1,"direction":"source"},"#,
                r#"{"context":"d7e4f5a6-0000-4000-8000-000000000004","streamId":2,"direction":"render"}],"#,
                r#""maxPayload":1148}"#
            )
        );
        let reject: ControlMessage = serde_json::from_str(
            r#"{"type":"reject","code":"fromTheFuture","message":"m","extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            reject,
            ControlMessage::Reject(Reject::new(RejectCode::Other, "m"))
        );
    }

    #[test]
    fn decoder_basics() {
        let a = ControlMessage::Leave(Leave {
            reason: "bye".into(),
        });
        let b = ControlMessage::SendStatus(SendStatus {
            status: SendStatusKind::Active,
        });
        let mut bytes = encode_control(&a).unwrap();
        bytes.extend(encode_control(&b).unwrap());
        let mut d = ControlDecoder::new();
        for byte in &bytes {
            d.push(std::slice::from_ref(byte));
        }
        assert_eq!(d.poll(), Some(Ok(a)));
        assert_eq!(d.poll(), Some(Ok(b)));
        assert_eq!(d.poll(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn decoder_errors() {
        let mut d = ControlDecoder::new();
        d.push(&[0, 0, 0, 2, b'{', b'x']);
        d.push(&[0, 0, 0, 2, b'{', b'}']);
        d.push(&[0, 0, 0, 19]);
        d.push(br#"{"type":"teleport"}"#);
        assert!(matches!(
            d.poll(),
            Some(Err(WireError::InvalidControl {
                kind: JsonErrorKind::Syntax,
                ..
            }))
        ));
        assert!(matches!(
            d.poll(),
            Some(Err(WireError::InvalidControl {
                kind: JsonErrorKind::Data,
                ..
            }))
        ));
        assert!(matches!(
            d.poll(),
            Some(Err(WireError::InvalidControl {
                kind: JsonErrorKind::Data,
                ..
            }))
        ));
        assert_eq!(d.poll(), None);
        d.push(&[0, 1, 0, 1]);
        assert_eq!(
            d.poll(),
            Some(Err(WireError::ControlTooLarge {
                len: 65537,
                max: MAX_CONTROL_LEN
            }))
        );
        assert!(d.is_failed());
        d.push(&[0, 0, 0, 2, b'{', b'}']);
        assert_eq!(d.poll(), None);
    }

    /// Found by fuzzing: a stats number beyond `f32` decoded to infinity, a report
    /// the encoder refuses and the media engine must not see.
    #[test]
    fn decode_rejects_stats_beyond_f32() {
        let mut d = ControlDecoder::new();
        for body in [
            &br#"{"type":"stats","jitterMs":1.7976931348623157e308,"lossPct":0.5,"rttMs":40.0}"#[..],
            br#"{"type":"stats","jitterMs":1,"lossPct":-1e39,"rttMs":0}"#,
            br#"{"type":"stats","jitterMs":3.4e38,"lossPct":0,"rttMs":0}"#,
        ] {
            d.push(&(body.len() as u32).to_be_bytes());
            d.push(body);
        }
        let invalid = WireError::InvalidControl {
            kind: JsonErrorKind::Data,
            line: 0,
            column: 0,
        };
        assert_eq!(d.poll(), Some(Err(invalid)));
        assert_eq!(d.poll(), Some(Err(invalid)));
        // The largest finite f32 still decodes, and the decoder goes on after a refusal.
        assert!(matches!(d.poll(), Some(Ok(ControlMessage::Stats(s))) if s.is_finite()));
    }

    #[test]
    fn encode_rejects_nan_and_huge() {
        let m = ControlMessage::Stats(StatsReport {
            jitter_ms: f32::NAN,
            ..Default::default()
        });
        assert!(encode_control(&m).is_err());
        let m = ControlMessage::Leave(Leave {
            reason: "x".repeat(MAX_CONTROL_LEN),
        });
        let mut out = vec![9];
        assert!(matches!(
            encode_control_into(&m, &mut out),
            Err(WireError::ControlTooLarge { .. })
        ));
        assert_eq!(out, vec![9]);
    }
}
