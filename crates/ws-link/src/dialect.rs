//! The three platforms' message formats, sans-IO: [`StreamParser`] reads what a
//! platform sends (text JSON or binary audio) into [`Inbound`] items, and
//! [`OutboundEncoder`] writes this side's audio in the platform's format.
//!
//! | dialect | start | audio in | DTMF in | audio out | flush out |
//! |---|---|---|---|---|---|
//! | ACS | `AudioMetadata` (encoding `PCM`, 16 or 24 kHz, mono) | `AudioData.data` base64 PCM16LE, ISO 8601 `timestamp` | `DtmfData.data` | `{"Kind":"AudioData","AudioData":{"Data":..},"StopAudio":null}` | `{"Kind":"StopAudio",..}` |
//! | Twilio | `connected`, then `start` (`audio/x-mulaw`, 8000 Hz, 1 ch) | `media.payload` base64 µ-law, `timestamp` ms | `dtmf.digit` | `media` with `streamSid` | `clear` |
//! | Vonage | text `websocket:connected` (`content-type: audio/l16;rate=16000`) | binary 640-byte L16 16 kHz frames | `websocket:dtmf` | binary 640-byte frames | `{"action":"clear"}` |
//!
//! Everything the parser refuses is a [`ProtocolError`]: the WebSocket close code to
//! send (1003, 1007, 1008) and a bounded, escaped detail naming what was wrong.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use media_blob::excerpt;
use media_core::call::AudioStreams;
use media_core::control::DtmfTone;
use serde::Deserialize;

/// Close code: the message's data is invalid for its type (RFC 6455 §7.4.1).
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code: the message violates the protocol's rules (order, fields).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code: a kind of message this endpoint does not take (binary on a JSON
/// dialect).
pub const CLOSE_UNSUPPORTED: u16 = 1003;
/// Close code: a message larger than the endpoint takes.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Most audio one message may carry: one second (platforms send 20 ms).
pub const MAX_CHUNK_MS: u32 = 1000;
/// Longest participant id taken (ACS `participantRawID`, such as
/// `8:acs:<resource>_<guid>`), bytes.
pub const MAX_PARTICIPANT_ID: usize = 256;
/// Bytes of one Vonage L16 16 kHz frame (20 ms).
pub const VONAGE_FRAME_BYTES: usize = 640;

/// Which platform's media WebSocket protocol a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Azure Communication Services audio streaming.
    Acs,
    /// Twilio Media Streams.
    Twilio,
    /// Vonage Voice API WebSockets.
    Vonage,
}

impl Dialect {
    /// All dialects.
    pub const ALL: [Dialect; 3] = [Dialect::Acs, Dialect::Twilio, Dialect::Vonage];

    /// The endpoint path serving this dialect (`/acs`, `/twilio`, `/vonage`).
    pub fn path(self) -> &'static str {
        match self {
            Dialect::Acs => "/acs",
            Dialect::Twilio => "/twilio",
            Dialect::Vonage => "/vonage",
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        &self.path()[1..]
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "acs" => Ok(Dialect::Acs),
            "twilio" => Ok(Dialect::Twilio),
            "vonage" => Ok(Dialect::Vonage),
            other => Err(format!(
                "unknown dialect {} (expected acs, twilio or vonage)",
                excerpt(other)
            )),
        }
    }
}

/// How a stream's audio is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Signed 16-bit little-endian PCM, mono, at this rate (16 000 or 24 000).
    Pcm16 {
        /// Samples per second.
        rate: u32,
    },
    /// G.711 µ-law, 8 kHz mono.
    MuLaw8k,
}

impl Encoding {
    /// Samples per second.
    pub fn rate(self) -> u32 {
        match self {
            Encoding::Pcm16 { rate } => rate,
            Encoding::MuLaw8k => 8_000,
        }
    }

    /// Bytes per sample.
    pub fn sample_bytes(self) -> usize {
        match self {
            Encoding::Pcm16 { .. } => 2,
            Encoding::MuLaw8k => 1,
        }
    }
}

