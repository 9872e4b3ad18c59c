//! The outbound bot link against bots whose protocol side this project did not
//! write: `tests/bots/twilio_bot.py`, a Twilio Media Streams bot on PyPI `websockets`
//! whose handshake check is the `twilio` package's `RequestValidator`;
//! `tests/bots/pipecat_bot.py`, a Pipecat pipeline (PyPI `pipecat-ai`: its WebSocket
//! server transport and `TwilioFrameSerializer` or `VonageFrameSerializer`); and
//! `tests/bots/acs_bot/acs_bot.js`, an ACS audio streaming bot on Microsoft's JS SDK
//! (npm `@azure/communication-call-automation`: `StreamingData.parse` reads what we
//! send, `createOutboundAudioData`/`createOutboundStopAudioData` write its answers).
//! A call comes in as a Vonage stream (a tokio-tungstenite client playing the
//! platform), is forwarded to the bot in its dialect (Twilio µ-law 8 kHz, ACS PCM
//! 24 kHz, Vonage L16), and the bot's audio comes back through the call's paced send
//! queue: its echo, a tone burst (with a mark on Twilio), and a barge-in (`clear`,
//! `StopAudio`) that also reaches the platform as `{"action":"clear"}`. Missing
//! interpreters or packages skip a test, or fail it where `CI` is set.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use media_core::frame::FRAME_SAMPLES;
use platform::{FrameDelivery, MediaPlatform};
use tokio_tungstenite::tungstenite::Message;
mod common;

use ws_link::{
    BotCallInfo, BotLinkConfig, BotLinkError, BotLinkReport, Dialect, WsConfig, WsServer,
};

const TOKEN: &str = "twilio-auth-token-of-the-bot";

