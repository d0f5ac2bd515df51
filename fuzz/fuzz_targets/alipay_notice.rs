//! Alipay trade notices: see `paygate_plugin_alipay::fuzzing::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_plugin_alipay::fuzzing::check(data));