/// What a stream said when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The dialect.
    pub dialect: Dialect,
    /// The platform's id of the stream (ACS `subscriptionId`, Twilio `streamSid`,
    /// Vonage: none, empty).
    pub stream_id: String,
    /// The platform's id of the call, if it says (Twilio `callSid`).
    pub call_id: Option<String>,
    /// The audio encoding, both directions.
    pub encoding: Encoding,
    /// The received audio the stream's call runs: the mix only, except an ACS stream
    /// on an endpoint configured for unmixed audio ([`crate::WsConfig::acs_audio`]),
    /// whose chunks naming a `participantRawID` are that participant's own stream.
    pub audio: AudioStreams,
}

/// One item of what a platform sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// The stream started (the call may begin).
    Start(StreamInfo),
    /// A piece of audio in the stream's encoding.
    Audio(AudioChunk<'a>),
    /// A DTMF key.
    Dtmf {
        /// The tone.
        tone: DtmfTone,
        /// Its duration in ms, where the platform says (0 otherwise).
        duration_ms: u32,
    },
    /// The platform played this side's audio up to the mark of this name (Twilio).
    Mark(String),
    /// The platform ends the stream.
    Stop,
    /// A message with nothing for the call (`connected`, unknown kinds, a participant's
    /// silent frame); the text says which.
    Ignored(&'static str),
}

/// A piece of audio as the platform sent it.
#[derive(Debug, PartialEq, Eq)]
pub struct AudioChunk<'a> {
    /// The bytes in the stream's [`Encoding`] (decoded from base64 where the dialect
    /// uses it; a whole number of samples).
    pub bytes: &'a [u8],
    /// Position of the first sample on the platform's clock, ms (Twilio
    /// `media.timestamp`, ACS `timestamp` since the epoch; Vonage: none).
    pub timestamp_ms: Option<u64>,
    /// The platform marked the chunk silent (ACS `silent`).
    pub silent: bool,
    /// Whose audio this is, where the platform says (ACS `participantRawID`; absent
    /// or empty: none). Only an unmixed stream ([`StreamInfo::audio`]) reads it.
    pub participant: Option<&'a str>,
}

/// Why a message was refused; the stream is closed with `code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail} (close code {code})")]
pub struct ProtocolError {
    /// The WebSocket close code to send.
    pub code: u16,
    /// What was wrong (bounded, escaped where it quotes input).
    pub detail: String,
}

