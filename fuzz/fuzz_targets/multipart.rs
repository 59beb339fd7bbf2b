//! An upload to `POST /api/attachments/`: the Content-Type header, the multipart body (in
//! chunks of a size the input picks) and the file inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| causerie::testing::fuzz::multipart(input));
