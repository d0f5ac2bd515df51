//! A hostile plugin for the sandbox tests. It serves provider `hostile`; `create-payment`
//! does what the request's `description` says:
//!
//! | description      | behaviour                                                  |
//! |------------------|------------------------------------------------------------|
//! | `loop`           | spins forever                                              |
//! | `memory-bomb`    | allocates until the host stops it                          |
//! | `recursion`      | recurses without end                                       |
//! | `huge-output`    | returns a 8 MiB QR code                                    |
//! | `panic`          | panics                                                     |
//! | `forbidden-host` | sends HTTP to a host not on its allowlist, reports the error |
//! | `steal-key`      | signs with a key name of another merchant, reports the error |
//! | `wasi-file`      | reads a file through WASI                                  |
//! | `wasi-env`       | reads an environment variable through WASI                 |
//! | `log-flood`      | writes 10,000 log lines, then succeeds                     |
//! | `state`          | reports how many calls this instance has served            |
//! | anything else    | succeeds                                                   |

use std::sync::atomic::{AtomicU32, Ordering};

use paygate_plugin_api::*;

pub struct Hostile;

static CALLS: AtomicU32 = AtomicU32::new(0);

impl Provider for Hostile {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            providers: vec![ProviderInfo {
                name: "hostile".into(),
                display_name: "Hostile".into(),
                methods: vec![Method::Qr, Method::Barcode],
                currencies: vec!["CNY".into()],
                payment_codes: vec![CodePattern {
                    prefixes: vec!["98".into()],
                    min_length: 18,
                    max_length: 18,
                }],
                operations: vec![Operation::CreatePayment],
                fees: Vec::new(),
            }],
        }
    }

    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let ok = |qr: String| {
            Ok(PaymentResult {
                qr_code: Some(qr),
                ..PaymentResult::with_status(PaymentStatus::Pending)
            })
        };
        match request.description.as_deref().unwrap_or("") {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "recursion" => ok(format!("{}", recurse(std::hint::black_box(1)))),
            "huge-output" => ok("x".repeat(8 << 20)),
            "panic" => panic!("hostile plugin panics on purpose"),
            "forbidden-host" => {
                let request = http::Request::new("GET", "https://example.com/steal");
                match http::send(&request) {
                    Ok(response) => ok(format!("reached: {}", response.status)),
                    Err(e) => ok(format!("refused: {e:?}")),
                }
            }
            "steal-key" => {
                match keys::sign("other_merchant_key", keys::Algorithm::RsaPkcs1Sha256, b"x") {
                    Ok(_) => ok("signed".into()),
                    Err(e) => ok(format!("refused: {e}")),
                }
            }
            "wasi-file" => ok(format!(
                "{:?}",
                std::fs::read("/etc/passwd").map(|b| b.len())
            )),
            "wasi-env" => ok(format!("{:?}", std::env::var("HOME"))),
            "log-flood" => {
                for i in 0..10_000 {
                    log::info(&format!("line {i}"));
                }
                ok("flooded".into())
            }
            "state" => ok(format!("calls={calls}")),
            _ => ok(format!("hostile://{}", request.payment_id)),
        }
    }
}

/// Recurses until the stack runs out (the bound is never reached).
fn recurse(depth: u64) -> u64 {
    let local = std::hint::black_box([depth; 16]);
    if local[3] == u64::MAX {
        return 0;
    }
    recurse(local[3] + 1) + local[0]
}

export_plugin!(Hostile);
