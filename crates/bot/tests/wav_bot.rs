//! The WAV bot plays its prompt into a call and records the other side.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bot::WavBot;
use common::*;
use signaling::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wav_bot_plays_its_prompt_and_records_the_far_end() {
    let dir = std::env::temp_dir().join(format!("bot-wav-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prompt = media_core::speech::speech_like(2 * 16_000, 5);
    let mut cfg = config();
    cfg.bot = Arc::new(WavBot::new(prompt.clone(), Some(dir.clone())));
    cfg.far_end.record = true;
    let local = start(cfg).await;
    let call = local.place(Scenario::PstnApp).await.unwrap();
    let session = call.session_id.unwrap();
    // The 2 s prompt goes out paced at 50 frames/s.
    assert!(
        eventually(Duration::from_secs(6), || {
            local
                .bot
                .sessions()
                .snapshot(session)
                .is_some_and(|s| s.counters.frames_sent >= 100 && s.counters.frames_received > 100)
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    local.bot.runtime().hang_up(&call.call_id).await.unwrap();
    let report = local
        .bot
        .sessions()
        .wait_report(session, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.last.counters.frames_sent, 100, "exactly the prompt");
    assert_eq!(report.finish_error, None);
    let far = local
        .far_end
        .wait_report(&call.call_id, Duration::from_secs(5))
        .await
        .unwrap();
    // What the far end heard is the prompt, delayed (PCM, clean network).
    let delay = harness::demo::echo_delay_ms(&prompt, &far.received);
    assert!(
        delay.is_some(),
        "prompt not found in what the far end heard"
    );
    // The bot's recording of the far end exists and has about the call's length.
    let rec = dir.join(format!("{}.received.wav", call.call_id));
    let secs = f64::from(hound::WavReader::open(&rec).unwrap().duration()) / 16_000.0;
    assert!(secs > 1.5, "recording is {secs} s");
    local.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
