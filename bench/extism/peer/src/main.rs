//! The reference peer: the same work as paygate's plugin benchmark (a fresh instance and one
//! create-payment call, answer verified) through Extism's host, with an equivalent plugin
//! written with extism-pdk. Prints one JSON line like paygate-bench.

use std::time::{Duration, Instant};

use extism::{CompiledPlugin, Manifest, Plugin, PluginBuilder, Wasm};

const WARMUP_CALLS: usize = 2_000;
const MEASURED_CALLS: usize = 20_000;

fn main() {
    let path = std::env::args().nth(1).expect("usage: extism-peer <plugin.wasm>");
    let manifest = Manifest::new([Wasm::file(path)]);
    let compiled = CompiledPlugin::new(PluginBuilder::new(manifest).with_wasi(false)).expect("the plugin compiles");
    let request = serde_json::json!({
        "payment_id": "pay_0Vc4F1IW0WnVVsf2ooV3p8Zkv",
        "provider": "mock",
        "merchant": {"id": "m_bench", "settings_json": "{}", "notify_url": "http://127.0.0.1:8420/v1/notify/mock/m_bench"},
        "amount": {"minor": 1250, "currency": "CNY", "exponent": 2},
        "method": "qr",
        "auth_code": null,
        "description": "2 x coffee",
        "terminal_id": "T-07",
        "expires_in_seconds": 900
    });
    let mut samples = Vec::with_capacity(MEASURED_CALLS);
    for i in 0..WARMUP_CALLS + MEASURED_CALLS {
        let started = Instant::now();
        let mut plugin = Plugin::new_from_compiled(&compiled).expect("a fresh instance");
        let input = serde_json::to_vec(&request).expect("json");
        let output: Vec<u8> = plugin.call("create_payment", input).expect("the call succeeds");
        let answer: serde_json::Value = serde_json::from_slice(&output).expect("json answer");
        let elapsed = started.elapsed();
        assert_eq!(answer["status"], "pending", "{answer}");
        assert!(answer["qr_code"].is_string());
        if i >= WARMUP_CALLS {
            samples.push(elapsed);
        }
    }
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    println!(
        "{{\"name\":\"extism_fresh_instance_create_payment\",\"calls\":{},\"median_us\":{:.2},\"p99_us\":{:.2},\"max_us\":{:.2},\"mean_us\":{:.2}}}",
        samples.len(),
        at(0.5),
        at(0.99),
        us(samples[samples.len() - 1]),
        mean
    );
}
