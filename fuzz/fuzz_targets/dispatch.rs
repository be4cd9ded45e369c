#![no_main]
//! Thin libFuzzer wrapper: the logic and the properties live in `strata_fuzz::dispatch`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::dispatch::dispatch_frame(data));
