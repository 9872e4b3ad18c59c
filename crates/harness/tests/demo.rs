//! `harness::demo` end to end for ~3 s over the `wifi` profile: the report, the plot and
//! the WAVs exist, and the statistics are sane.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use harness::DemoConfig;
use media_core::sim::Profile;
use platform::Codec;
use signaling::Scenario;

fn wav_seconds(path: &std::path::Path) -> f64 {
    let r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().sample_rate, 16_000);
    assert_eq!(r.spec().channels, 1);
    f64::from(r.duration()) / 16_000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_three_seconds_over_wifi() {
    let out = std::env::temp_dir().join(format!("bot-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let secs = 3.0;
    let config = DemoConfig {
        scenario: Scenario::P2pVoipApp,
        profile: Profile::named("wifi").unwrap(),
        duration: Duration::from_secs_f64(secs),
        codec: Codec::Opus16k,
        out: out.clone(),
        seed: 7,
        speech: None,
        print: true,
        tap: None,
    };
    let t0 = std::time::Instant::now();
    let report = harness::demo::run(config).await.unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(15), "demo took {took:?}");

    // Files.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["scenario"]["name"], "p2p-voip-app");
    assert_eq!(json["profile"]["name"], "wifi");
    assert!(
        json["series"].as_array().unwrap().len() >= 2,
        "{}",
        json["series"]
    );
    assert_eq!(json["call"]["finalState"], "terminated");
    let png = std::fs::read(out.join("plot.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 5_000, "plot.png is {} bytes", png.len());
    for name in [
        "farend_sent.wav",
        "bot_received.wav",
        "bot_sent.wav",
        "farend_received.wav",
    ] {
        let s = wav_seconds(&out.join(name));
        assert!(s > secs * 0.7 && s < secs + 3.0, "{name}: {s} s");
    }

    // Statistics: ~50 frames/s each way, loss within the wifi profile (1 % random).
    let expected = 50.0 * secs;
    let within = |n: u64| (n as f64) > expected * 0.75 && (n as f64) < expected * 1.6;
    assert!(report.established);
    assert!(within(report.bot.frames_received), "{:?}", report.bot);
    assert!(within(report.bot.frames_sent), "{:?}", report.bot);
    assert!(within(report.far_end.frames_sent), "{:?}", report.far_end);
    assert!(
        within(report.far_end.packets_received),
        "{:?}",
        report.far_end
    );
    assert!(report.loss_pct < 6.0, "loss {}", report.loss_pct);
    assert!(report.far_end.uplink.lost as f64 <= 0.06 * report.far_end.uplink.sent as f64);
    assert!(report.mean_jb_delay_ms > 0.0 && report.mean_jb_delay_ms < 300.0);
    assert!(report.conceal_pct < 30.0, "conceal {}", report.conceal_pct);
    // Hung up by the bot (the service's `terminated` may overtake the bot's teardown).
    assert!(
        report.teardown.contains("hung up") || report.teardown.contains("DELETE"),
        "{}",
        report.teardown
    );
    let _ = std::fs::remove_dir_all(&out);
}
