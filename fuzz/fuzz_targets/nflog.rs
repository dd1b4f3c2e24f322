#![no_main]
//! See `palisade_fuzz::nflog` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_fuzz::nflog(data));
