//! The XKS path parser: see `keyhold::fuzzing::xks_path`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyhold::fuzzing::xks_path(data));