impl ProtocolError {
    /// An error with close code `code`.
    pub fn new(code: u16, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    fn invalid(detail: impl Into<String>) -> Self {
        Self::new(CLOSE_INVALID_PAYLOAD, detail)
    }

    fn policy(detail: impl Into<String>) -> Self {
        Self::new(CLOSE_POLICY, detail)
    }
}

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing but the start message (and Twilio's `connected`) is taken.
    Start,
    /// Audio, DTMF, marks, stop.
    Media,
    /// The platform said stop: nothing more.
    Nothing,
}

/// Reads one stream's messages (see the [module documentation](self)).
#[derive(Debug)]
pub struct StreamParser {
    dialect: Dialect,
    expect: Expect,
    encoding: Option<Encoding>,
    /// Decoded audio of the last message (reused).
    audio: Vec<u8>,
    /// The participant of the last audio message (ACS `participantRawID`; reused).
    participant: String,
}

impl StreamParser {
    /// A parser for a new stream of `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            expect: Expect::Start,
            encoding: None,
            audio: Vec::with_capacity(2048),
            participant: String::with_capacity(MAX_PARTICIPANT_ID),
        }
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Reads a text message.
    pub fn handle_text(&mut self, text: &str) -> Result<Inbound<'_>, ProtocolError> {
        if self.expect == Expect::Nothing {
            return Err(ProtocolError::policy("a message after the stream stopped"));
        }
        match self.dialect {
            Dialect::Acs => self.acs_text(text),
            Dialect::Twilio => self.twilio_text(text),
            Dialect::Vonage => self.vonage_text(text),
        }
    }

    /// Reads a binary message.
    pub fn handle_binary(&mut self, data: &[u8]) -> Result<Inbound<'_>, ProtocolError> {
        if self.expect == Expect::Nothing {
            return Err(ProtocolError::policy("a message after the stream stopped"));
        }
        if self.dialect != Dialect::Vonage {
            return Err(ProtocolError::new(
                CLOSE_UNSUPPORTED,
                format!(
                    "a binary message of {} bytes: {} sends JSON text messages only",
                    data.len(),
                    self.dialect
                ),
            ));
        }
        if self.expect == Expect::Start {
            return Err(ProtocolError::policy(
                "audio before the websocket:connected message",
            ));
        }
        if data.len() != VONAGE_FRAME_BYTES {
            return Err(ProtocolError::invalid(format!(
                "a binary message of {} bytes: Vonage L16 16 kHz frames are {VONAGE_FRAME_BYTES} bytes (20 ms)",
                data.len()
            )));
        }
        self.audio.clear();
        self.audio.extend_from_slice(data);
        Ok(Inbound::Audio(AudioChunk {
            bytes: &self.audio,
            timestamp_ms: None,
            silent: false,
            participant: None,
        }))
    }

    fn started(&mut self, info: StreamInfo) -> Result<Inbound<'_>, ProtocolError> {
        if self.expect != Expect::Start {
            return Err(ProtocolError::policy("a second start message"));
        }
        self.expect = Expect::Media;
        self.encoding = Some(info.encoding);
        Ok(Inbound::Start(info))
    }

    fn media_allowed(&self, what: &str) -> Result<Encoding, ProtocolError> {
        match (self.expect, self.encoding) {
            (Expect::Media, Some(e)) => Ok(e),
            _ => Err(ProtocolError::policy(format!(
                "{what} before the stream's start message"
            ))),
        }
    }

    /// Decodes base64 audio into `self.audio`, checking it is whole samples of at
    /// most [`MAX_CHUNK_MS`].
    fn decode_audio(&mut self, encoding: Encoding, b64: &str) -> Result<(), ProtocolError> {
        let max = (encoding.rate() * MAX_CHUNK_MS / 1000) as usize * encoding.sample_bytes();
        // 4 base64 characters carry 3 bytes.
        if b64.len() / 4 * 3 > max + 3 {
            return Err(ProtocolError::invalid(format!(
                "audio of about {} bytes in one message; at most {max} ({MAX_CHUNK_MS} ms) are taken",
                b64.len() / 4 * 3
            )));
        }
        self.audio.clear();
        BASE64
            .decode_vec(b64, &mut self.audio)
            .map_err(|e| ProtocolError::invalid(format!("audio data is not valid base64: {e}")))?;
        if !self.audio.len().is_multiple_of(encoding.sample_bytes()) {
            return Err(ProtocolError::invalid(format!(
                "audio of {} bytes is not a whole number of 16-bit samples",
                self.audio.len()
            )));
        }
        Ok(())
    }

    fn acs_text(&mut self, text: &str) -> Result<Inbound<'_>, ProtocolError> {
        let msg: AcsMessage<'_> = parse_json(text)?;
        match msg.kind.as_ref() {
            "AudioMetadata" => {
                let m = msg
                    .audio_metadata
                    .ok_or_else(|| ProtocolError::invalid("AudioMetadata without audioMetadata"))?;
                if !m.encoding.eq_ignore_ascii_case("PCM") {
                    return Err(ProtocolError::invalid(format!(
                        "audioMetadata.encoding {}: only PCM is supported",
                        excerpt(&m.encoding)
                    )));
                }
                if m.sample_rate != 16_000 && m.sample_rate != 24_000 {
                    return Err(ProtocolError::invalid(format!(
                        "audioMetadata.sampleRate {}: ACS streams 16000 or 24000",
                        m.sample_rate
                    )));
                }
                if m.channels != 1 {
                    return Err(ProtocolError::invalid(format!(
                        "audioMetadata.channels {}: only mono is supported",
                        m.channels
                    )));
                }
                self.started(StreamInfo {
                    dialect: Dialect::Acs,
                    stream_id: m.subscription_id.into_owned(),
                    call_id: None,
                    encoding: Encoding::Pcm16 {
                        rate: m.sample_rate,
                    },
                    audio: AudioStreams::MIXED,
                })
            }
            "AudioData" => {
                let encoding = self.media_allowed("AudioData")?;
                let d = msg
                    .audio_data
                    .ok_or_else(|| ProtocolError::invalid("AudioData without audioData"))?;
                let timestamp_ms = match &d.timestamp {
                    Some(t) => Some(parse_iso8601_ms(t)?),
                    None => None,
                };
                self.decode_audio(encoding, &d.data)?;
                self.participant.clear();
                if let Some(id) = &d.participant_raw_id {
                    if id.len() > MAX_PARTICIPANT_ID {
                        return Err(ProtocolError::invalid(format!(
                            "audioData.participantRawID of {} bytes; at most {MAX_PARTICIPANT_ID} are taken",
                            id.len()
                        )));
                    }
                    self.participant.push_str(id);
                }
                Ok(Inbound::Audio(AudioChunk {
                    bytes: &self.audio,
                    timestamp_ms,
                    silent: d.silent,
                    participant: (!self.participant.is_empty()).then_some(&self.participant),
                }))
            }
            "DtmfData" => {
                self.media_allowed("DtmfData")?;
                let d = msg
                    .dtmf_data
                    .ok_or_else(|| ProtocolError::invalid("DtmfData without dtmfData"))?;
                Ok(Inbound::Dtmf {
                    tone: parse_tone(&d.data)?,
                    duration_ms: 0,
                })
            }
            _ => Ok(Inbound::Ignored("an ACS message of another kind")),
        }
    }

    fn twilio_text(&mut self, text: &str) -> Result<Inbound<'_>, ProtocolError> {
        let msg: TwilioMessage<'_> = parse_json(text)?;
        match msg.event.as_ref() {
            "connected" => {
                if self.expect != Expect::Start {
                    return Err(ProtocolError::policy("connected after start"));
                }
                Ok(Inbound::Ignored("connected"))
            }
            "start" => {
                let s = msg
                    .start
                    .ok_or_else(|| ProtocolError::invalid("start without start"))?;
                let f = &s.media_format;
                if !f.encoding.eq_ignore_ascii_case("audio/x-mulaw")
                    || f.sample_rate != 8000
                    || f.channels != 1
                {
                    return Err(ProtocolError::invalid(format!(
                        "start.mediaFormat {} at {} Hz, {} channels: only audio/x-mulaw, 8000 Hz, mono",
                        excerpt(&f.encoding),
                        f.sample_rate,
                        f.channels
                    )));
                }
                let stream_id = s
                    .stream_sid
                    .or(msg.stream_sid)
                    .ok_or_else(|| ProtocolError::invalid("start without streamSid"))?;
                self.started(StreamInfo {
                    dialect: Dialect::Twilio,
                    stream_id: stream_id.into_owned(),
                    call_id: s.call_sid.map(Cow::into_owned),
                    encoding: Encoding::MuLaw8k,
                    audio: AudioStreams::MIXED,
                })
            }
            "media" => {
                let encoding = self.media_allowed("media")?;
                let m = msg
                    .media
                    .ok_or_else(|| ProtocolError::invalid("media without media"))?;
                if m.track.as_deref().is_some_and(|t| t == "outbound") {
                    return Ok(Inbound::Ignored("media of the outbound track"));
                }
                let timestamp_ms = match &m.timestamp {
                    Some(t) => Some(parse_number(t, "media.timestamp")?),
                    None => None,
                };
                self.decode_audio(encoding, &m.payload)?;
                Ok(Inbound::Audio(AudioChunk {
                    bytes: &self.audio,
                    timestamp_ms,
                    silent: false,
                    participant: None,
                }))
            }
            "dtmf" => {
                self.media_allowed("dtmf")?;
                let d = msg
                    .dtmf
                    .ok_or_else(|| ProtocolError::invalid("dtmf without dtmf"))?;
                Ok(Inbound::Dtmf {
                    tone: parse_tone(&d.digit)?,
                    duration_ms: 0,
                })
            }
            "mark" => {
                self.media_allowed("mark")?;
                let m = msg
                    .mark
                    .ok_or_else(|| ProtocolError::invalid("mark without mark"))?;
                Ok(Inbound::Mark(m.name.into_owned()))
            }
            "stop" => {
                self.expect = Expect::Nothing;
                Ok(Inbound::Stop)
            }
            _ => Ok(Inbound::Ignored("a Twilio event of another kind")),
        }
    }

    fn vonage_text(&mut self, text: &str) -> Result<Inbound<'_>, ProtocolError> {
        let msg: VonageMessage<'_> = parse_json(text)?;
        match msg.event.as_deref() {
            Some("websocket:connected") => {
                let ct = msg.content_type.as_deref().unwrap_or_default();
                let normalized: String = ct
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if normalized != "audio/l16;rate=16000" {
                    return Err(ProtocolError::invalid(format!(
                        "content-type {}: only audio/l16;rate=16000 is supported",
                        excerpt(ct)
                    )));
                }
                self.started(StreamInfo {
                    dialect: Dialect::Vonage,
                    stream_id: String::new(),
                    call_id: None,
                    encoding: Encoding::Pcm16 { rate: 16_000 },
                    audio: AudioStreams::MIXED,
                })
            }
            Some("websocket:dtmf") => {
                self.media_allowed("websocket:dtmf")?;
                let digit = msg
                    .digit
                    .ok_or_else(|| ProtocolError::invalid("websocket:dtmf without digit"))?;
                Ok(Inbound::Dtmf {
                    tone: parse_tone(&digit)?,
                    duration_ms: msg.duration.unwrap_or(0),
                })
            }
            _ => Ok(Inbound::Ignored("a Vonage text message of another kind")),
        }
    }
}

