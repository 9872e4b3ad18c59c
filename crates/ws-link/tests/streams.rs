//! Real WebSocket clients (tokio-tungstenite) acting as ACS, Twilio and Vonage against
//! the endpoint over 127.0.0.1, each stream a platform call answered by an echo bot:
//! speech-like audio goes out, the echo comes back through the jitter buffer and the
//! paced sender, DTMF reaches the bot; bad credentials get 401; bad messages a close
//! code naming what is wrong, while another call goes on.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use futures_util::{SinkExt, StreamExt};
use harness::PeerReport;
use harness::signal::SignalGenerator;
use media_core::frame::FRAME_SAMPLES;
use media_core::resample::{CaptureResampler, DeviceFormat, PlayoutResampler, ResamplerMode};
use platform::{AudioEvent, DtmfTone, FrameDelivery, MediaPlatform};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use ws_link::auth::twilio_signature;
use ws_link::{Dialect, WsAuthConfig, WsConfig, WsServer, mulaw};

const TWILIO_TOKEN: &str = "twilio-auth-token-for-tests";
const VONAGE_TOKEN: &str = "vonage-bearer-for-tests";
const ACS_RESOURCE: &str = "acs-resource-id-for-tests";
/// Audio each call sends.
const CALL_FRAMES: usize = 150;

type Events = Arc<Mutex<Vec<(Dialect, AudioEvent)>>>;

struct Setup {
    server: WsServer,
    events: Events,
    _platform: Arc<MediaPlatform>,
    _jwks: Option<JwksServer>,
}

/// A platform with an echo bot behind the endpoint (the tests' common setup); every
/// bot event is recorded.
async fn setup(auth: WsAuthConfig, jwks: Option<JwksServer>, max_message_bytes: usize) -> Setup {
    let echo = |_: &ws_link::StreamInfo| {
        FrameDelivery::Callback(Box::new(|f, tx| {
            let _ = tx.enqueue(&f.samples);
        }))
    };
    let config = WsConfig {
        auth,
        max_message_bytes,
        ..WsConfig::default()
    };
    let (server, mut incoming, platform) = common::endpoint(config, echo).await;
    let events: Events = Arc::default();
    let seen = events.clone();
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut socket = call.socket;
                while let Some(e) = socket.next_event().await {
                    seen.lock().expect("events").push((call.info.dialect, e));
                }
            });
        }
    });
    Setup {
        server,
        events,
        _platform: platform,
        _jwks: jwks,
    }
}

/// A JWKS document served over real HTTP, and tokens signed with its key.
struct JwksServer {
    url: String,
    key: jsonwebtoken::EncodingKey,
    kid: String,
    _task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start() -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let rsa = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("rsa key");
        let kid = "acs-test-key".to_owned();
        let jwks = serde_json::json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_bytes_be()),
        }]});
        let der = rsa.to_pkcs1_der().expect("der");
        let key = jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = http_guard_server(listener);
        let url = format!("http://{}/keys", server.local_addr());
        let router = axum::Router::new().route(
            "/keys",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let task = tokio::spawn(server.serve(router, std::future::pending()));
        Self {
            url,
            key,
            kid,
            _task: task,
        }
    }

    fn token(&self, audience: &str, issuer: &str) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims =
            serde_json::json!({"iss": issuer, "aud": audience, "exp": now + 600, "nbf": now - 10});
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }
}

fn http_guard_server(listener: tokio::net::TcpListener) -> http_guard::HttpServer {
    http_guard::HttpServer::new(listener, http_guard::Limits::default(), "jwks").expect("server")
}

fn full_auth(jwks: &JwksServer) -> WsAuthConfig {
    WsAuthConfig {
        acs: Some(WsAuthConfig::acs(ACS_RESOURCE, &jwks.url)),
        twilio_auth_token: Some(TWILIO_TOKEN.into()),
        twilio_public_url: None,
        vonage_token: Some(VONAGE_TOKEN.into()),
    }
}

