#![no_main]
//! See sluice_host::fuzz_api::wire_batch and docs/FUZZING.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_host::fuzz_api::wire_batch(data));
