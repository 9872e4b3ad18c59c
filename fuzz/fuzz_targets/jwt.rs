//! libFuzzer entry point of the `jwt` target (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::jwt(data));
