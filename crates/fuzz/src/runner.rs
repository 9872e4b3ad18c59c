//! The bounded, reproducible fuzz loop `cargo test` runs: seeds first, then mutated
//! seeds, each case under `catch_unwind` and the allocation counter.
//!
//! Case `i` of seed `s` is drawn from a ChaCha8 generator seeded with `s` on stream
//! `i`, so one case is reproduced without the ones before it:
//! `FUZZ_SEED=s FUZZ_CASE=i cargo test -p fuzz-targets --test fuzz <target>`.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::alloc;
use crate::mutate::Mutator;
use crate::targets::{Target, Verdict};

/// Cases per target when `FUZZ_CASES` is not set.
pub const DEFAULT_CASES: u64 = 100_000;

/// Seed when `FUZZ_SEED` is not set: CI runs the same cases every time.
pub const DEFAULT_SEED: u64 = 0x5eed_f022;

/// The run stops after this many failures.
const MAX_FAILURES: usize = 3;

/// Most input bytes quoted in a failure message (the whole input goes to a file).
const QUOTED_INPUT_BYTES: usize = 2048;

/// How many cases to run, from which seed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cases per target (the seeds count among them).
    pub cases: u64,
    /// Seed of the case generator.
    pub seed: u64,
    /// Run only this case (to reproduce a failure).
    pub only_case: Option<u64>,
    /// Where a failing input is written in full, if anywhere.
    pub artifacts: Option<PathBuf>,
}

impl Config {
    /// From the environment: `FUZZ_CASES` (default [`DEFAULT_CASES`]), `FUZZ_SEED`
    /// (decimal or `0x` hex; default [`DEFAULT_SEED`]), `FUZZ_CASE` (one case only).
    pub fn from_env() -> Self {
        let number = |name: &str| {
            let text = std::env::var(name).ok()?;
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            match parsed {
                Ok(n) => Some(n),
                Err(e) => panic!("{name}={text:?}: not a number ({e})"),
            }
        };
        Config {
            cases: number("FUZZ_CASES").unwrap_or(DEFAULT_CASES),
            seed: number("FUZZ_SEED").unwrap_or(DEFAULT_SEED),
            only_case: number("FUZZ_CASE"),
            artifacts: None,
        }
    }
}

/// One case that broke a property: a panic or too much memory.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The target.
    pub target: Target,
    /// The generator's seed.
    pub seed: u64,
    /// The case number.
    pub case: u64,
    /// The input.
    pub input: Vec<u8>,
    /// What went wrong.
    pub problem: String,
    /// Where the input was written, if it was.
    pub saved_to: Option<PathBuf>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} case {} (reproduce: FUZZ_SEED={:#x} FUZZ_CASE={} cargo test -p fuzz-targets --test fuzz {}): {}",
            self.target, self.case, self.seed, self.case, self.target, self.problem
        )?;
        if let Some(path) = &self.saved_to {
            writeln!(f, "  input saved to {}", path.display())?;
        }
        write!(
            f,
            "  input ({} bytes): {}",
            self.input.len(),
            escape_bytes(&self.input, QUOTED_INPUT_BYTES)
        )
    }
}

/// What one target's run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: Target,
    /// Cases run.
    pub cases: u64,
    /// Cases the parser accepted.
    pub accepted: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Longest input.
    pub max_input: usize,
    /// Largest peak allocation of a case, bytes, with that case's input length.
    pub max_peak: (usize, usize),
    /// The case closest to its memory bound: its peak as a fraction of the bound, the
    /// peak and the input length.
    pub closest_to_bound: (f64, usize, usize),
    /// Whether allocations were counted (a `CountingAllocator` is installed).
    pub memory_checked: bool,
    /// Cases that broke a property.
    pub failures: Vec<Failure>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} cases ({} accepted) in {:.1} s; longest input {} B; peak {} B (input {} B); \
             closest to its bound {:.0} % (peak {} B, input {} B); memory {}; {} failure(s)",
            self.target,
            self.cases,
            self.accepted,
            self.elapsed.as_secs_f64(),
            self.max_input,
            self.max_peak.0,
            self.max_peak.1,
            100.0 * self.closest_to_bound.0,
            self.closest_to_bound.1,
            self.closest_to_bound.2,
            if self.memory_checked {
                "checked"
            } else {
                "NOT counted"
            },
            self.failures.len()
        )
    }
}

