//! libFuzzer entry point of the `datagram` target (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::datagram(data));