/// The handshake request of a `dialect` client with valid credentials (or `bad`).
fn request(
    server: &WsServer,
    dialect: Dialect,
    jwks: &JwksServer,
    bad: bool,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = format!("{}?call=test", server.url(dialect));
    let mut req = url.as_str().into_client_request().expect("request");
    let h = req.headers_mut();
    match dialect {
        Dialect::Acs => {
            let aud = if bad {
                "another-resource"
            } else {
                ACS_RESOURCE
            };
            let t = jwks.token(aud, ws_link::ACS_ISSUER);
            h.insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        Dialect::Twilio => {
            let token = if bad { "wrong-token" } else { TWILIO_TOKEN };
            h.insert(
                "x-twilio-signature",
                twilio_signature(token, &url).parse().expect("header"),
            );
        }
        Dialect::Vonage => {
            let t = if bad { "wrong" } else { VONAGE_TOKEN };
            h.insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
    }
    req
}

fn start_message(dialect: Dialect, rate: u32) -> Message {
    Message::text(match dialect {
        Dialect::Acs => format!(r#"{{"kind":"AudioMetadata","audioMetadata":{{"subscriptionId":"sub-1","encoding":"PCM","sampleRate":{rate},"channels":1,"length":{}}}}}"#, rate / 50 * 2),
        Dialect::Twilio => r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{}},"streamSid":"MZ1"}"#.into(),
        Dialect::Vonage => r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#.into(),
    })
}

fn dtmf_message(dialect: Dialect) -> Message {
    Message::text(match dialect {
        Dialect::Acs => r#"{"kind":"DtmfData","dtmfData":{"data":"7"}}"#,
        Dialect::Twilio => {
            r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"9","dtmf":{"track":"inbound_track","digit":"7"}}"#
        }
        Dialect::Vonage => r#"{"event":"websocket:dtmf","digit":"7","duration":100}"#,
    })
}

/// One 20 ms frame at the wire rate as the platform would send it (`k`: index).
fn audio_message(dialect: Dialect, wire: &[i16], k: usize) -> Message {
    let pcm: Vec<u8> = wire.iter().flat_map(|s| s.to_le_bytes()).collect();
    match dialect {
        Dialect::Acs => {
            let ms = 1_730_717_036_000u64 + k as u64 * 20;
            let secs = ms / 1000;
            let ts = format!(
                "2024-11-04T10:{:02}:{:02}.{:03}Z",
                (secs / 60) % 60,
                secs % 60,
                ms % 1000
            );
            Message::text(format!(
                r#"{{"kind":"AudioData","audioData":{{"timestamp":"{ts}","participantRawID":"8:acs:1","data":"{}","silent":false}}}}"#,
                B64.encode(&pcm)
            ))
        }
        Dialect::Twilio => {
            let law: Vec<u8> = wire.iter().map(|&s| mulaw::encode(s)).collect();
            Message::text(format!(
                r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{}"}},"streamSid":"MZ1"}}"#,
                k + 2,
                k + 1,
                k * 20,
                B64.encode(&law)
            ))
        }
        Dialect::Vonage => Message::binary(pcm),
    }
}

/// The samples of a message the endpoint sent, at the wire rate.
fn decode_reply(dialect: Dialect, msg: &Message) -> Option<Vec<i16>> {
    let pcm = |b: &[u8]| {
        b.chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    };
    match (dialect, msg) {
        (Dialect::Vonage, Message::Binary(b)) => Some(pcm(b)),
        (Dialect::Acs, Message::Text(t)) => {
            let v: serde_json::Value = serde_json::from_str(t).expect("JSON from the endpoint");
            assert_eq!(v["Kind"], "AudioData", "{t}");
            assert!(v["StopAudio"].is_null(), "{t}");
            Some(pcm(&B64
                .decode(v["AudioData"]["Data"].as_str().expect("Data"))
                .expect("base64")))
        }
        (Dialect::Twilio, Message::Text(t)) => {
            let v: serde_json::Value = serde_json::from_str(t).expect("JSON from the endpoint");
            assert_eq!(
                (v["event"].as_str(), v["streamSid"].as_str()),
                (Some("media"), Some("MZ1")),
                "{t}"
            );
            let law = B64
                .decode(v["media"]["payload"].as_str().expect("payload"))
                .expect("base64");
            Some(law.iter().map(|&b| mulaw::decode(b)).collect())
        }
        _ => None,
    }
}

