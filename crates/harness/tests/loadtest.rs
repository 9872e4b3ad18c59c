//! The load tool end to end, tiny: 4 PCM calls for 1 s (functional only; the figures
//! are in BENCHMARKS.md), and the libopus bound.

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