/// Runs `config.cases` cases of `target` (or only `config.only_case`): the seeds as
/// they are, then mutated seeds. Stops after a few failures.
pub fn run(target: Target, config: &Config) -> Report {
    let mutator = Mutator::new(target.seeds(), target.max_len());
    let seeds = mutator.corpus().len() as u64;
    assert!(seeds > 0, "{target}: no seeds");
    // Lazy set-up (a key server, a runtime) is not the parser's memory.
    let _ = catch_unwind(|| target.run(&mutator.corpus()[0]));
    let memory_checked = alloc::is_counting();
    let mut report = Report {
        target,
        cases: 0,
        accepted: 0,
        elapsed: Duration::ZERO,
        max_input: 0,
        max_peak: (0, 0),
        closest_to_bound: (0.0, 0, 0),
        memory_checked,
        failures: Vec::new(),
    };
    let started = Instant::now();
    let range = match config.only_case {
        Some(i) => i..i + 1,
        None => 0..config.cases,
    };
    for case in range {
        let input = match usize::try_from(case)
            .ok()
            .and_then(|i| mutator.corpus().get(i))
        {
            Some(seed) => seed.clone(),
            None => {
                let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
                rng.set_stream(case);
                mutator.case(&mut rng)
            }
        };
        let (outcome, peak) =
            alloc::measure(|| catch_unwind(AssertUnwindSafe(|| target.run(&input))));
        report.cases += 1;
        report.max_input = report.max_input.max(input.len());
        let bound = target.memory_bound(input.len());
        // A panic's backtrace costs tens of MiB: only completed cases count.
        if outcome.is_ok() {
            if peak > report.max_peak.0 {
                report.max_peak = (peak, input.len());
            }
            let fraction = peak as f64 / bound as f64;
            if fraction > report.closest_to_bound.0 {
                report.closest_to_bound = (fraction, peak, input.len());
            }
        }
        let problem = match outcome {
            Ok(Verdict::Accepted) => {
                report.accepted += 1;
                None
            }
            Ok(Verdict::Rejected) => None,
            Err(panic) => Some(format!("panicked: {}", panic_message(panic.as_ref()))),
        };
        let problem = problem.or_else(|| {
            (memory_checked && peak > bound).then(|| {
                format!("held {peak} bytes at its peak, more than the bound of {bound} bytes")
            })
        });
        if let Some(problem) = problem {
            let saved_to = config
                .artifacts
                .as_ref()
                .and_then(|dir| save(dir, target, config.seed, case, &input));
            report.failures.push(Failure {
                target,
                seed: config.seed,
                case,
                input,
                problem,
                saved_to,
            });
            if report.failures.len() >= MAX_FAILURES {
                break;
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// Writes a failing input to `dir/<target>-<seed>-<case>.bin`; its path, if written.
fn save(
    dir: &std::path::Path,
    target: Target,
    seed: u64,
    case: u64,
    input: &[u8],
) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{target}-{seed:x}-{case}.bin"));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(a panic without a message)");
    media_blob::bounded(text, 2000)
}

/// `input` as a Rust byte-string literal, at most `max` bytes of it.
pub fn escape_bytes(input: &[u8], max: usize) -> String {
    let shown = &input[..input.len().min(max)];
    let mut out = String::with_capacity(shown.len() + 8);
    out.push_str("b\"");
    for &b in shown {
        out.extend(std::ascii::escape_default(b).map(char::from));
    }
    out.push('"');
    if shown.len() < input.len() {
        out.push_str(&format!(" … ({} bytes)", input.len()));
    }
    out
}