/// Wire-rate conversion as a platform does it: 16 kHz speech to the wire rate and
/// back, so the echo is compared with what a perfect echo over that wire would be.
struct Wire {
    rate: u32,
    down: Option<PlayoutResampler>,
    up: Option<CaptureResampler>,
    up_ref: Option<CaptureResampler>,
}

impl Wire {
    fn new(rate: u32) -> Self {
        let f = DeviceFormat::new(rate, 1);
        let (down, up, up_ref) = if rate == 16_000 {
            (None, None, None)
        } else {
            (
                Some(PlayoutResampler::new(f, ResamplerMode::LowDelay).expect("down")),
                Some(CaptureResampler::new(f, ResamplerMode::LowDelay).expect("up")),
                Some(CaptureResampler::new(f, ResamplerMode::LowDelay).expect("up")),
            )
        };
        Self {
            rate,
            down,
            up,
            up_ref,
        }
    }

    fn down(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Vec<i16> {
        match &mut self.down {
            None => frame.to_vec(),
            Some(r) => {
                let mut out = vec![0; r.max_output_len()];
                let n = r.process(frame, &mut out).expect("resample");
                out.truncate(n);
                out
            }
        }
    }

    fn from_wire(r: &mut Option<CaptureResampler>, wire: &[i16], out: &mut Vec<i16>) {
        match r {
            None => out.extend_from_slice(wire),
            Some(r) => r
                .process(wire, |b| out.extend_from_slice(b))
                .expect("resample"),
        }
    }
}

/// Runs one call: speech out in bursts of three frames every 60 ms (TCP delivers in
/// bursts), a DTMF key half-way, then the platform's stop or a close; returns what a
/// perfect echo would be and what came back, both at 16 kHz.
async fn echo_call(
    server: &WsServer,
    dialect: Dialect,
    rate: u32,
    jwks: &JwksServer,
) -> (Vec<i16>, Vec<i16>) {
    let (ws, resp) = tokio_tungstenite::connect_async(request(server, dialect, jwks, false))
        .await
        .unwrap_or_else(|e| panic!("{dialect} handshake: {e}"));
    assert_eq!(resp.status(), 101);
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut wire = Vec::new();
        while let Some(Ok(m)) = rx.next().await {
            if let Some(s) = decode_reply(dialect, &m) {
                wire.extend(s);
            }
        }
        wire
    });
    if dialect == Dialect::Twilio {
        tx.send(Message::text(
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
        ))
        .await
        .expect("send");
    }
    tx.send(start_message(dialect, rate))
        .await
        .expect("send start");
    let mut wire = Wire::new(rate);
    let mut speech = SignalGenerator::speech(7);
    let mut reference = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(60));
    for k in 0..CALL_FRAMES {
        if k % 3 == 0 {
            tick.tick().await;
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        speech.fill(&mut frame);
        let w = wire.down(&frame);
        let w: Vec<i16> = if dialect == Dialect::Twilio {
            w.iter().map(|&s| mulaw::decode(mulaw::encode(s))).collect()
        } else {
            w
        };
        Wire::from_wire(&mut wire.up_ref, &w, &mut reference);
        tx.send(audio_message(dialect, &w, k))
            .await
            .expect("send audio");
        if k == CALL_FRAMES / 2 {
            tx.send(dtmf_message(dialect)).await.expect("send dtmf");
        }
    }
    // Let the echo of the last frames come back, then end the stream.
    tokio::time::sleep(Duration::from_millis(600)).await;
    match dialect {
        Dialect::Twilio => tx
            .send(Message::text(r#"{"event":"stop","sequenceNumber":"200","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#))
            .await
            .expect("stop"),
        _ => tx.send(Message::Close(None)).await.expect("close"),
    }
    let got = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the endpoint closes")
        .expect("reader");
    let mut received = Vec::new();
    Wire::from_wire(&mut wire.up, &got, &mut received);
    let _ = wire.rate;
    (reference, received)
}

/// Leading silence put before what came back: see [`assert_echo`].
const CAPTURE_LEAD: usize = 1_600;

fn assert_echo(dialect: Dialect, reference: Vec<i16>, received: Vec<i16>) {
    // The capture starts with the endpoint's first message, not on the reference's
    // clock: once the jitter buffer has brought its 80 ms start delay down to what the
    // bursts need, the echo can sit a few ms *before* a zero lag on that origin (seen
    // on Twilio: -10 ms), where no search reaches and every segment scored as a
    // mismatch. 100 ms of silence before the capture keeps the true lag positive.
    let mut padded = vec![0i16; CAPTURE_LEAD];
    padded.extend(received);
    let report = PeerReport {
        sent: reference,
        received: padded,
        ..PeerReport::default()
    };
    let delay = report
        .echo_delay(Duration::from_millis(800))
        .unwrap_or_else(|| {
            panic!(
                "{dialect}: no echo found in {} samples",
                report.received.len()
            )
        });
    let span = Duration::from_millis(CALL_FRAMES as u64 * 20 - 200);
    let matched = report
        .voiced_segments_matched_pct(delay, span)
        .expect("voiced segments");
    eprintln!("{dialect}: echo delay {delay:?}, voiced 250 ms segments matched {matched:.0} %");
    assert!(
        matched >= 75.0,
        "{dialect}: only {matched:.0} % of voiced segments echoed (delay {delay:?})"
    );
}

#[test]
fn each_dialect_echoes_through_a_platform_call_and_delivers_dtmf() {
    common::rt().block_on(async {
        let jwks = JwksServer::start().await;
        let auth = full_auth(&jwks);
        let s = setup(auth, None, 256 * 1024).await;
        let calls = [
            (Dialect::Acs, 16_000),
            (Dialect::Acs, 24_000),
            (Dialect::Twilio, 8_000),
            (Dialect::Vonage, 16_000),
        ];
        let results = futures_util::future::join_all(
            calls
                .iter()
                .map(|&(d, rate)| echo_call(&s.server, d, rate, &jwks)),
        )
        .await;
        for ((d, rate), (reference, received)) in calls.iter().zip(results) {
            eprintln!("{d} at {rate} Hz:");
            assert_echo(*d, reference, received);
        }
        // The bot saw each call's DTMF key, and each call ended in order.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let events = s.events.lock().expect("events").clone();
            let count = |d: Dialect, f: &dyn Fn(&AudioEvent) -> bool| {
                events.iter().filter(|(x, e)| *x == d && f(e)).count()
            };
            let tones = |d| {
                count(d, &|e| {
                    matches!(
                        e,
                        AudioEvent::ToneReceived {
                            tone: DtmfTone::Tone7,
                            ..
                        }
                    )
                })
            };
            let ended = |d| count(d, &|e| matches!(e, AudioEvent::Ended { .. }));
            if [Dialect::Acs, Dialect::Twilio, Dialect::Vonage]
                .iter()
                .all(|&d| {
                    let n = if d == Dialect::Acs { 2 } else { 1 };
                    tones(d) == n && ended(d) == n
                })
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "events: {events:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats = s.server.stats();
        assert_eq!(
            (
                stats.calls_started,
                stats.protocol_errors,
                stats.unauthorized
            ),
            (4, 0, 0)
        );
    });
}

#[test]
fn bad_credentials_are_refused_with_401_and_nothing_is_processed() {
    common::rt().block_on(async {
        let jwks = JwksServer::start().await;
        let s = setup(full_auth(&jwks), None, 256 * 1024).await;
        for d in Dialect::ALL {
            let err = tokio_tungstenite::connect_async(request(&s.server, d, &jwks, true))
                .await
                .expect_err("refused");
            let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
                panic!("{d}: expected an HTTP refusal, got {err}");
            };
            assert_eq!(resp.status(), 401, "{d}");
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            eprintln!("{d}: {body}");
            let why = match d {
                Dialect::Acs => "audience",
                Dialect::Twilio => "X-Twilio-Signature",
                Dialect::Vonage => "bearer token",
            };
            assert!(body.contains(why), "{d}: {body}");
        }
        // No credentials at all.
        let url = s.server.url(Dialect::Twilio);
        let err = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401),
            "{err}"
        );
        let stats = s.server.stats();
        assert_eq!((stats.unauthorized, stats.calls_started), (4, 0));
    });
}

