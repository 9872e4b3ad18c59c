//! Every fuzz target for a bounded number of cases (`FUZZ_CASES`, default 100,000
//! each), with every case's peak allocation counted and bounded.
//!
//! A failure prints the seed, the case number and the input, and saves the input
//! under this test's temporary directory; reproduce one case with
//! `FUZZ_SEED=<seed> FUZZ_CASE=<case> cargo test -p fuzz-targets --test fuzz <target>`
//! or give the saved file to `cargo fuzz run <target> <file>` in `fuzz/`.

use fuzz_targets::Target;
use fuzz_targets::alloc::CountingAllocator;
use fuzz_targets::runner::{Config, run};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fn fuzz(target: Target) {
    let config = Config {
        artifacts: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures")),
        ..Config::from_env()
    };
    let report = run(target, &config);
    println!("{report}");
    assert!(
        report.memory_checked,
        "the counting allocator is not installed"
    );
    if let Some(first) = report.failures.first() {
        for failure in &report.failures {
            eprintln!("{failure}\n");
        }
        panic!("{} failure(s); the first: {first}", report.failures.len());
    }
}

/// One `#[test]` per target, named after it.
macro_rules! fuzz_tests {
    ($($name:ident => $variant:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            fuzz(Target::$variant);
        }
    )*};
}

fuzz_targets::with_targets!(fuzz_tests);