/// Parses JSON, refusing what serde refuses with a bounded, escaped message.
fn parse_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, ProtocolError> {
    serde_json::from_str(text).map_err(|e| {
        ProtocolError::invalid(format!(
            "not a message of this dialect: {}",
            media_blob::bounded(&e.to_string(), 200)
        ))
    })
}

fn parse_tone(s: &str) -> Result<DtmfTone, ProtocolError> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => DtmfTone::from_char(c),
        _ => None,
    }
    .ok_or_else(|| {
        ProtocolError::invalid(format!("DTMF {} is not one of 0-9, *, #, A-D", excerpt(s)))
    })
}

/// A number the platform sends as a string (Twilio) or a number.
fn parse_number(v: &StrOrNum<'_>, field: &str) -> Result<u64, ProtocolError> {
    match v {
        StrOrNum::Num(n) => Ok(*n),
        StrOrNum::Str(s) => s
            .parse()
            .map_err(|_| ProtocolError::invalid(format!("{field} {} is not a number", excerpt(s)))),
    }
}

/// ISO 8601 / RFC 3339 time to ms since the epoch (ACS timestamps).
fn parse_iso8601_ms(s: &str) -> Result<u64, ProtocolError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            ProtocolError::invalid(format!(
                "timestamp {} is not an ISO 8601 time: {e}",
                excerpt(s)
            ))
        })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ProtocolError::invalid(format!("timestamp {} is before 1970", excerpt(s))))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StrOrNum<'a> {
    Num(u64),
    Str(#[serde(borrow)] Cow<'a, str>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcsMessage<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    audio_metadata: Option<AcsMetadata<'a>>,
    #[serde(borrow, default)]
    audio_data: Option<AcsAudio<'a>>,
    #[serde(borrow, default)]
    dtmf_data: Option<AcsDtmf<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcsMetadata<'a> {
    #[serde(borrow, default)]
    subscription_id: Cow<'a, str>,
    #[serde(borrow)]
    encoding: Cow<'a, str>,
    sample_rate: u32,
    channels: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcsAudio<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default)]
    silent: bool,
    #[serde(rename = "participantRawID", borrow, default)]
    participant_raw_id: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct AcsDtmf<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TwilioMessage<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    start: Option<TwilioStart<'a>>,
    #[serde(borrow, default)]
    media: Option<TwilioMedia<'a>>,
    #[serde(borrow, default)]
    dtmf: Option<TwilioDtmf<'a>>,
    #[serde(borrow, default)]
    mark: Option<TwilioMark<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TwilioStart<'a> {
    #[serde(borrow, default)]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    call_sid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    media_format: TwilioFormat<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TwilioFormat<'a> {
    #[serde(borrow)]
    encoding: Cow<'a, str>,
    sample_rate: u32,
    channels: u32,
}

