//! Writes every target's seed corpus for libFuzzer: `DIR/<target>/seed-<n>`.
//!
//! `cargo run -p fuzz-targets --example seed_corpus -- fuzz/corpus` (the default
//! directory when none is given), then `cargo +nightly fuzz run <target>` in `fuzz/`
//! starts from them.

use std::path::PathBuf;

use fuzz_targets::Target;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    for target in Target::ALL {
        let target_dir = dir.join(target.name());
        std::fs::create_dir_all(&target_dir)?;
        let seeds = target.seeds();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(target_dir.join(format!("seed-{i:03}")), seed)?;
        }
        println!(
            "{}: {} seeds in {}",
            target,
            seeds.len(),
            target_dir.display()
        );
    }
    Ok(())
}
