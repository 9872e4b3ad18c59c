//! The PESQ-WB scorer (Python `pesq` through `harness::pesq`) and the codec ceiling of
//! the evaluation: a few seconds of audio, so that CI checks the whole chain cheaply.

use std::time::Duration;

use harness::eval::{self, EvalConfig};
use media_core::codec::Codec;

#[test]
fn pesq_scores_a_short_evaluation_and_its_ceiling() {
    let dir = std::env::temp_dir().join(format!("harness-pesq-{}", std::process::id()));
    let cfg = EvalConfig {
        profiles: vec!["clean".into(), "loss5-jitter40".into()],
        duration: Duration::from_secs(4),
        codec: Codec::Pcm16k,
        out_dir: Some(dir.clone()),
        ceiling: true,
        ..EvalConfig::default()
    };
    let mut report = eval::run(&cfg).expect("evaluation runs");
    harness::pesq::score_report(&mut report).expect("scripts/install-deps.sh installs pesq");
    let table = eval::format_pesq_table(&report);
    println!("{table}");
    let _ = std::fs::remove_dir_all(&dir);
    let clean = &report.profiles[0];
    let lossy = &report.profiles[1];
    // PCM on a clean path is bit-exact: PESQ-WB's maximum, and its own ceiling.
    assert!(clean.pesq.expect("scored") > 4.6, "{table}");
    assert!(clean.ceiling_pesq.expect("scored") > 4.6, "{table}");
    let (now, ceiling) = (
        lossy.pesq.expect("scored"),
        lossy.ceiling_pesq.expect("scored"),
    );
    assert!(now < 4.5 && ceiling < 4.5, "loss costs quality: {table}");
    assert!(now > 1.5, "{table}");
}