/// A bot in another language (`tests/bots/…`), killed on drop; its `EVENT` lines
/// collected.
struct Bot {
    child: Child,
    port: u16,
    events: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Bot {
    /// Starts the Python bot `tests/bots/<script>` with `args` once `imports` import.
    fn python(script: &str, args: &[&str], imports: &str) -> Option<Bot> {
        let check = format!("import {imports}");
        Bot::start("python3", &["-c", &check], script, args)
    }

    /// Starts the Node bot `tests/bots/<script>` once `modules` load from its folder's
    /// node_modules.
    fn node(script: &str, modules: &[&str]) -> Option<Bot> {
        let check: String = modules.iter().map(|m| format!("require({m:?});")).collect();
        Bot::start("node", &["-e", &check], script, &[])
    }

    /// Starts `program tests/bots/<script> args` in the script's folder once `program
    /// check` succeeds there, or `None` where the interpreter or the bot's packages
    /// are missing outside CI (in CI that is a failure: scripts/install-deps.sh
    /// installs them).
    fn start(program: &str, check: &[&str], script: &str, args: &[&str]) -> Option<Bot> {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/bots")
            .join(script);
        let dir = script.parent().expect("the bot's folder").to_owned();
        let ok = Command::new(program)
            .args(check)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "{program} with what `{}` needs is missing (scripts/install-deps.sh)",
                check.join(" ")
            );
            eprintln!(
                "skipped: {program} with what `{}` needs is not installed",
                check.join(" ")
            );
            return None;
        }
        let mut child = Command::new(program)
            .arg(&script)
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines
            .next()
            .expect("the bot prints its port")
            .expect("stdout");
        let port = first
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the bot: {first}"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("EVENT ") {
                    let v: serde_json::Value = serde_json::from_str(json).expect("bot event JSON");
                    sink.lock().expect("events").push(v);
                }
            }
        });
        Some(Bot {
            child,
            port,
            events,
        })
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/bot?call=1", self.port)
    }

    fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect()
    }

    async fn wait_for(&self, kind: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.events(kind);
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bot saw {} {kind} events; all: {:?}",
                got.len(),
                self.events.lock().expect("events")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tone_frame(k: usize, hz: f64, level: f64) -> Vec<i16> {
    (0..FRAME_SAMPLES)
        .map(|i| {
            let t = (k * FRAME_SAMPLES + i) as f64 / 16_000.0;
            ((2.0 * std::f64::consts::PI * hz * t).sin() * level) as i16
        })
        .collect()
}

fn rms_dbfs(s: &[i16]) -> f64 {
    let e = s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len().max(1) as f64;
    10.0 * (e.max(1e-9) / (32768.0f64 * 32768.0)).log10()
}

/// Runs of consecutive frames louder than -30 dBFS, as (first frame, length).
fn loud_runs(audio: &[i16]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (k, f) in audio.chunks(FRAME_SAMPLES).enumerate() {
        match (rms_dbfs(f) > -30.0, start) {
            (true, None) => start = Some(k),
            (false, Some(s)) => {
                runs.push((s, k - s));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, audio.len() / FRAME_SAMPLES - s));
    }
    // Merge runs split by a frame or two of a tone's zero crossing at frame edges.
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for r in runs {
        match merged.last_mut() {
            Some(last) if r.0 <= last.0 + last.1 + 2 => last.1 = r.0 + r.1 - last.0,
            _ => merged.push(r),
        }
    }
    merged.into_iter().filter(|r| r.1 >= 3).collect()
}

/// The first of `runs` is the echo of the call's 100 frames of a 1 kHz tone: `frames`
/// long, at the level it was sent (within 2 dB).
fn assert_echo(audio: &[i16], runs: &[(usize, usize)], frames: std::ops::RangeInclusive<usize>) {
    let Some(&(start, len)) = runs.first() else {
        panic!("no echo of the tone came back");
    };
    assert!(
        frames.contains(&len),
        "the echo of 100 tone frames: {runs:?}"
    );
    let echo = &audio[(start + 20) * FRAME_SAMPLES..(start + 80) * FRAME_SAMPLES];
    let level = rms_dbfs(echo);
    let sent = rms_dbfs(&tone_frame(0, 1000.0, 8000.0));
    assert!(
        (level - sent).abs() < 2.0,
        "echo at {level:.1} dBFS, sent {sent:.1}"
    );
}

type Results = Arc<Mutex<Vec<Result<BotLinkReport, BotLinkError>>>>;

/// A platform whose streams are each forwarded to a bot as `bot` says; the first
/// with the right auth token, later ones with a wrong one.
async fn setup(bot: BotLinkConfig) -> (WsServer, Results, Arc<MediaPlatform>) {
    let (server, mut incoming, platform) =
        common::endpoint(WsConfig::default(), |_| FrameDelivery::Channel(50)).await;
    let results: Results = Arc::default();
    let done = results.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            let mut config = bot.clone();
            let n = calls.fetch_add(1, Ordering::SeqCst);
            config.auth_token = Some(if n == 0 { TOKEN } else { "not-the-token" }.into());
            let done = done.clone();
            tokio::spawn(async move {
                let info = BotCallInfo::for_call(uuid::Uuid::new_v4());
                let r = ws_link::forward(call.socket, info, config, Some(call.playback)).await;
                done.lock().expect("results").push(r);
            });
        }
    });
    (server, results, platform)
}

/// A client playing Vonage: it sends the call's audio and keeps what comes back.
struct VonageClient {
    tx: futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        Message,
    >,
    reader: tokio::task::JoinHandle<()>,
    /// Audio (16 kHz) and text messages from the endpoint.
    received: Arc<Mutex<(Vec<i16>, Vec<String>)>>,
    /// Frames sent so far.
    sent: usize,
    tick: tokio::time::Interval,
}

