//! Shared test support: [`devices::testing`] (a real PulseAudio server with the null sink
//! `loop`, and tests re-run in a child process that can reach it), and [`call`] (a real
//! media processor and a real far end for the bridge's call tests).

pub mod call;

// Not every test binary including `common` runs PulseAudio tests.
#[allow(unused_imports)]
pub use devices::testing::with_pulse;
