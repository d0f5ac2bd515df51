//! `Money::parse` on a currency and an amount: see `paygate_daemon::fuzzing::money_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_daemon::fuzzing::money_parse(data));
