//! Outbound: a call forwarded to an external bot that speaks a platform's dialect.
//!
//! Bots written for Twilio Media Streams, ACS audio streaming or Vonage WebSockets
//! (Pipecat's serializers, the vendors' samples) expect the *platform* to connect to
//! them. [`forward`] plays that platform for any call of the engine (QUIC, WebRTC or
//! a platform WebSocket): it connects to the bot's URL, says the stream started,
//! sends the call's received frames (after the engine's jitter buffer) and DTMF in
//! the bot's dialect, and plays what the bot sends back into the call through the
//! engine's paced send queue. The bot needs no pacing or jitter buffer of its own:
//! it may send its audio in bursts, faster than real time; a backlog here feeds the
//! call's send queue as it drains, 50 frames a second.
//!
//! ```text
//!  call (any link) ─ jitter buffer ─> AudioSocket frames ─> BotSession::frame ──> media / AudioData / binary ──> bot
//!                                     ToneReceived ───────> BotSession::dtmf ───> dtmf / DtmfData / websocket:dtmf
//!  call <─ pacer 50/s <─ send queue <─ BotSession::fill <─ backlog <─ handle_text/binary <── media / AudioData / binary
//!                        clear()  <──────────────────────────────────────────────────────── clear / StopAudio / {"action":"clear"}
//!                                     marks, echoed when their audio has left the queue ── mark (Twilio)
//! ```
//!
//! The dialect's semantics, as the platforms document them:
//! - **clear** (Twilio `clear`, ACS `StopAudio`, Vonage `{"action":"clear"}`): the
//!   audio not yet played is dropped at once (the backlog, the partial frame and the
//!   call's send queue; counted). If the call came from a platform WebSocket, that
//!   platform is told to drop what it buffered too ([`crate::Playback::clear`]).
//! - **mark** (Twilio): echoed to the bot once the audio the bot sent before it has
//!   left the send queue (been sent into the call), or at once when a clear drops it.
//!
//! [`BotSession`] is the sans-IO core (messages in and out, the backlog, the marks);
//! [`forward`] is its tokio driver.
//!
//! # TLS
//! A `wss://` bot is reached over TLS (rustls with the *ring* provider, TLS 1.2 and
//! 1.3): its certificate must chain to the Mozilla roots (`webpki-roots`) and name the
//! URL's host, or chain to the authorities of [`BotLinkConfig::trust_ca_file`] (a
//! private CA or a self-signed bot) instead.
//!
//! # Realtime safety
//! The bot's messages are decoded on the driver's task; the call's tick only reads
//! the send queue. Building each message for the bot allocates it.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use media_blob::excerpt;
use media_core::codec::Codec;
use media_core::control::DtmfTone;
use media_core::frame::Pcm16kFrame;
use media_core::packet::AudioPacket;
use media_core::resample::ResamplerSetupError;
use platform::{AudioEvent, AudioSender, AudioSocket, CallState};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::dialect::{
    CLOSE_INVALID_PAYLOAD, CLOSE_UNSUPPORTED, Dialect, Encoding, Outbound, ProtocolError,
};
use crate::link::{CLOSE_NORMAL, WriteItem, close_reason};
use crate::media::{OutboundAudio, WireToFrames};
use crate::playback::Playback;

/// Most audio one message from the bot may carry: 10 s (a TTS sentence at once).
pub const MAX_BOT_CHUNK_MS: u32 = 10_000;

/// How a call is forwarded to an external bot.
#[derive(Debug, Clone)]
pub struct BotLinkConfig {
    /// The bot's WebSocket URL (`ws://host:port/path`, or `wss://` over TLS).
    pub url: String,
    /// The dialect the bot speaks.
    pub dialect: Dialect,
    /// ACS only: the stream's sample rate, 16 000 (default) or 24 000.
    pub acs_rate: u32,
    /// Credentials for the bot's handshake: Twilio signs the URL with it
    /// (`X-Twilio-Signature`, as Twilio signs with the account's auth token); ACS and
    /// Vonage send it as `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Time to connect and finish the handshake. Default 5 s.
    pub connect_timeout: Duration,
    /// Largest message taken from the bot, bytes. Default 4 MiB.
    pub max_message_bytes: usize,
    /// Most audio held for the call beyond its send queue (a bot sending faster than
    /// real time); more is dropped and counted. Default 120 s.
    pub max_backlog: Duration,
    /// `wss://` only: the authorities the bot's certificate must chain to; `None`
    /// (default): the Mozilla roots of `webpki-roots`. Set from a PEM file with
    /// [`trust_ca_file`](Self::trust_ca_file).
    pub tls_roots: Option<Arc<rustls::RootCertStore>>,
}

