//! # fuzz-targets: every parser of untrusted input, fuzzed
//!
//! This crate's job: feed bytes an attacker (or a broken peer) controls to each of the
//! project's parsers and check that nothing panics, memory stays bounded, errors quote
//! input only as bounded, printable excerpts, and what parses survives a round trip.
//! It is run two ways from the same target functions:
//!
//! - in `cargo test` (stable, CI): `tests/fuzz.rs` runs every target for
//!   [`runner::DEFAULT_CASES`] cases from a fixed seed, with a counting global
//!   allocator ([`alloc::CountingAllocator`]) checking each case's peak memory;
//! - under libFuzzer (nightly, local): `fuzz/` at the repository root has one
//!   `cargo fuzz` binary per target calling the function of the same name.
//!
//! ## Targets
//!
//! | function | parser | properties beyond no panic |
//! |---|---|---|
//! | [`blob`] | `media_blob::MediaSessionConfig::{parse, from_embedded, from_value}` | errors bounded and printable; text, embedded and mpUri round trips; the join the blob describes is admitted |
//! | [`graph_call`] | `signaling::Call::from_json`, `create_call_problems`, `validate`, `classify`, `summarize` | problems bounded and printable; value round trip exact, text round trip equal |
//! | [`notification`] | `signaling::CommsNotifications::from_json`, then per-call `CallStateMachine`s as the `graph` runtime drives them | round trips; ignore reasons bounded and printable; roster ids unique |
//! | [`datagram`] | `transport::wire::decode` | `encode(decode(x)) == x` (unknown flag bits as 0); only kinds 0 (mixed) and 1 (unmixed, naming an MSI) decode |
//! | [`control`] | `transport::wire::ControlDecoder`, pushed in chunks split as the input says | same messages whole or in chunks; `decode(encode(m)) == m`; `Join::choose_codec` |
//! | [`jwt`] | `graph::JwtValidator` with keys from a loopback server | errors bounded and printable; only the allowed tenant and issuers pass |
//! | [`ws`] | `ws_link::dialect::StreamParser` (ACS, Twilio, Vonage), then `InboundAudio` and the echo out | close codes and details bounded and printable; whole samples; 20 ms packets; this side's messages valid |
//!
//! SDP offers get a target when their parser lands.
//!
//! ## Data flow
//!
//! ```text
//!  Target::seeds() ──> Mutator (mutate.rs: byte and JSON-aware edits, seeded RNG)
//!        │                      │ case i = seeds[i], then mutate(seed, stream i)
//!        v                      v
//!  runner::run ──> alloc::measure(catch_unwind(Target::run(input)))
//!        │            │  parser ──> checks (check.rs) ──> panic on a broken property
//!        v            v
//!  Report (cases, accepted, time, peak memory)  +  Failure (seed, case, input, problem)
//!
//!  fuzz/fuzz_targets/<name>.rs ──> libFuzzer ──> fuzz_targets::<name>(data)
//! ```
//!
//! ## Memory bounds
//!
//! Each case's peak allocation on its thread must stay below
//! [`Target::memory_bound`]: `256 * input length + 1 MiB` for the JSON targets and
//! the JWT, `+ 2 MiB` for WebSocket streams (a stream's resamplers take about 0.6 MB
//! when it starts), and zero for datagrams (decoding and encoding never allocate). A parsed
//! JSON document costs up to ~40 bytes of `serde_json::Value` per input byte and the
//! targets hold it a few times over; at 100,000 cases per target the largest peak
//! was 798 KB (ws, a 33 KB stream) and no case came above 29 % of its bound.
//!
//! ## Example
//!
//! ```
//! use fuzz_targets::Target;
//! use fuzz_targets::runner::{Config, run};
//!
//! // Any bytes: no panic.
//! fuzz_targets::datagram(b"\x01\x00\x01\x00garbage");
//! fuzz_targets::blob(br#"{"mpUri":"quic://h:1/x"}"#);
//!
//! // A short reproducible run, as the tests do (100,000 cases there).
//! let config = Config { cases: 200, seed: 7, only_case: None, artifacts: None };
//! let report = run(Target::Datagram, &config);
//! assert_eq!(report.cases, 200);
//! assert!(report.failures.is_empty(), "{}", report.failures[0]);
//! ```

/// Calls the macro `$m` with every target as `name => Variant` pairs: the one list
/// the public functions and the tests' `#[test]`s are generated from.
#[macro_export]
macro_rules! with_targets {
    ($m:ident) => {
        $m! {
            blob => Blob,
            graph_call => GraphCall,
            notification => Notification,
            datagram => Datagram,
            control => Control,
            jwt => Jwt,
            ws => Ws,
        }
    };
}

pub mod alloc;
pub mod check;
pub mod mutate;
pub mod runner;
mod targets;

pub use targets::{Target, Verdict, blob, control, datagram, graph_call, jwt, notification, ws};
