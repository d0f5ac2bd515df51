//! Apple Pay tokens, their CMS signatures and payment data: see
//! `paygate_plugin_applepay::fuzzing::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_plugin_applepay::fuzzing::check(data));
