//! A call's audio round-trips through the processor: the peer sends a speech-like
//! signal, an echo bot sends every frame back, the peer checks what returns.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use harness::Peer;
use platform::{AudioEvent, Codec, SendStatus};

async fn echo_call(codec: Codec) -> (harness::PeerReport, EchoSummary, platform::MediaPlatform) {
    // One call at a time: the PCM check is a whole-call, sample-aligned correlation.
    let _serial = CPU_HEAVY.lock().await;
    let platform = start();
    let (blob, socket) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    assert_eq!(blob.mp_uri().scheme(), "quic");
    assert_eq!(platform.session_count(), 1);
    let bot = spawn_echo_bot(socket);
    let peer = Peer::connect(&blob, peer_config(&platform, codec, 4.0, 5.0))
        .await
        .unwrap();
    assert_eq!(peer.codec(), codec);
    let report = peer.finish().await;
    let summary = tokio::time::timeout(Duration::from_secs(5), bot)
        .await
        .unwrap()
        .unwrap();
    (report, summary, platform)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcm_echo_round_trips_sample_aligned() {
    let (report, bot, platform) = echo_call(Codec::Pcm16k).await;
    let delay = report
        .echo_delay(Duration::from_secs(1))
        .expect("echo found");
    let corr = report.echo_correlation(delay, Duration::from_millis(3500));
    eprintln!(
        "PCM echo: latency {:.1} ms, correlation {corr:.4}, bot frames {}, peer stats {:?}",
        delay.as_secs_f64() * 1000.0,
        bot.frames,
        report.stats
    );
    assert!(corr >= 0.95, "correlation {corr}");
    assert!(delay < Duration::from_millis(400), "latency {delay:?}");
    assert!(bot.frames > 150);
    assert_eq!(
        bot.events.first(),
        Some(&AudioEvent::SendStatusChanged(SendStatus::Active))
    );
    assert!(
        matches!(bot.events.last(), Some(AudioEvent::Ended { .. })),
        "{:?}",
        bot.events.last()
    );
    assert!(eventually(Duration::from_secs(2), || platform.session_count() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_echo_keeps_the_energy_envelope() {
    let (report, bot, _platform) = echo_call(Codec::Opus16k).await;
    let delay = report
        .echo_delay(Duration::from_secs(1))
        .expect("echo found");
    let env = report.echo_envelope_correlation(delay, Duration::from_millis(3500));
    let corr = report.echo_correlation(delay, Duration::from_millis(3500));
    eprintln!(
        "Opus echo: latency {:.1} ms, envelope correlation {env:.4}, waveform correlation {corr:.4}, bot frames {}",
        delay.as_secs_f64() * 1000.0,
        bot.frames
    );
    assert!(env >= 0.9, "envelope correlation {env}");
}
