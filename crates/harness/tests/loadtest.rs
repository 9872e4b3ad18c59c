//! The load tool end to end, tiny: 4 PCM calls for 1 s (functional only; the figures
//! are in BENCHMARKS.md), and the libopus bound; 3 calls per platform media WebSocket
//! dialect.

use std::time::Duration;

#[test]
fn loadtest_smoke() {
    let cfg = harness::loadtest::LoadtestConfig {
        calls: 4,
        duration: Duration::from_secs(1),
        ..Default::default()
    };
    let report = harness::loadtest::run(&cfg, |_| {}).expect("runs");
    eprintln!("{}", report.to_text());
    assert_eq!(report.steps.len(), 1);
    let s = report.steps[0];
    assert_eq!(s.connected, 4);
    assert!(s.processor_cpu_per_call_pct > 0.0, "{s:?}");
    assert!(s.reactor.turns_per_s > 0.0, "{s:?}");
    assert!(s.loss_down_pct < 50.0 && s.loss_up_pct < 50.0, "{s:?}");
    assert!(
        s.udp_per_media_down >= 1.0 && s.udp_per_media_up >= 1.0,
        "every media datagram is a UDP packet at least: {s:?}"
    );
    let b = harness::loadtest::measure_opus(&Default::default(), 200, 2).expect("opus");
    assert!(b.encode_us > 0.0 && b.calls_per_core > 0.0);
}

/// A tiny WebSocket load in `dialect` (3 calls, 1 s measured): every call connects and
/// hears its speech come back, frames go both ways at about 50 a second, the figures
/// are there (no timing thresholds).
fn ws_smoke(dialect: ws_link::Dialect) {
    let s = harness::ws_load::run_ws_step(dialect, 3, Duration::from_secs(1)).expect("runs");
    eprintln!("{dialect}: {s:?}");
    assert_eq!((s.calls, s.connected), (3, 3), "{s:?}");
    assert!(s.wall_s >= 0.9, "{s:?}");
    // `/proc` counts CPU in 10 ms steps: a fast build may see none at 3 calls.
    assert!(
        s.processor_cpu_per_call_pct.is_finite() && s.processor_cpu_per_call_pct >= 0.0,
        "{s:?}"
    );
    assert!(s.loss_up_pct < 50.0, "the calls received frames: {s:?}");
    assert!(s.loss_down_pct < 50.0, "the clients got their echo: {s:?}");
    assert!((0.0..=100.0).contains(&s.late_ticks_pct), "{s:?}");
}

#[test]
fn ws_acs_load_smoke() {
    ws_smoke(ws_link::Dialect::Acs);
}

#[test]
fn ws_twilio_load_smoke() {
    ws_smoke(ws_link::Dialect::Twilio);
}

#[test]
fn ws_vonage_load_smoke() {
    ws_smoke(ws_link::Dialect::Vonage);
}
