//! The jitter-buffer evaluation over every network profile: late loss ≤ 1 % and mean
//! added delay ≤ 1.2 × oracle + 10 ms on each.

use std::time::Duration;

use harness::eval::{self, EvalConfig};
use media_core::codec::Codec;

fn check(codec: Codec, seed: u64) {
    let cfg = EvalConfig {
        duration: Duration::from_secs(20),
        codec,
        seed,
        ..EvalConfig::default()
    };
    let report = eval::run(&cfg).expect("evaluation runs");
    println!("{}", eval::format_table(&report));
    assert_eq!(report.profiles.len(), 8);
    for p in &report.profiles {
        assert!(
            p.late_loss_pct <= 1.0,
            "{}: late loss {:.2} %",
            p.profile,
            p.late_loss_pct
        );
        assert!(
            p.mean_added_delay_ms <= p.delay_limit_ms,
            "{}: mean added delay {:.1} ms > limit {:.1} ms (oracle {:.1} ms)",
            p.profile,
            p.mean_added_delay_ms,
            p.delay_limit_ms,
            p.oracle_delay_ms
        );
        assert!(p.meets_target);
    }
}

#[test]
fn every_profile_meets_the_target_with_pcm() {
    check(Codec::Pcm16k, 1);
}

#[test]
fn every_profile_meets_the_target_with_opus() {
    check(Codec::Opus16k, 2);
}
