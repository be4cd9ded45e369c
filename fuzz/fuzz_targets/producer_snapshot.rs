#![no_main]
//! Thin libFuzzer wrapper: the logic and the properties live in `strata_fuzz::producer_snapshot`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::producer_snapshot(data));
