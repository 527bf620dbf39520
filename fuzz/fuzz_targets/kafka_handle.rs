#![no_main]
//! See sluice_host::fuzz_api::kafka_handle and docs/FUZZING.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_host::fuzz_api::kafka_handle(data));