impl VonageClient {
    /// Connects to the endpoint's `/vonage` and starts the stream.
    async fn connect(server: &WsServer) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(server.url(Dialect::Vonage))
            .await
            .expect("handshake");
        let (mut tx, mut rx) = ws.split();
        let received: Arc<Mutex<(Vec<i16>, Vec<String>)>> = Arc::default();
        let sink = received.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = rx.next().await {
                let mut g = sink.lock().expect("received");
                match m {
                    Message::Binary(b) => {
                        g.0.extend(b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])))
                    }
                    Message::Text(t) => g.1.push(t.to_string()),
                    _ => {}
                }
            }
        });
        tx.send(Message::text(
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#,
        ))
        .await
        .expect("start");
        Self {
            tx,
            reader,
            received,
            sent: 0,
            tick: tokio::time::interval(Duration::from_millis(60)),
        }
    }

    /// Sends `frames` more frames in bursts of three every 60 ms (TCP timing): a
    /// 1 kHz tone for the call's first 100 frames, then silence; each `(k, digit)` of
    /// `dtmf` is pressed after the call's frame `k`.
    async fn play(&mut self, frames: usize, dtmf: &[(usize, &str)]) {
        for _ in 0..frames {
            let k = self.sent;
            if k.is_multiple_of(3) {
                self.tick.tick().await;
            }
            let frame = if k < 100 {
                tone_frame(k, 1000.0, 8000.0)
            } else {
                vec![0; FRAME_SAMPLES]
            };
            let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
            self.tx.send(Message::binary(bytes)).await.expect("audio");
            self.sent += 1;
            for (_, digit) in dtmf.iter().filter(|(at, _)| *at == k) {
                self.tx
                    .send(Message::text(format!(
                        r#"{{"event":"websocket:dtmf","digit":"{digit}","duration":100}}"#
                    )))
                    .await
                    .expect("dtmf");
            }
        }
    }

    /// Plays silence, a frame at a time, until `done`; fails after 15 s saying
    /// `what`, with the bot's events.
    async fn play_until(&mut self, bot: &Bot, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}; loud runs back {:?}; bot events: {:?}",
                loud_runs(&self.audio()),
                bot.events.lock().expect("events")
            );
            self.play(1, &[]).await;
        }
    }

    /// The audio the endpoint sent so far.
    fn audio(&self) -> Vec<i16> {
        self.received.lock().expect("received").0.clone()
    }

    /// Whether the endpoint sent this text message.
    fn got_text(&self, text: &str) -> bool {
        self.received
            .lock()
            .expect("received")
            .1
            .iter()
            .any(|t| t == text)
    }

    /// Ends the stream; what came back.
    async fn close(mut self) -> (Vec<i16>, Vec<String>) {
        self.tx.send(Message::Close(None)).await.expect("close");
        tokio::time::timeout(Duration::from_secs(10), self.reader)
            .await
            .expect("the endpoint closes")
            .expect("reader");
        let g = self.received.lock().expect("received");
        (g.0.clone(), g.1.clone())
    }
}

