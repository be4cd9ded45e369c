#![no_main]
//! Thin libFuzzer wrapper: the logic and the properties live in `strata_fuzz::group_records`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::group_records(data));