impl BotLinkConfig {
    /// Forwarding to the bot at `url` speaking `dialect`, with the defaults.
    pub fn new(url: impl Into<String>, dialect: Dialect) -> Self {
        Self {
            url: url.into(),
            dialect,
            acs_rate: 16_000,
            auth_token: None,
            connect_timeout: Duration::from_secs(5),
            max_message_bytes: 4 << 20,
            max_backlog: Duration::from_secs(120),
            tls_roots: None,
        }
    }

    /// Trusts (for a `wss://` bot) the certificates of the PEM file at `path`, and only
    /// those: a private CA, or the bot's own self-signed certificate. The error names
    /// the file and what is wrong with it (unreadable, no certificate, a bad one).
    pub fn trust_ca_file(&mut self, path: &Path) -> Result<(), BotLinkError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let at = path.display();
        let bad = |what: String| BotLinkError::Config(format!("CA file {at}: {what}"));
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let cert =
                cert.map_err(|e| bad(format!("certificate {} is not valid PEM: {e}", i + 1)))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("certificate {} is not usable: {e}", i + 1)))?;
        }
        if roots.is_empty() {
            return Err(bad(
                "no certificate in it (expected PEM `BEGIN CERTIFICATE` blocks)".into(),
            ));
        }
        self.tls_roots = Some(Arc::new(roots));
        Ok(())
    }

    /// The TLS client configuration of a `wss://` bot (see the [module
    /// documentation](self#tls)).
    fn tls_client(&self) -> Result<Arc<rustls::ClientConfig>, BotLinkError> {
        let roots = match &self.tls_roots {
            Some(roots) => roots.clone(),
            None => Arc::new(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| BotLinkError::Config(format!("TLS client: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// Checks the URL and the settings; the error names the field at fault.
    pub fn validate(&self) -> Result<(), BotLinkError> {
        let bad = |what: String| Err(BotLinkError::Config(what));
        if !self.url.starts_with("ws://") && !self.url.starts_with("wss://") {
            return bad(format!(
                "bot URL {}: expected ws://host:port/path or wss://host:port/path",
                excerpt(&self.url)
            ));
        }
        if let Err(e) = self.url.as_str().into_client_request() {
            return bad(format!("bot URL {}: {e}", excerpt(&self.url)));
        }
        if self.dialect == Dialect::Acs && self.acs_rate != 16_000 && self.acs_rate != 24_000 {
            return bad(format!(
                "ACS sample rate {}: ACS streams 16000 or 24000",
                self.acs_rate
            ));
        }
        if self.max_message_bytes < 4096 {
            return bad(format!(
                "max_message_bytes {}: at least 4096",
                self.max_message_bytes
            ));
        }
        Ok(())
    }

    /// The wire encoding of the bot's stream.
    pub fn encoding(&self) -> Encoding {
        match self.dialect {
            Dialect::Twilio => Encoding::MuLaw8k,
            Dialect::Acs => Encoding::Pcm16 {
                rate: self.acs_rate,
            },
            Dialect::Vonage => Encoding::Pcm16 { rate: 16_000 },
        }
    }
}

/// What the bot is told about the call when its stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotCallInfo {
    /// The stream's id (Twilio `streamSid`, ACS `subscriptionId`).
    pub stream_id: String,
    /// The call's id (Twilio `callSid`; ACS: the participant's raw id is derived from it).
    pub call_id: String,
    /// Twilio `accountSid`.
    pub account_id: String,
}

impl BotCallInfo {
    /// Ids in each platform's shape for the call `call_id` (Twilio: `MZ…`, `CA…`).
    pub fn for_call(call_id: uuid::Uuid) -> Self {
        let hex = call_id.simple().to_string();
        Self {
            stream_id: format!("MZ{hex}"),
            call_id: format!("CA{hex}"),
            account_id: format!("AC{}", "0".repeat(32)),
        }
    }
}

/// Why forwarding failed or ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BotLinkError {
    /// The configuration is unusable (this side's fault): which setting, and why.
    #[error("bot link configuration: {0}")]
    Config(String),
    /// The bot could not be reached or refused the handshake.
    #[error("cannot connect to the bot at {url}: {detail}")]
    Connect {
        /// The bot's URL.
        url: String,
        /// What happened (an HTTP status and body excerpt, a socket error).
        detail: String,
    },
    /// The bot sent something its dialect does not allow; the stream was closed with
    /// the code.
    #[error("the bot broke the {dialect} protocol: {error}")]
    Protocol {
        /// The dialect.
        dialect: Dialect,
        /// What, and the close code sent.
        error: ProtocolError,
    },
    /// The call's audio socket cannot be forwarded (its frames go elsewhere).
    #[error("the call cannot be forwarded: {0}")]
    Socket(&'static str),
}

/// What a message from the bot asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotCommand {
    /// Audio: this many whole 20 ms frames were added to the backlog.
    Audio {
        /// Frames added.
        frames: usize,
    },
    /// Drop the audio not yet played.
    Clear,
    /// Echo this mark once the audio before it has played.
    Mark(String),
    /// Nothing for the call; the text says what it was.
    Ignored(&'static str),
}

/// Counters of one forwarded call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BotLinkStats {
    /// Frames of the call sent to the bot.
    pub frames_to_bot: u64,
    /// Frames the writer could not queue (the bot does not read); dropped.
    pub frames_to_bot_dropped: u64,
    /// DTMF tones sent to the bot.
    pub dtmf_to_bot: u64,
    /// Messages received from the bot.
    pub messages_from_bot: u64,
    /// 20 ms frames of the bot's audio made.
    pub frames_from_bot: u64,
    /// Frames moved into the call's send queue.
    pub frames_queued: u64,
    /// Frames of the bot's audio dropped: the backlog was full.
    pub backlog_dropped: u64,
    /// Clears the bot asked for.
    pub clears: u64,
    /// Frames a clear dropped (backlog and send queue).
    pub frames_cleared: u64,
    /// Marks echoed to the bot.
    pub marks_echoed: u64,
}

/// One forwarded call in a dialect, sans-IO (see the [module documentation](self)).
pub struct BotSession {
    dialect: Dialect,
    encoding: Encoding,
    info: BotCallInfo,
    /// JSON-quoted stream id, call id, account id and participant id.
    sid_json: String,
    call_json: String,
    account_json: String,
    participant_json: String,
    seq: u64,
    chunk: u64,
    out_audio: OutboundAudio,
    wire: WireToFrames,
    backlog: VecDeque<Pcm16kFrame>,
    max_backlog: usize,
    /// Frames of the bot's audio since the last clear, made / moved into the queue.
    produced: u64,
    moved: u64,
    /// Marks waiting for their audio: (frames produced before the mark, name).
    marks: VecDeque<(u64, String)>,
    stats: BotLinkStats,
}

impl std::fmt::Debug for BotSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotSession")
            .field("dialect", &self.dialect)
            .field("info", &self.info)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

impl BotSession {
    /// The session of one call forwarded as `config` says.
    pub fn new(config: &BotLinkConfig, info: BotCallInfo) -> Result<Self, ResamplerSetupError> {
        let encoding = config.encoding();
        Ok(Self {
            dialect: config.dialect,
            encoding,
            sid_json: json_str(&info.stream_id),
            call_json: json_str(&info.call_id),
            account_json: json_str(&info.account_id),
            participant_json: json_str(&format!("8:media-processor:{}", info.call_id)),
            info,
            seq: 0,
            chunk: 0,
            out_audio: OutboundAudio::new(encoding)?,
            // The bot's audio is taken in pieces of up to 1 s.
            wire: WireToFrames::new(encoding, encoding.rate() as usize)?,
            backlog: VecDeque::new(),
            max_backlog: (config.max_backlog.as_millis() / 20).max(1) as usize,
            produced: 0,
            moved: 0,
            marks: VecDeque::new(),
            stats: BotLinkStats::default(),
        })
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The counters so far.
    pub fn stats(&self) -> BotLinkStats {
        self.stats
    }

    /// Frames of the bot's audio waiting beyond the call's send queue.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Marks waiting for their audio to play.
    pub fn pending_marks(&self) -> usize {
        self.marks.len()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The messages that start the stream (Twilio `connected` and `start`, ACS
    /// `AudioMetadata`, Vonage `websocket:connected`).
    pub fn start_messages(&mut self) -> Vec<Outbound> {
        match self.dialect {
            Dialect::Twilio => {
                let seq = self.next_seq();
                vec![
                    Outbound::Text(
                        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned(),
                    ),
                    Outbound::Text(format!(
                        r#"{{"event":"start","sequenceNumber":"{seq}","start":{{"accountSid":{},"streamSid":{},"callSid":{},"tracks":["inbound"],"customParameters":{{}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":{}}}"#,
                        self.account_json, self.sid_json, self.call_json, self.sid_json
                    )),
                ]
            }
            Dialect::Acs => {
                let rate = self.encoding.rate();
                vec![Outbound::Text(format!(
                    r#"{{"kind":"AudioMetadata","audioMetadata":{{"subscriptionId":{},"encoding":"PCM","sampleRate":{rate},"channels":1,"length":{}}}}}"#,
                    self.sid_json,
                    rate / 50 * 2
                ))]
            }
            Dialect::Vonage => vec![Outbound::Text(
                r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#
                    .to_owned(),
            )],
        }
    }

    /// One 20 ms frame the call received, as the dialect's audio message.
    pub fn frame(&mut self, frame: &Pcm16kFrame, silent: bool) -> Outbound {
        let packet = AudioPacket::new(0, 0, Codec::Pcm16k, &frame.to_le_bytes())
            .unwrap_or_else(|_| AudioPacket::empty(Codec::Pcm16k));
        let bytes = match self.out_audio.encode(&packet) {
            Ok(b) => b,
            // A 640-byte Pcm16k packet always encodes; an empty one is never made.
            Err(_) => &[],
        };
        self.stats.frames_to_bot += 1;
        let k = self.chunk;
        self.chunk += 1;
        match self.dialect {
            Dialect::Twilio => {
                let payload = BASE64.encode(bytes);
                let seq = self.next_seq();
                Outbound::Text(format!(
                    r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{payload}"}},"streamSid":{}}}"#,
                    k + 1,
                    k * 20,
                    self.sid_json
                ))
            }
            Dialect::Acs => {
                let payload = BASE64.encode(bytes);
                let ts = time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                Outbound::Text(format!(
                    r#"{{"kind":"AudioData","audioData":{{"timestamp":"{ts}","participantRawID":{},"data":"{payload}","silent":{silent}}}}}"#,
                    self.participant_json
                ))
            }
            Dialect::Vonage => Outbound::Binary(bytes.to_vec()),
        }
    }

    /// A DTMF key the call received, as the dialect's message (`None` for a hook
    /// flash, which no dialect carries).
    pub fn dtmf(&mut self, tone: DtmfTone, duration_ms: u32) -> Option<Outbound> {
        let key = match tone.event_code() {
            d @ 0..=9 => char::from(b'0' + d),
            10 => '*',
            11 => '#',
            l @ 12..=15 => char::from(b'A' + l - 12),
            _ => return None,
        };
        self.stats.dtmf_to_bot += 1;
        Some(Outbound::Text(match self.dialect {
            Dialect::Twilio => {
                let seq = self.next_seq();
                format!(
                    r#"{{"event":"dtmf","streamSid":{},"sequenceNumber":"{seq}","dtmf":{{"track":"inbound_track","digit":"{key}"}}}}"#,
                    self.sid_json
                )
            }
            Dialect::Acs => format!(r#"{{"kind":"DtmfData","dtmfData":{{"data":"{key}"}}}}"#),
            Dialect::Vonage => {
                format!(r#"{{"event":"websocket:dtmf","digit":"{key}","duration":{duration_ms}}}"#)
            }
        }))
    }

    /// The message that ends the stream (Twilio `stop`; the others just close).
    pub fn stop(&mut self) -> Option<Outbound> {
        (self.dialect == Dialect::Twilio).then(|| {
            let seq = self.next_seq();
            Outbound::Text(format!(
                r#"{{"event":"stop","sequenceNumber":"{seq}","streamSid":{},"stop":{{"accountSid":{},"callSid":{}}}}}"#,
                self.sid_json, self.account_json, self.call_json
            ))
        })
    }

    fn mark_echo(&mut self, name: &str) -> Outbound {
        self.stats.marks_echoed += 1;
        let seq = self.next_seq();
        Outbound::Text(format!(
            r#"{{"event":"mark","sequenceNumber":"{seq}","streamSid":{},"mark":{{"name":{}}}}}"#,
            self.sid_json,
            json_str(name)
        ))
    }

    /// Reads a text message of the bot.
    pub fn handle_text(&mut self, text: &str) -> Result<BotCommand, ProtocolError> {
        self.stats.messages_from_bot += 1;
        let invalid = |d: String| ProtocolError::new(CLOSE_INVALID_PAYLOAD, d);
        let parse_err = |e: serde_json::Error| {
            invalid(format!(
                "not a {} message: {}",
                self.dialect,
                media_blob::bounded(&e.to_string(), 200)
            ))
        };
        match self.dialect {
            Dialect::Twilio => {
                let m: TwilioBotMessage = serde_json::from_str(text).map_err(parse_err)?;
                match m.event.as_str() {
                    "media" => {
                        let payload = m
                            .media
                            .ok_or_else(|| invalid("media without media".into()))?
                            .payload;
                        self.audio_base64(&payload)
                    }
                    "mark" => {
                        let name = m
                            .mark
                            .ok_or_else(|| invalid("mark without mark".into()))?
                            .name;
                        self.add_mark(name)
                    }
                    "clear" => Ok(BotCommand::Clear),
                    _ => Ok(BotCommand::Ignored("a Twilio event of another kind")),
                }
            }
            Dialect::Acs => {
                let m: AcsBotMessage = serde_json::from_str(text).map_err(parse_err)?;
                // The .NET SDK writes `AudioData`/`StopAudio`, the JS SDK `audioData`/`stopAudio`.
                if m.kind.eq_ignore_ascii_case("AudioData") {
                    let data = m
                        .audio_data
                        .ok_or_else(|| invalid("AudioData without AudioData".into()))?
                        .data;
                    self.audio_base64(&data)
                } else if m.kind.eq_ignore_ascii_case("StopAudio") {
                    Ok(BotCommand::Clear)
                } else {
                    Ok(BotCommand::Ignored("an ACS message of another kind"))
                }
            }
            Dialect::Vonage => {
                let m: VonageBotMessage = serde_json::from_str(text).map_err(parse_err)?;
                match m.action.as_deref() {
                    Some("clear") => Ok(BotCommand::Clear),
                    _ => Ok(BotCommand::Ignored("a Vonage text message of another kind")),
                }
            }
        }
    }

    /// Reads a binary message of the bot (Vonage audio).
    pub fn handle_binary(&mut self, data: &[u8]) -> Result<BotCommand, ProtocolError> {
        self.stats.messages_from_bot += 1;
        if self.dialect != Dialect::Vonage {
            return Err(ProtocolError::new(
                CLOSE_UNSUPPORTED,
                format!(
                    "a binary message of {} bytes: a {} bot sends JSON text messages only",
                    data.len(),
                    self.dialect
                ),
            ));
        }
        self.audio_bytes(data)
    }

    fn audio_base64(&mut self, b64: &str) -> Result<BotCommand, ProtocolError> {
        let bytes = BASE64.decode(b64).map_err(|e| {
            ProtocolError::new(
                CLOSE_INVALID_PAYLOAD,
                format!("audio data is not valid base64: {e}"),
            )
        })?;
        self.audio_bytes(&bytes)
    }

    /// The bot's audio in the stream's encoding: decoded, resampled to 16 kHz, cut
    /// into 20 ms frames onto the backlog.
    fn audio_bytes(&mut self, bytes: &[u8]) -> Result<BotCommand, ProtocolError> {
        let sb = self.encoding.sample_bytes();
        if !bytes.len().is_multiple_of(sb) {
            return Err(ProtocolError::new(
                CLOSE_INVALID_PAYLOAD,
                format!(
                    "audio of {} bytes is not a whole number of 16-bit samples",
                    bytes.len()
                ),
            ));
        }
        let max = (self.encoding.rate() / 1000 * MAX_BOT_CHUNK_MS) as usize * sb;
        if bytes.len() > max {
            return Err(ProtocolError::new(
                CLOSE_INVALID_PAYLOAD,
                format!(
                    "audio of {} bytes in one message; at most {max} ({MAX_BOT_CHUNK_MS} ms) are taken",
                    bytes.len()
                ),
            ));
        }
        let before = self.stats.frames_from_bot;
        let Self {
            wire,
            backlog,
            max_backlog,
            produced,
            stats,
            ..
        } = self;
        for part in bytes.chunks(wire.max_bytes()) {
            wire.push(part, false, |frame| {
                stats.frames_from_bot += 1;
                if backlog.len() >= *max_backlog {
                    stats.backlog_dropped += 1;
                } else {
                    backlog.push_back(Pcm16kFrame::new(*frame));
                    *produced += 1;
                }
            })?;
        }
        Ok(BotCommand::Audio {
            frames: (self.stats.frames_from_bot - before) as usize,
        })
    }

    /// A mark after the audio so far: the partial frame is completed with silence so
    /// that all of it plays before the mark is echoed.
    fn add_mark(&mut self, name: String) -> Result<BotCommand, ProtocolError> {
        self.flush_partial();
        self.marks.push_back((self.produced, name.clone()));
        Ok(BotCommand::Mark(name))
    }

    /// Completes a partial frame with silence onto the backlog.
    fn flush_partial(&mut self) {
        let Self {
            wire,
            backlog,
            produced,
            stats,
            ..
        } = self;
        wire.flush(|frame| {
            stats.frames_from_bot += 1;
            backlog.push_back(Pcm16kFrame::new(*frame));
            *produced += 1;
        });
    }

    /// Moves backlog frames into the call's send queue while `push` takes them;
    /// returns how many moved.
    pub fn fill(&mut self, mut push: impl FnMut(&Pcm16kFrame) -> bool) -> usize {
        let mut n = 0;
        while let Some(f) = self.backlog.front() {
            if !push(f) {
                break;
            }
            self.backlog.pop_front();
            n += 1;
        }
        self.moved += n as u64;
        self.stats.frames_queued += n as u64;
        n
    }

    /// Moves backlog frames into `sender` (up to its capacity).
    pub fn fill_sender(&mut self, sender: &AudioSender) -> usize {
        let room = sender.capacity().saturating_sub(sender.queued());
        let mut left = room;
        self.fill(|f| {
            if left == 0 {
                return false;
            }
            left -= 1;
            sender.enqueue(f).is_ok()
        })
    }

    /// The marks whose audio has played, given the frames still in the call's send
    /// queue (`queued`): their echoes for the bot, in order.
    pub fn poll_marks(&mut self, queued: usize) -> Vec<Outbound> {
        let played = self.moved.saturating_sub(queued as u64);
        let mut out = Vec::new();
        while let Some((at, _)) = self.marks.front() {
            if *at > played {
                break;
            }
            if let Some((_, name)) = self.marks.pop_front()
                && self.dialect == Dialect::Twilio
            {
                out.push(self.mark_echo(&name));
            }
        }
        out
    }

    /// The bot cleared: the backlog and the partial frame are dropped (`from_queue`:
    /// frames the caller dropped from the send queue); every pending mark is echoed
    /// (Twilio returns the marks a clear drops).
    pub fn clear(&mut self, from_queue: usize) -> Vec<Outbound> {
        self.stats.clears += 1;
        self.stats.frames_cleared += (self.backlog.len() + from_queue) as u64;
        self.backlog.clear();
        self.wire.clear();
        self.produced = 0;
        self.moved = 0;
        let marks: Vec<String> = self.marks.drain(..).map(|(_, n)| n).collect();
        if self.dialect != Dialect::Twilio {
            return Vec::new();
        }
        marks.iter().map(|n| self.mark_echo(n)).collect()
    }
}

#[derive(Deserialize)]
struct TwilioBotMessage {
    event: String,
    #[serde(default)]
    media: Option<TwilioBotMedia>,
    #[serde(default)]
    mark: Option<TwilioBotMark>,
}

#[derive(Deserialize)]
struct TwilioBotMedia {
    payload: String,
}

#[derive(Deserialize)]
struct TwilioBotMark {
    name: String,
}

/// ACS's outbound data, as its SDKs write it: the .NET SDK's `Kind`, `AudioData.Data`,
/// kinds `AudioData`/`StopAudio`, and the JS SDK's camelCase (`kind`, `audioData.data`,
/// kinds `audioData`/`stopAudio`, from `createOutboundAudioData`/`createOutboundStopAudioData`).
#[derive(Deserialize)]
struct AcsBotMessage {
    #[serde(alias = "kind", rename = "Kind")]
    kind: String,
    #[serde(alias = "audioData", rename = "AudioData", default)]
    audio_data: Option<AcsBotAudio>,
}

#[derive(Deserialize)]
struct AcsBotAudio {
    #[serde(alias = "data", rename = "Data")]
    data: String,
}

#[derive(Deserialize)]
struct VonageBotMessage {
    #[serde(default)]
    action: Option<String>,
}

/// How a forwarded call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotLinkReport {
    /// The counters.
    pub stats: BotLinkStats,
    /// Who ended it: the call (`true`) or the bot.
    pub call_ended: bool,
}

/// Writer queue towards the bot; 5 s of frames.
const BOT_QUEUE: usize = 256;

/// Forwards the call of `socket` to the bot `config` names until the call or the
/// bot ends (see the [module documentation](self)). The socket must deliver frames
/// through its channel ([`platform::FrameDelivery::Channel`]); the bot is connected
/// once the call is. `playback`: the call's platform stream, if it came from one
/// (a bot's clear then clears the platform's buffer too). Dropping the socket at the
/// end hangs the call up.
pub async fn forward(
    mut socket: AudioSocket,
    info: BotCallInfo,
    config: BotLinkConfig,
    playback: Option<Playback>,
) -> Result<BotLinkReport, BotLinkError> {
    config.validate()?;
    let mut frames = socket.take_frames().ok_or(BotLinkError::Socket(
        "its frames are delivered by callback or already taken",
    ))?;
    let mut session =
        BotSession::new(&config, info).map_err(|e| BotLinkError::Config(e.to_string()))?;
    // Wait for the call (a QUIC session waits for its peer).
    let mut first_frame = None;
    while socket.state() == CallState::WaitingForPeer {
        tokio::select! {
            f = frames.recv() => match f {
                Some(f) => { first_frame = Some(f); break; }
                None => return Ok(BotLinkReport { stats: session.stats(), call_ended: true }),
            },
            e = socket.next_event() => match e {
                Some(AudioEvent::Ended { .. } | AudioEvent::MediaStreamFailure { .. }) | None => {
                    return Ok(BotLinkReport { stats: session.stats(), call_ended: true });
                }
                Some(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let ws = connect(&config).await?;
    let (sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::channel::<WriteItem>(BOT_QUEUE);
    let writer = tokio::spawn(write_loop(sink, rx));
    let send =
        |tx: &mpsc::Sender<WriteItem>, m: Outbound| tx.try_send(WriteItem::Message(m)).is_ok();
    for m in session.start_messages() {
        send(&tx, m);
    }
    if let Some(f) = first_frame {
        let m = session.frame(&f.samples, f.is_silence);
        send(&tx, m);
    }
    let sender = socket.sender();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dropped = 0u64;
    let result = loop {
        tokio::select! {
            f = frames.recv() => match f {
                Some(f) => {
                    let m = session.frame(&f.samples, f.is_silence);
                    if !send(&tx, m) {
                        dropped += 1;
                    }
                }
                None => break Ok(true),
            },
            e = socket.next_event() => match e {
                Some(AudioEvent::ToneReceived { tone, duration_ms }) => {
                    if let Some(m) = session.dtmf(tone, duration_ms) {
                        send(&tx, m);
                    }
                }
                Some(AudioEvent::Ended { .. } | AudioEvent::MediaStreamFailure { .. }) | None => {
                    break Ok(true);
                }
                Some(_) => {}
            },
            msg = stream.next() => {
                let parsed = match msg {
                    Some(Ok(Message::Text(t))) => session.handle_text(t.as_str()),
                    Some(Ok(Message::Binary(b))) => session.handle_binary(&b),
                    Some(Ok(Message::Close(_))) | None => break Ok(false),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break Err(ProtocolError::new(
                        crate::server::CLOSE_PROTOCOL,
                        format!("WebSocket error: {}", media_blob::bounded(&e.to_string(), 120)),
                    )),
                };
                match parsed {
                    Ok(BotCommand::Audio { .. }) => {
                        session.fill_sender(&sender);
                    }
                    Ok(BotCommand::Clear) => {
                        let from_queue = match &playback {
                            Some(p) => p.clear(),
                            None => sender.clear(),
                        };
                        for m in session.clear(from_queue) {
                            send(&tx, m);
                        }
                    }
                    Ok(BotCommand::Mark(_)) => {
                        session.fill_sender(&sender);
                        for m in session.poll_marks(sender.queued()) {
                            send(&tx, m);
                        }
                    }
                    Ok(BotCommand::Ignored(_)) => {}
                    Err(e) => break Err(e),
                }
            }
            _ = tick.tick() => {
                session.fill_sender(&sender);
                for m in session.poll_marks(sender.queued()) {
                    send(&tx, m);
                }
            }
        }
    };
    let mut stats = session.stats();
    stats.frames_to_bot_dropped = dropped;
    let outcome = match result {
        Ok(call_ended) => {
            if call_ended && let Some(m) = session.stop() {
                send(&tx, m);
            }
            let _ = tx.try_send(WriteItem::Close(CLOSE_NORMAL, String::new()));
            Ok(BotLinkReport { stats, call_ended })
        }
        Err(error) => {
            tracing::info!(dialect = %config.dialect, "bot link closed: {error}");
            let _ = tx.try_send(WriteItem::Close(error.code, close_reason(&error.detail)));
            Err(BotLinkError::Protocol {
                dialect: config.dialect,
                error,
            })
        }
    };
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    drop(socket);
    outcome
}

type BotStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(config: &BotLinkConfig) -> Result<BotStream, BotLinkError> {
    let err = |detail: String| BotLinkError::Connect {
        url: excerpt(&config.url),
        detail,
    };
    let mut request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| err(e.to_string()))?;
    if let Some(token) = &config.auth_token {
        let (name, value) = match config.dialect {
            Dialect::Twilio => (
                "x-twilio-signature",
                crate::auth::twilio_signature(token, &config.url),
            ),
            Dialect::Acs | Dialect::Vonage => ("authorization", format!("Bearer {token}")),
        };
        let value = value.parse().map_err(|_| {
            BotLinkError::Config("the bot's auth token is not a valid header value".into())
        })?;
        request.headers_mut().insert(name, value);
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let connector = if config.url.starts_with("wss://") {
        tokio_tungstenite::Connector::Rustls(config.tls_client()?)
    } else {
        tokio_tungstenite::Connector::Plain
    };
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config),
        true,
        Some(connector),
    );
    match tokio::time::timeout(config.connect_timeout, connecting).await {
        Err(_) => Err(err(format!(
            "no handshake within {} ms",
            config.connect_timeout.as_millis()
        ))),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Err(err(format!(
                "refused with HTTP {}: {}",
                resp.status(),
                media_blob::bounded(body.trim(), 200)
            )))
        }
        Ok(Err(e)) => Err(err(media_blob::bounded(&e.to_string(), 200))),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// Sends queued messages; a close item closes the WebSocket and ends.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<BotStream, Message>,
    mut rx: mpsc::Receiver<WriteItem>,
) {
    while let Some(item) = rx.recv().await {
        let (message, last) = match item {
            WriteItem::Message(Outbound::Text(t)) => (Message::text(t), false),
            WriteItem::Message(Outbound::Binary(b)) => (Message::binary(b), false),
            WriteItem::Close(code, reason) => (
                Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                })),
                true,
            ),
        };
        if sink.send(message).await.is_err() || last {
            break;
        }
    }
    let _ = sink.flush().await;
}

#[cfg(test)]
#[path = "bot_tests.rs"]
mod tests;