/// A client that sends `bad` after a valid start must see the stream closed with
/// `code` and a reason naming `why`; meanwhile another call (Vonage) goes on echoing.
#[test]
fn bad_messages_close_the_stream_with_a_code_naming_the_fault_and_other_calls_go_on() {
    common::rt().block_on(async {
        let jwks = JwksServer::start().await;
        let s = setup(full_auth(&jwks), None, 1 << 20).await;
        // The bystander: a Vonage call echoing all along.
        let bystander = echo_call(&s.server, Dialect::Vonage, 16_000, &jwks);
        let faults = async {
            let cases: Vec<(Dialect, Message, CloseCode, &str)> = vec![
                (
                    Dialect::Twilio,
                    Message::text(
                        r#"{"event":"media","media":{"payload":"%%%"},"streamSid":"MZ1"}"#,
                    ),
                    CloseCode::Invalid,
                    "base64",
                ),
                (
                    Dialect::Acs,
                    Message::text(r#"{"kind":"AudioData","audioData":{"data":"AAA"#),
                    CloseCode::Invalid,
                    "not a message",
                ),
                (
                    Dialect::Vonage,
                    Message::binary(vec![0u8; 100]),
                    CloseCode::Invalid,
                    "100 bytes",
                ),
                (
                    Dialect::Acs,
                    Message::binary(vec![1u8; 10]),
                    CloseCode::Unsupported,
                    "JSON text",
                ),
                (
                    Dialect::Twilio,
                    Message::text(format!(
                        r#"{{"event":"media","media":{{"payload":"{}"}}}}"#,
                        "A".repeat(50 << 20)
                    )),
                    CloseCode::Size,
                    "too large",
                ),
            ];
            for (d, bad, code, why) in cases {
                let (ws, _) = tokio_tungstenite::connect_async(request(&s.server, d, &jwks, false))
                    .await
                    .expect("handshake");
                let (mut tx, mut rx) = ws.split();
                tx.send(start_message(d, 16_000)).await.expect("start");
                // A 50 MB message may not be written whole before the endpoint closes.
                let _ = tx.send(bad).await;
                let close = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(m) = rx.next().await {
                        match m {
                            Ok(Message::Close(Some(f))) => return Some(f),
                            Ok(_) => continue,
                            Err(e) => panic!("{d}: no close frame ({why}): {e}"),
                        }
                    }
                    None
                })
                .await
                .expect("closed in time")
                .unwrap_or_else(|| panic!("{d}: stream ended without a close frame ({why})"));
                eprintln!("{d}: closed {} {}", u16::from(close.code), close.reason);
                assert_eq!(close.code, code, "{d}: {}", close.reason);
                assert!(
                    close.reason.contains(why),
                    "{d}: {} lacks {why:?}",
                    close.reason
                );
            }
        };
        let ((reference, received), ()) = tokio::join!(bystander, faults);
        // The bystander went on: its echo came back, all of it. (How faithful an echo
        // is, is the echo test's question.)
        let report = PeerReport {
            sent: reference,
            received,
            ..PeerReport::default()
        };
        assert!(
            report.echo_delay(Duration::from_millis(800)).is_some(),
            "the bystander's echo stopped"
        );
        assert!(
            report.received.len() >= report.sent.len() * 9 / 10,
            "the bystander got {} of {} samples back",
            report.received.len(),
            report.sent.len()
        );
        let stats = s.server.stats();
        assert_eq!(stats.protocol_errors, 5);
        // Each faulty call failed with a protocol error the bot was told about.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let failures = s
                .events
                .lock()
                .expect("events")
                .iter()
                .filter(|(_, e)| matches!(e, AudioEvent::MediaStreamFailure { .. }))
                .count();
            if failures == 5 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{failures} failures reported"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}
