//! WeChat Pay v3 notifications: see `paygate_plugin_wechatpay::fuzzing::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paygate_plugin_wechatpay::fuzzing::check(data));
