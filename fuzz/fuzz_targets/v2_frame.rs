//! A v2 user-socket text frame: any UTF-8 text a client may send.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| causerie::testing::fuzz::v2_frame(text));
