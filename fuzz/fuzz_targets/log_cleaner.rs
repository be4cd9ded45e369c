#![no_main]
//! Thin libFuzzer wrapper: the logic and the properties live in `strata_fuzz::log_cleaner`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::log_cleaner(data));