/// The outcome of the `n`th forwarded call, once it has ended.
async fn result_of(results: &Results, n: usize) -> Result<BotLinkReport, BotLinkError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = results.lock().expect("results").get(n).cloned() {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "forward never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_call_is_forwarded_to_a_twilio_bot_paced_with_dtmf_marks_and_barge_in() {
    let imports = "websockets.asyncio.server, twilio.request_validator";
    let Some(bot) = Bot::python("twilio_bot.py", &[TOKEN], imports) else {
        return;
    };
    common::rt().block_on(async {
        let (server, results, _platform) =
            setup(BotLinkConfig::new(bot.url(), Dialect::Twilio)).await;
        // 9 s of frames (TCP timing): 2 s of a 1 kHz tone, then silence; DTMF 2 at 3 s
        // (short tone + mark), DTMF 1 at 5.5 s (the bot clears the echo queued, sends a
        // 4 s tone and clears it after 1 s).
        let mut client = VonageClient::connect(&server).await;
        client.play(450, &[(150, "2"), (275, "1")]).await;
        let (audio, texts) = client.close().await;

        // What the bot saw: Twilio's messages, as Twilio sends them.
        let connected = bot.wait_for("connected", 1).await;
        assert_eq!(connected[0]["protocol"], "Call");
        let start = &bot.wait_for("start", 1).await[0];
        let sid = start["streamSid"].as_str().expect("streamSid").to_owned();
        assert!(sid.starts_with("MZ"), "{start}");
        assert_eq!(start["topStreamSid"], sid.as_str());
        assert_eq!(start["sequenceNumber"], "1");
        assert_eq!(
            start["mediaFormat"],
            serde_json::json!({"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1})
        );
        assert_eq!(bot.events("signature_ok").len(), 1);
        let first = &bot.wait_for("first_media", 1).await[0];
        assert_eq!(
            (first["track"].as_str(), first["timestamp"].as_str()),
            (Some("inbound"), Some("0"))
        );
        let dtmf = bot.wait_for("dtmf", 2).await;
        let digits: Vec<_> = dtmf.iter().map(|d| d["digit"].as_str()).collect();
        assert_eq!(digits, [Some("2"), Some("1")]);
        assert_eq!(dtmf[0]["track"], "inbound_track");
        // Marks: the short tone's once its 500 ms played (paced, not at once); the
        // long tone's when the clear dropped it, 1 s after.
        let marks = bot.wait_for("mark", 2).await;
        eprintln!("marks: {marks:?}");
        let short = marks
            .iter()
            .find(|m| m["name"] == "short-tone")
            .expect("short-tone echoed");
        let short_ms = short["ms_after_sent"].as_i64().expect("ms");
        assert!(
            (400..5000).contains(&short_ms),
            "the short tone's mark came {short_ms} ms after it was sent"
        );
        let long = marks
            .iter()
            .find(|m| m["name"] == "long-tone")
            .expect("long-tone echoed");
        let long_ms = long["ms_after_sent"].as_i64().expect("ms");
        assert!(
            (900..3000).contains(&long_ms),
            "the cleared tone's mark came {long_ms} ms after it was sent (4 s of audio)"
        );
        bot.wait_for("stop", 1).await;

        // What the platform (the Vonage client) got back: the echo of its tone, the
        // short tone whole, the long one cut by the clear, and the clear itself.
        let runs = loud_runs(&audio);
        eprintln!("loud runs (frame, frames): {runs:?}; texts from the endpoint: {texts:?}");
        assert_eq!(runs.len(), 3, "echo, short tone, cut long tone: {runs:?}");
        assert_echo(&audio, &runs, 90..=110);
        assert!(
            (23..=28).contains(&runs[1].1),
            "the 500 ms tone plays whole: {runs:?}"
        );
        assert!(
            (10..100).contains(&runs[2].1),
            "the 4 s tone (200 frames) is cut by the clear after 1 s: {runs:?}"
        );
        assert!(
            texts.iter().any(|t| t == r#"{"action":"clear"}"#),
            "the platform was told to clear: {texts:?}"
        );

        let report = result_of(&results, 0)
            .await
            .expect("the forwarded call ends cleanly");
        eprintln!("{report:?}");
        assert!(report.call_ended);
        let s = report.stats;
        assert_eq!((s.clears, s.marks_echoed, s.dtmf_to_bot), (2, 2, 2));
        assert!(s.frames_cleared > 100, "{s:?}");
        assert!(s.frames_to_bot > 400, "{s:?}");

        // A second call whose handshake carries a wrong signature: the bot refuses
        // it (403) and forwarding says so; the stream's call is hung up.
        let (ws, _) = tokio_tungstenite::connect_async(server.url(Dialect::Vonage))
            .await
            .expect("handshake");
        let (mut tx, mut rx) = ws.split();
        tx.send(Message::text(
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#,
        ))
        .await
        .expect("start");
        tx.send(Message::binary(vec![0u8; 640]))
            .await
            .expect("audio");
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Close(f) = m {
                    return f;
                }
            }
            None
        })
        .await
        .expect("the stream is closed when its bot refuses");
        eprintln!("second stream closed: {closed:?}");
        let err = result_of(&results, 1)
            .await
            .expect_err("the bot refuses a wrong signature");
        eprintln!("{err}");
        assert!(
            matches!(&err, BotLinkError::Connect { detail, .. } if detail.contains("403")),
            "{err}"
        );
        assert_eq!(bot.events("signature_refused").len(), 1);
    });
}

/// A Pipecat bot (its WebSocket server transport and Twilio serializer) echoes the
/// call and, on DTMF 2, interrupts itself: Pipecat's `clear` reaches the call and the
/// platform.
#[test]
fn a_call_is_forwarded_to_a_pipecat_twilio_bot_that_echoes_and_barges_in() {
    pipecat_bot(Dialect::Twilio);
}

/// The same with Pipecat's Vonage serializer: binary L16 both ways (in Pipecat's own
/// chunk sizes) and `{"action":"clear"}`.
#[test]
fn a_call_is_forwarded_to_a_pipecat_vonage_bot_that_echoes_and_barges_in() {
    pipecat_bot(Dialect::Vonage);
}

