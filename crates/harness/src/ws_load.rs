//! The load tool over the platforms' media WebSockets (`loadtest --transport
//! ws-acs|ws-twilio|ws-vonage`): N calls between one processor (the media platform's
//! echo bot behind `ws-link`'s endpoint) and N clients playing the platform (ACS,
//! Twilio or Vonage) over loopback TCP, in one process, and what they cost; the same
//! figures as the QUIC steps ([`crate::loadtest`]) where they apply.
//!
//! The processor (platform, [`ws_link::WsServer`], every stream's task with its
//! `CallMedia` echo: the dialect's decoding and resampling, jitter buffer, paced
//! sender) runs on one tokio worker thread, `ws-proc-<dialect>`: WebSocket calls run on
//! tokio tasks, not on the reactor. The clients (tokio-tungstenite, a 20 ms frame every
//! 20 ms each: Vonage binary L16 16 kHz, ACS base64 PCM 16 kHz in JSON, Twilio base64
//! µ-law 8 kHz in JSON) run on two threads of their own, `ws-clients`, and are not
//! counted. A call *connected* when its client sent frames and heard its speech
//! come back (an echoed frame with sound). After a warm-up, for `duration`:
//!
//! - **processor CPU per call**: the processor thread's CPU / wall time / N;
//! - **late ticks**: the platform's tick totals (ticks > 5 ms late), as for QUIC;
//! - **loss up**: 1 − frames the calls received / 50 per second per call;
//! - **loss down**: 1 − frames the clients received / frames they sent, over the
//!   whole calls (start-up included). The endpoint paces 50 frames a second whether
//!   the bot sent audio or not (silence otherwise) and TCP loses nothing, so this is
//!   what the paced sender fell behind by;
//! - **peer late**: client frames sent > 5 ms after their slot.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{SinkExt, StreamExt};
use platform::{MediaPlatform, MediaPlatformSettings};
use tokio_tungstenite::tungstenite::Message;
use ws_link::{Dialect, PlatformStreams, WsConfig, WsServer};

use crate::loadtest::{LoadtestError, StepResult, err};
use crate::signal::SignalGenerator;
use crate::task_load::{PeerCount, TaskLoad, WARMUP};

/// Echo frames the clients keep sending after the measured window, so that the calls
/// are still full while it is measured.
const TAIL: Duration = Duration::from_millis(500);

/// The stream's first message, as the platform sends it.
fn start_message(d: Dialect) -> &'static str {
    match d {
        Dialect::Acs => {
            r#"{"kind":"AudioMetadata","audioMetadata":{"subscriptionId":"s","encoding":"PCM","sampleRate":16000,"channels":1,"length":640}}"#
        }
        Dialect::Twilio => {
            r#"{"event":"start","start":{"streamSid":"MZ1","callSid":"CA1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#
        }
        Dialect::Vonage => {
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#
        }
    }
}

/// A frame's payload, encoded once: the message is built from it per frame.
enum Payload {
    /// Vonage: the binary message itself.
    Binary(Vec<u8>),
    /// ACS and Twilio: the base64 audio.
    Base64(String),
}

/// The source's 20 ms frames as `d` carries them.
fn payloads(d: Dialect, source: &[i16]) -> Vec<Payload> {
    source
        .chunks_exact(320)
        .map(|f| {
            let le = || f.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>();
            match d {
                Dialect::Vonage => Payload::Binary(le()),
                Dialect::Acs => Payload::Base64(B64.encode(le())),
                // 16 kHz to 8 kHz by dropping every other sample: the load, not the
                // sound, is measured here.
                Dialect::Twilio => Payload::Base64(
                    B64.encode(
                        f.iter()
                            .step_by(2)
                            .map(|&s| ws_link::mulaw::encode(s))
                            .collect::<Vec<u8>>(),
                    ),
                ),
            }
        })
        .collect()
}

/// Frame `k` as the platform sends it.
fn frame_message(d: Dialect, k: u64, payload: &Payload) -> Message {
    match (d, payload) {
        (_, Payload::Binary(b)) => Message::binary(b.clone()),
        (Dialect::Twilio, Payload::Base64(b)) => Message::text(format!(
            r#"{{"event":"media","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{b}"}},"streamSid":"MZ1"}}"#,
            k + 1,
            k * 20
        )),
        (_, Payload::Base64(b)) => Message::text(format!(
            r#"{{"kind":"AudioData","audioData":{{"timestamp":"2026-12-02T00:00:00Z","participantRawID":"8:acs:1","data":"{b}","silent":false}}}}"#
        )),
    }
}

