#![no_main]
//! See `palisade_fuzz::loader` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_fuzz::loader(data));