fn pipecat_bot(dialect: Dialect) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let imports = "pipecat.serializers.twilio, pipecat.serializers.vonage, pipecat.transports.websocket.server";
    let Some(bot) = Bot::python("pipecat_bot.py", &[&port, dialect.name()], imports) else {
        return;
    };
    common::rt().block_on(async {
        let url = format!("ws://127.0.0.1:{port}/");
        let (server, results, _platform) = setup(BotLinkConfig::new(url, dialect)).await;
        // 2 s of a 1 kHz tone, then silence; DTMF 2 at 3 s; the call goes on (silence)
        // until the interruption reached the platform.
        let mut client = VonageClient::connect(&server).await;
        client.play(200, &[(150, "2")]).await;
        let cleared = |c: &VonageClient| c.got_text(r#"{"action":"clear"}"#);
        client
            .play_until(&bot, "no clear reached the platform", cleared)
            .await;
        let (audio, texts) = client.close().await;

        let first = &bot.wait_for("first_audio", 1).await[0];
        assert_eq!(first["sample_rate"], 16000, "{first}");
        let dtmf = bot.wait_for("dtmf", 1).await;
        assert_eq!(dtmf[0]["digit"], "2");
        bot.wait_for("interrupted", 1).await;
        bot.wait_for("disconnected", 1).await;

        let runs = loud_runs(&audio);
        eprintln!("Pipecat {dialect}: loud runs (frame, frames): {runs:?}; texts: {texts:?}");
        assert_eq!(runs.len(), 1, "the echo of the tone: {runs:?}");
        assert_echo(&audio, &runs, 85..=115);
        let report = result_of(&results, 0)
            .await
            .expect("the forwarded call ends cleanly");
        eprintln!("{report:?}");
        assert!(report.call_ended);
        assert_eq!((report.stats.clears, report.stats.dtmf_to_bot), (1, 1));
    });
}

/// Zero crossings per 20 ms frame of `audio`: twice the tone's frequency over 50.
fn crossings_per_frame(audio: &[i16]) -> f64 {
    let n = audio
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    n as f64 * FRAME_SAMPLES as f64 / audio.len().max(1) as f64
}

