//! libFuzzer entry point of the `graph_call` target (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::graph_call(data));
