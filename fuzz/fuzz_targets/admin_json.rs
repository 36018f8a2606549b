//! The admin API's JSON request bodies and their validation: see `keyhold::fuzzing::admin_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyhold::fuzzing::admin_json(data));