#[derive(Debug, Deserialize)]
struct TwilioMedia<'a> {
    #[serde(borrow, default)]
    track: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<StrOrNum<'a>>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct TwilioDtmf<'a> {
    #[serde(borrow)]
    digit: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct TwilioMark<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct VonageMessage<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "content-type")]
    content_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    digit: Option<Cow<'a, str>>,
    #[serde(default)]
    duration: Option<u32>,
}

/// What this side sends to a platform (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A JSON text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// Writes this side's messages in a stream's dialect.
#[derive(Debug, Clone)]
pub struct OutboundEncoder {
    dialect: Dialect,
    /// The stream id, JSON-escaped with its quotes (Twilio's `streamSid`).
    stream_sid_json: String,
}

impl OutboundEncoder {
    /// An encoder for the stream `info` describes.
    pub fn new(info: &StreamInfo) -> Self {
        Self {
            dialect: info.dialect,
            stream_sid_json: serde_json::Value::from(info.stream_id.as_str()).to_string(),
        }
    }

    /// One piece of audio, already in the stream's encoding.
    pub fn audio(&self, bytes: &[u8]) -> Outbound {
        match self.dialect {
            Dialect::Acs => Outbound::Text(format!(
                r#"{{"Kind":"AudioData","AudioData":{{"Data":"{}"}},"StopAudio":null}}"#,
                BASE64.encode(bytes)
            )),
            Dialect::Twilio => Outbound::Text(format!(
                r#"{{"event":"media","streamSid":{},"media":{{"payload":"{}"}}}}"#,
                self.stream_sid_json,
                BASE64.encode(bytes)
            )),
            Dialect::Vonage => Outbound::Binary(bytes.to_vec()),
        }
    }

    /// Tells the platform to drop the audio it has buffered but not played (ACS
    /// `StopAudio`, Twilio `clear`, Vonage `{"action":"clear"}`).
    pub fn clear(&self) -> Outbound {
        Outbound::Text(match self.dialect {
            Dialect::Acs => r#"{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}"#.to_owned(),
            Dialect::Twilio => format!(
                r#"{{"event":"clear","streamSid":{}}}"#,
                self.stream_sid_json
            ),
            Dialect::Vonage => r#"{"action":"clear"}"#.to_owned(),
        })
    }

    /// A Twilio mark: the platform sends it back once the audio before it played
    /// (`None` for dialects without marks).
    pub fn mark(&self, name: &str) -> Option<Outbound> {
        (self.dialect == Dialect::Twilio).then(|| {
            Outbound::Text(format!(
                r#"{{"event":"mark","streamSid":{},"mark":{{"name":{}}}}}"#,
                self.stream_sid_json,
                serde_json::Value::from(name)
            ))
        })
    }
}

#[cfg(test)]
#[path = "dialect_tests.rs"]
mod tests;
