//! Alipay trade bills: see `paygate_plugin_alipay::fuzzing::bill`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_plugin_alipay::fuzzing::bill(data));