/// Whether a message from the endpoint carries a frame.
fn is_echo(d: Dialect, m: &Message) -> bool {
    match (d, m) {
        (Dialect::Vonage, Message::Binary(_)) => true,
        (Dialect::Acs, Message::Text(t)) => t.contains("AudioData"),
        (Dialect::Twilio, Message::Text(t)) => t.contains(r#""media""#),
        _ => false,
    }
}

/// Whether a frame from the endpoint carries sound (a sample louder than -36 dBFS).
fn is_voiced(d: Dialect, m: &Message) -> bool {
    let loud = |s: i16| s.unsigned_abs() > 500;
    let base64_at = |t: &str, key: &str| -> Option<Vec<u8>> {
        let v: serde_json::Value = serde_json::from_str(t).ok()?;
        B64.decode(v.pointer(key)?.as_str()?).ok()
    };
    match (d, m) {
        (Dialect::Vonage, Message::Binary(b)) => b
            .chunks_exact(2)
            .any(|s| loud(i16::from_le_bytes([s[0], s[1]]))),
        (Dialect::Acs, Message::Text(t)) => base64_at(t, "/AudioData/Data").is_some_and(|b| {
            b.chunks_exact(2)
                .any(|s| loud(i16::from_le_bytes([s[0], s[1]])))
        }),
        (Dialect::Twilio, Message::Text(t)) => base64_at(t, "/media/payload")
            .is_some_and(|b| b.iter().any(|&u| loud(ws_link::mulaw::decode(u)))),
        _ => false,
    }
}

/// One client's call: connect, start, send `frames` frames paced at 20 ms while
/// counting the echo, close.
async fn client_call(
    url: String,
    dialect: Dialect,
    frames: u64,
    source: Arc<Vec<Payload>>,
) -> Result<PeerCount, String> {
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::text(start_message(dialect)))
        .await
        .map_err(|e| e.to_string())?;
    let reader = tokio::spawn(async move {
        // Decoded until the first frame with sound (the endpoint sends silence when it
        // has nothing): little client work.
        let (mut echoed, mut voiced) = (0u64, false);
        while let Some(Ok(m)) = rx.next().await {
            if is_echo(dialect, &m) {
                echoed += 1;
                voiced = voiced || is_voiced(dialect, &m);
            }
        }
        (echoed, voiced)
    });
    let mut run = PeerCount::default();
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for k in 0..frames {
        let slot = tick.tick().await;
        if slot.elapsed() > Duration::from_millis(5) {
            run.late += 1;
        }
        let payload = &source[k as usize % source.len()];
        if tx.send(frame_message(dialect, k, payload)).await.is_err() {
            break;
        }
        run.sent += 1;
    }
    // The echo runs a few frames behind (jitter buffer, paced sender).
    tokio::time::sleep_until(start + Duration::from_millis(20 * frames + 300)).await;
    let _ = tx.send(Message::Close(None)).await;
    let voiced;
    (run.received, voiced) = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    run.connected = run.sent > 0 && voiced;
    Ok(run)
}

/// Runs one step of `calls` calls in `dialect` (PCM 16 kHz in the platform) measured
/// for `duration`. Call outside any tokio runtime.
pub fn run_ws_step(
    dialect: Dialect,
    calls: usize,
    duration: Duration,
) -> Result<StepResult, LoadtestError> {
    let load = TaskLoad::new(&format!("ws-proc-{}", dialect.name()), "ws-clients", 2)?;
    let (server, platform) = load.proc_rt.block_on(async {
        let mut settings = MediaPlatformSettings::dev_loopback();
        settings.limits.max_sessions = calls + 16;
        settings.reactor_threads = 1;
        let platform = Arc::new(MediaPlatform::start(settings).map_err(err)?);
        let (streams, incoming) =
            PlatformStreams::new(platform.clone(), |_: &ws_link::StreamInfo| TaskLoad::echo());
        let addr = "127.0.0.1:0".parse().map_err(err)?;
        let server = WsServer::bind(addr, WsConfig::default(), Arc::new(streams))
            .await
            .map_err(err)?;
        load.keep_calls(incoming, |call| call.socket);
        Ok::<_, LoadtestError>((server, platform))
    })?;
    let source = Arc::new(payloads(
        dialect,
        &SignalGenerator::speech(11).take_seconds(2.0),
    ));
    let frames = ((WARMUP + duration + TAIL).as_secs_f64() * 50.0) as u64;
    let url = server.url(dialect);
    let clients = load.dial(calls, |_| {
        client_call(url.clone(), dialect, frames, source.clone())
    });
    let step = load.measure(&platform, clients, duration);
    load.proc_rt.block_on(async move {
        server.shutdown().await;
    });
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame 0 of `source` as the endpoint sends it back.
    fn as_endpoint_sends(d: Dialect, source: &[i16]) -> Message {
        match payloads(d, source).swap_remove(0) {
            Payload::Binary(b) => Message::binary(b),
            Payload::Base64(b) if d == Dialect::Acs => Message::text(format!(
                r#"{{"Kind":"AudioData","AudioData":{{"Data":"{b}"}},"StopAudio":null}}"#
            )),
            Payload::Base64(b) => Message::text(format!(
                r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{b}"}}}}"#
            )),
        }
    }

    #[test]
    fn every_dialect_tells_speech_from_silence() {
        let tone: Vec<i16> = (0..640)
            .map(|i| ((i as f64 * 0.3).sin() * 3000.0) as i16)
            .collect();
        let quiet = vec![0i16; 640];
        for d in Dialect::ALL {
            assert_eq!(payloads(d, &tone).len(), 2);
            let m = as_endpoint_sends(d, &tone);
            assert!(is_echo(d, &m) && is_voiced(d, &m), "{d:?}");
            let m = as_endpoint_sends(d, &quiet);
            assert!(is_echo(d, &m) && !is_voiced(d, &m), "{d:?}");
        }
        let dtmf = Message::text(r#"{"event":"websocket:dtmf"}"#);
        assert!(!is_echo(Dialect::Vonage, &dtmf));
    }
}
