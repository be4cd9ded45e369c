#![no_main]
//! Thin libFuzzer wrapper: the logic and the properties live in `strata_fuzz::record_codec`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::record_codec(data));
