#![no_main]
//! See `palisade_fuzz::netlink_ack` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_fuzz::netlink_ack(data));
