//! WeChat Pay onboarding materials: see `paygate_plugin_wechatpay::fuzzing::materials`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paygate_plugin_wechatpay::fuzzing::materials(data);
});
