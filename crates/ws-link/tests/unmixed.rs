//! ACS unmixed audio end to end: a real WebSocket client (tokio-tungstenite) plays ACS
//! audio streaming with `audioChannelType: "unmixed"` against the endpoint over
//! 127.0.0.1, two participants on 440 and 880 Hz interleaved on one socket in TCP
//! bursts, plus a quiet mix; the bot's frames carry one unmixed buffer per participant,
//! each MSI names its `participantRawID`, and each buffer carries its own tone.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::SinkExt;
use platform::{AudioStreams, FrameDelivery};
use tokio_tungstenite::tungstenite::Message;
use ws_link::{Dialect, WsConfig};

const A: &str = "8:acs:resource_00000000-0000-0000-0000-00000000000a";
const B: &str = "8:acs:resource_00000000-0000-0000-0000-00000000000b";
/// Frames each participant sends (1.5 s).
const FRAMES: usize = 75;

/// Per MSI: (buffers, energy at 440 Hz, energy at 880 Hz), and the mix's buffers.
#[derive(Default)]
struct Heard {
    by_msi: HashMap<u32, (u32, f64, f64)>,
    frames: u32,
    frames_with_two: u32,
    /// Energy at 440 Hz of the mix.
    mix_440: f64,
}

/// Goertzel power of `hz` in 320 samples at 16 kHz.
fn power(samples: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 16_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

fn tone(hz: f64, k: usize, amp: f64) -> Vec<u8> {
    (0..320)
        .flat_map(|i| {
            let t = (k * 320 + i) as f64 / 16_000.0;
            (((2.0 * std::f64::consts::PI * hz * t).sin() * amp) as i16).to_le_bytes()
        })
        .collect()
}

fn audio(who: Option<&str>, pcm: &[u8], k: usize) -> Message {
    let ms = 36_000 + k as u64 * 20;
    let ts = format!(
        "2024-11-04T10:{:02}:{:02}.{:03}Z",
        ms / 60_000,
        (ms / 1000) % 60,
        ms % 1000
    );
    let who = who.map_or("null".to_owned(), |w| format!("\"{w}\""));
    Message::text(format!(
        r#"{{"kind":"AudioData","audioData":{{"timestamp":"{ts}","participantRawID":{who},"data":"{}","silent":false}}}}"#,
        B64.encode(pcm)
    ))
}

#[test]
fn two_acs_participants_reach_the_bot_as_their_own_unmixed_streams() {
    let rt = common::rt();
    rt.block_on(async {
        let heard: Arc<Mutex<Heard>> = Arc::default();
        let seen = heard.clone();
        let config = WsConfig {
            acs_audio: AudioStreams::mixed_and_unmixed(4),
            ..WsConfig::default()
        };
        let (server, mut incoming, _platform) = common::endpoint(config, move |_| {
            let seen = seen.clone();
            FrameDelivery::Callback(Box::new(move |frame, _tx| {
                let mut h = seen.lock().expect("heard");
                h.frames += 1;
                h.mix_440 += power(frame.samples.samples(), 440.0);
                let bufs = frame.unmixed.as_slice();
                if bufs.len() == 2 {
                    h.frames_with_two += 1;
                }
                for b in bufs {
                    let s = b.samples.samples();
                    let e = h.by_msi.entry(b.msi).or_default();
                    e.0 += 1;
                    e.1 += power(s, 440.0);
                    e.2 += power(s, 880.0);
                }
            }))
        })
        .await;
        let (mut ws, _) = tokio_tungstenite::connect_async(server.url(Dialect::Acs))
            .await
            .expect("connect");
        ws.send(Message::text(
            r#"{"kind":"AudioMetadata","audioMetadata":{"subscriptionId":"sub-unmixed","encoding":"PCM","sampleRate":16000,"channels":1,"length":640}}"#,
        ))
        .await
        .expect("metadata");
        let call = tokio::time::timeout(Duration::from_secs(5), incoming.recv())
            .await
            .expect("call in time")
            .expect("call");
        assert_eq!(call.info.audio, AudioStreams::mixed_and_unmixed(4));
        // Bursts of 100 ms (5 frames of each participant and of a quiet mix), as TCP
        // delivers them.
        for burst in 0..FRAMES / 5 {
            for k in burst * 5..burst * 5 + 5 {
                ws.send(audio(Some(A), &tone(440.0, k, 8000.0), k))
                    .await
                    .expect("a");
                ws.send(audio(Some(B), &tone(880.0, k, 8000.0), k))
                    .await
                    .expect("b");
                ws.send(audio(None, &tone(440.0, k, 100.0), k))
                    .await
                    .expect("mix");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The jitter buffers' delay plays out.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let names = call.participants.all();
        let _ = ws.close(None).await;
        drop(call.socket);
        let h = heard.lock().expect("heard");
        assert_eq!(names.len(), 2, "participants named: {names:?}");
        let msi_of = |raw: &str| {
            names
                .iter()
                .find(|(_, id)| id == raw)
                .map(|(m, _)| *m)
                .expect("named")
        };
        let (a, b) = (msi_of(A), msi_of(B));
        assert_ne!(a, b);
        assert!(a != 0 && b != 0, "MSI 0 is the mix");
        assert_eq!(call.participants.raw_id(a).as_deref(), Some(A));
        let db = |e: &(u32, f64, f64)| 10.0 * (e.1 / e.2).log10();
        let ea = h.by_msi.get(&a).copied().expect("A's buffers");
        let eb = h.by_msi.get(&b).copied().expect("B's buffers");
        println!(
            "frames {} (two buffers in {}); A: {} buffers, 440 over 880 {:+.1} dB; B: {} buffers, {:+.1} dB",
            h.frames,
            h.frames_with_two,
            ea.0,
            db(&ea),
            eb.0,
            db(&eb)
        );
        // Each participant's buffers carry its own tone, far above the other's (about
        // 32 dB here: the limit is the leakage of 20 ms rectangular windows, not
        // crosstalk).
        assert!(db(&ea) > 20.0, "A: 440 over 880 {:.1} dB", db(&ea));
        assert!(db(&eb) < -20.0, "B: 440 over 880 {:.1} dB", db(&eb));
        // Most of the 1.5 s of each reached the bot (start-up and the end aside).
        assert!(ea.0 >= 60 && eb.0 >= 60, "buffers: A {} B {}", ea.0, eb.0);
        assert!(h.by_msi.keys().all(|m| *m == a || *m == b));
        // The mix (messages naming nobody) plays as the frames' samples: its quiet
        // 440 Hz sits 38 dB under A's.
        let mix_db = 10.0 * (h.mix_440 / ea.1).log10();
        println!("mix 440 Hz {mix_db:+.1} dB against A's");
        assert!((-44.0..-32.0).contains(&mix_db), "mix {mix_db:.1} dB");
    });
}
