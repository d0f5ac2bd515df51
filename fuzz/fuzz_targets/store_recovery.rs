//! A store opened with a damaged last-change record: see
//! `paygate_daemon::fuzzing::store_recovery`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_daemon::fuzzing::store_recovery(data));
