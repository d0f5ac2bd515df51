//! An archive with one of its files damaged: see `paygate_daemon::fuzzing::archive_files`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_daemon::fuzzing::archive_files(data));
