//! A REST body sent as form data, read as every body type the API takes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| causerie::testing::fuzz::rest_body("application/x-www-form-urlencoded", bytes));