/// An ACS bot on Microsoft's JS SDK (`tests/bots/acs_bot`, npm
/// `@azure/communication-call-automation`): the call is forwarded in ACS's dialect at
/// 24 kHz and every message is read by the SDK's own parser; the bot's echo and tone,
/// written by the SDK's builders, play into the call, and its StopAudio cuts the tone
/// and reaches the platform as `{"action":"clear"}`.
#[test]
fn a_call_is_forwarded_to_an_acs_bot_on_microsofts_js_sdk_that_echoes_and_barges_in() {
    let Some(bot) = Bot::node(
        "acs_bot/acs_bot.js",
        &["@azure/communication-call-automation", "ws"],
    ) else {
        return;
    };
    common::rt().block_on(async {
        let mut config = BotLinkConfig::new(bot.url(), Dialect::Acs);
        config.acs_rate = 24_000;
        let (server, results, _platform) = setup(config).await;
        // 2 s of a 1 kHz tone, then silence; DTMF 1 at 3 s: the bot sends 4 s of a
        // 440 Hz tone at once. Once 500 ms of that tone came back, DTMF 2: the bot's
        // StopAudio. The call goes on (silence) until the clear reached the platform.
        let mut client = VonageClient::connect(&server).await;
        client.play(150, &[(149, "1")]).await;
        let tone_heard = |client: &VonageClient| {
            let runs = loud_runs(&client.audio());
            runs.len() >= 2 && runs[1].1 >= 25
        };
        client
            .play_until(&bot, "the bot's tone never came back", tone_heard)
            .await;
        let barge_in = client.sent;
        client.play(1, &[(barge_in, "2")]).await;
        let cleared = |c: &VonageClient| c.got_text(r#"{"action":"clear"}"#);
        client
            .play_until(&bot, "no clear reached the platform", cleared)
            .await;
        let sent = client.sent;
        let (audio, texts) = client.close().await;
        let report = result_of(&results, 0)
            .await
            .expect("the forwarded call ends cleanly");
        let closed = bot.wait_for("closed", 1).await.remove(0);
        eprintln!("ACS bot (JS SDK): {closed}");
        eprintln!("{report:?}");

        // The SDK's parser took every message, in ACS's order and shapes.
        for bad in ["parse_error", "builder_error", "unexpected_kind"] {
            assert!(
                bot.events(bad).is_empty(),
                "{bad}: {:?}",
                bot.events.lock().expect("events")
            );
        }
        let connected = &bot.wait_for("connected", 1).await[0];
        assert_eq!(connected["authorization"], format!("Bearer {TOKEN}"));
        let meta = &bot.wait_for("audio_metadata", 1).await[0];
        assert_eq!(meta["index"], 0, "AudioMetadata comes first: {meta}");
        assert!(
            meta["subscriptionId"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{meta}"
        );
        assert_eq!(
            (&meta["encoding"], &meta["sampleRate"], &meta["channels"]),
            (&"PCM".into(), &24_000.into(), &1.into()),
            "{meta}"
        );
        let first = &bot.wait_for("first_audio", 1).await[0];
        assert_eq!((&first["index"], &first["bytes"]), (&1.into(), &960.into()));
        // `participantRawID` through the SDK's createIdentifierFromRawId: our
        // `8:media-processor:…` is no ACS identifier shape, so it is kept as an
        // identifier of kind `unknown` with the raw id.
        let participant = &first["participant"];
        assert_eq!(participant["kind"], "unknown", "{first}");
        assert!(
            participant["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("8:media-processor:CA")),
            "{first}"
        );
        let dtmf = bot.wait_for("dtmf", 2).await;
        let digits: Vec<_> = dtmf.iter().map(|d| d["digit"].as_str()).collect();
        assert_eq!(digits, [Some("1"), Some("2")]);
        let a = &closed["audio"];
        let parsed = a["messages"].as_u64().expect("messages");
        assert_eq!(
            parsed,
            report.stats.frames_to_bot - report.stats.frames_to_bot_dropped,
            "every AudioData sent was parsed: {closed}"
        );
        assert_eq!(
            a["lengths"],
            serde_json::json!({"960": parsed}),
            "every AudioData carries 20 ms of 24 kHz PCM16: {closed}"
        );
        assert_eq!(a["badTimestamps"], 0, "{closed}");
        assert_eq!(
            closed["messages"],
            parsed + 3,
            "AudioMetadata, audio, 2 DTMF"
        );
        assert!(
            parsed + 50 >= sent as u64,
            "{parsed} of {sent} frames reached the bot"
        );

        // What the platform got back: the echo of its 1 kHz tone, then the bot's
        // 440 Hz tone cut by StopAudio, and the clear.
        let runs = loud_runs(&audio);
        eprintln!("ACS: loud runs (frame, frames): {runs:?}; DTMF 2 after frame {barge_in}");
        eprintln!("ACS: texts from the endpoint: {texts:?}");
        assert_eq!(runs.len(), 2, "the echo, the cut tone: {runs:?}");
        assert_echo(&audio, &runs, 85..=115);
        // 440 Hz: 17.6 zero crossings a frame, 1 kHz: 40.
        let crossings = |r: (usize, usize)| {
            crossings_per_frame(&audio[(r.0 + 5) * FRAME_SAMPLES..(r.0 + 20) * FRAME_SAMPLES])
        };
        let (echo_zc, tone_zc) = (crossings(runs[0]), crossings(runs[1]));
        eprintln!("zero crossings a frame: echo {echo_zc:.1}, tone {tone_zc:.1}");
        assert!((38.0..42.0).contains(&echo_zc), "echo not 1 kHz: {echo_zc}");
        assert!(
            (16.0..19.5).contains(&tone_zc),
            "tone not 440 Hz: {tone_zc}"
        );
        assert!(
            (25..190).contains(&runs[1].1),
            "the 4 s tone (200 frames) is cut by StopAudio after at least 500 ms: {runs:?}"
        );
        assert!(
            texts.iter().any(|t| t == r#"{"action":"clear"}"#),
            "the platform was told to clear: {texts:?}"
        );
        assert!(report.call_ended);
        let s = report.stats;
        assert_eq!((s.clears, s.dtmf_to_bot), (1, 2), "{s:?}");
        assert!(
            s.frames_cleared + runs[1].1 as u64 >= 195,
            "what of the tone did not play was cleared: {s:?}"
        );
    });
}

#[test]
fn a_bad_bot_url_or_rate_is_refused_naming_the_setting() {
    let mut c = BotLinkConfig::new("wss://bot.example.com/media", Dialect::Twilio);
    c.validate().expect("wss:// (TLS)");
    c.url = "http://bot".into();
    let e = c.validate().expect_err("http");
    assert!(e.to_string().contains("expected ws://"), "{e}");
    c.url = "ws://127.0.0.1:9/bot".into();
    c.validate().expect("valid");
    c.dialect = Dialect::Acs;
    c.acs_rate = 44_100;
    let e = c.validate().expect_err("rate");
    assert!(e.to_string().contains("44100"), "{e}");
}
