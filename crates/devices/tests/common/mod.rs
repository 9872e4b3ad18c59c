//! Shared test support: [`devices::testing`] (a real PulseAudio server with the null sink
//! `loop`, and tests re-run in a child process that can reach it).

pub use devices::testing::with_pulse;
