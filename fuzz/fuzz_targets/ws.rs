//! libFuzzer entry point of the `ws` target (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::ws(data));
