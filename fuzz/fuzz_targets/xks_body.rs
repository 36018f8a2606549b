//! The XKS request body parsers and validation: see `keyhold::fuzzing::xks_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyhold::fuzzing::xks_body(data));
