#![no_main]
//! See `palisade_fuzz::engine_template` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_fuzz::engine_template(data));
