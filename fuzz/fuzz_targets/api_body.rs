//! A JSON request body as the API reads it: see `paygate_daemon::fuzzing::api_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_daemon::fuzzing::api_body(data));
