//! A REST body sent as JSON, read as every body type the API takes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| causerie::testing::fuzz::rest_body("application/json", bytes));
