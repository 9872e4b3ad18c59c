//! The bot's clear and marks as far as the platform (issue 12 item 2): a bot behind
//! the endpoint queues audio, places a mark after it and later clears; a client
//! playing Twilio (which echoes each mark, as Twilio does once the audio before it
//! played) or ACS (no marks on its wire) sees the mark after that audio and the
//! dialect's clear message; the bot sees `MarkEvent::Played` and `Cleared`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use platform::{FrameDelivery, Pcm16kFrame};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
mod common;

use ws_link::{Dialect, MarkEvent, WsConfig, WsServer};

/// What the bot saw: its mark events and how many frames its clear dropped.
#[derive(Debug, Default, Clone)]
struct BotSaw {
    marks: Vec<MarkEvent>,
    cleared: usize,
}

/// The bot of every call: 500 ms of tone, mark "greeting"; once that played, 5 s
/// of tone, mark "long", and a clear 300 ms later.
async fn bot(mut call: ws_link::IncomingStream, saw: Arc<Mutex<BotSaw>>) {
    let mut tone = Pcm16kFrame::silent();
    for (i, s) in tone.samples_mut().iter_mut().enumerate() {
        *s = ((i as f32 * 0.39).sin() * 6000.0) as i16;
    }
    for _ in 0..25 {
        call.socket.enqueue(&tone).expect("queue");
    }
    call.playback.mark("greeting").expect("mark");
    let first = tokio::time::timeout(Duration::from_secs(10), call.playback.next_mark())
        .await
        .expect("the greeting's mark in time");
    saw.lock().expect("saw").marks.extend(first);
    for _ in 0..250 {
        call.socket.enqueue(&tone).expect("queue");
    }
    call.playback.mark("long").expect("mark");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = call.playback.clear();
    saw.lock().expect("saw").cleared = n;
    let second = tokio::time::timeout(Duration::from_secs(10), call.playback.next_mark())
        .await
        .expect("the long mark's end in time");
    saw.lock().expect("saw").marks.extend(second);
    // Hold the call until the platform closes it.
    while call.socket.next_event().await.is_some() {}
}

/// Each call's dialect and what its bot saw.
type Saws = Arc<Mutex<Vec<(Dialect, Arc<Mutex<BotSaw>>)>>>;

/// What the platform client got: (media messages before each mark, mark name), and
/// the clear messages.
#[derive(Debug, Default)]
struct ClientGot {
    marks: Vec<(usize, String)>,
    clears: Vec<String>,
    media: usize,
}

async fn call(server: &WsServer, dialect: Dialect) -> ClientGot {
    let (ws, _) = tokio_tungstenite::connect_async(server.url(dialect))
        .await
        .expect("handshake");
    let (mut tx, mut rx) = ws.split();
    let start = match dialect {
        Dialect::Twilio => {
            r#"{"event":"start","sequenceNumber":"1","start":{"streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#
        }
        _ => {
            r#"{"kind":"AudioMetadata","audioMetadata":{"subscriptionId":"s1","encoding":"PCM","sampleRate":16000,"channels":1,"length":640}}"#
        }
    };
    tx.send(Message::text(start)).await.expect("start");
    let (echo_tx, mut echo_rx) = mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut got = ClientGot::default();
        while let Some(Ok(Message::Text(t))) = rx.next().await {
            let v: serde_json::Value = serde_json::from_str(&t).expect("JSON");
            match (v["event"].as_str(), v["Kind"].as_str()) {
                (Some("media"), _) | (_, Some("AudioData")) => got.media += 1,
                (Some("mark"), _) => {
                    assert_eq!(v["streamSid"], "MZ1", "{t}");
                    let name = v["mark"]["name"].as_str().expect("name").to_owned();
                    got.marks.push((got.media, name.clone()));
                    // Twilio sends the mark back once the audio before it played.
                    let _ = echo_tx.send(name);
                }
                _ => got.clears.push(t.to_string()),
            }
        }
        got
    });
    // 3 s of silence in bursts of three frames every 60 ms, echoing marks back.
    let mut tick = tokio::time::interval(Duration::from_millis(60));
    for k in 0..150usize {
        if k % 3 == 0 {
            tick.tick().await;
        }
        let m = match dialect {
            Dialect::Twilio => format!(
                r#"{{"event":"media","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{}"}},"streamSid":"MZ1"}}"#,
                k + 1,
                k * 20,
                "/".repeat(213) + "w=="
            ),
            _ => format!(
                r#"{{"kind":"AudioData","audioData":{{"participantRawID":"8:acs:1","data":"{}","silent":true}}}}"#,
                "A".repeat(852) + "AA=="
            ),
        };
        tx.send(Message::text(m)).await.expect("audio");
        while let Ok(name) = echo_rx.try_recv() {
            let echo = format!(
                r#"{{"event":"mark","sequenceNumber":"{k}","streamSid":"MZ1","mark":{{"name":"{name}"}}}}"#
            );
            tx.send(Message::text(echo)).await.expect("mark echo");
        }
    }
    tx.send(Message::Close(None)).await.expect("close");
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("closed")
        .expect("reader")
}

#[test]
fn a_bots_marks_and_clear_reach_the_platform_in_its_dialect() {
    common::rt().block_on(async {
        let (server, mut incoming, _platform) = common::endpoint(WsConfig::default(), |_| {
            FrameDelivery::Callback(Box::new(|_, _| {}))
        })
        .await;
        let saws: Saws = Arc::default();
        let kept = saws.clone();
        tokio::spawn(async move {
            while let Some(c) = incoming.recv().await {
                let saw = Arc::new(Mutex::new(BotSaw::default()));
                kept.lock()
                    .expect("saws")
                    .push((c.info.dialect, saw.clone()));
                tokio::spawn(bot(c, saw));
            }
        });
        for dialect in [Dialect::Twilio, Dialect::Acs] {
            let got = call(&server, dialect).await;
            let saw = saws
                .lock()
                .expect("saws")
                .iter()
                .find(|(d, _)| *d == dialect)
                .map(|(_, s)| s.lock().expect("saw").clone())
                .expect("the bot ran");
            eprintln!("{dialect}: platform got {got:?}; bot saw {saw:?}");
            assert_eq!(
                saw.marks,
                [
                    MarkEvent::Played("greeting".into()),
                    MarkEvent::Cleared("long".into())
                ],
                "{dialect}"
            );
            assert!(saw.cleared >= 200, "{dialect}: the clear dropped {saw:?}");
            let clear = match dialect {
                Dialect::Twilio => r#"{"event":"clear","streamSid":"MZ1"}"#,
                _ => r#"{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}"#,
            };
            assert_eq!(got.clears, [clear], "{dialect}");
            match dialect {
                // The mark went out after the 25 frames queued before it.
                Dialect::Twilio => {
                    assert_eq!(got.marks.len(), 1, "{got:?}");
                    assert_eq!(got.marks[0].1, "greeting");
                    assert!(got.marks[0].0 >= 25, "{got:?}");
                }
                _ => assert!(got.marks.is_empty(), "ACS has no marks: {got:?}"),
            }
        }
    });
}
