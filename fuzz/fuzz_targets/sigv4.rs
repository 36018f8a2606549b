//! The SigV4 `Authorization` parser and verifier: see `keyhold::fuzzing::sigv4`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyhold::fuzzing::sigv4(data));
