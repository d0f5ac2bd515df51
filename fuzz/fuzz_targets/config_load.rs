//! `Config::parse` on arbitrary text: see `paygate_daemon::fuzzing::config_load`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_daemon::fuzzing::config_load(data));
