#![no_main]
//! Thin libFuzzer wrapper: the logic and the properties live in `strata_fuzz::quorum_step`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::quorum_step(data));
