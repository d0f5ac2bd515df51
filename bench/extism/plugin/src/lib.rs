//! The mock wallet's create-payment, written for Extism: JSON in, JSON out, the same
//! decisions as plugins/mock (barcode code check, amount triggers, QR code).

use extism_pdk::*;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Money {
    minor: i64,
    #[allow(dead_code)]
    currency: String,
}

#[derive(Deserialize)]
struct Request {
    payment_id: String,
    amount: Money,
    method: String,
    auth_code: Option<String>,
}

#[derive(Serialize)]
struct Answer {
    status: &'static str,
    provider_reference: String,
    qr_code: Option<String>,
}

#[plugin_fn]
pub fn create_payment(Json(request): Json<Request>) -> FnResult<Json<Answer>> {
    if request.method == "barcode" {
        let code = request.auth_code.as_deref().unwrap_or("");
        if !(code.len() == 18 && code.starts_with("99") && code.bytes().all(|b| b.is_ascii_digit())) {
            return Err(WithReturnCode::new(Error::msg("auth_code_invalid"), 1));
        }
    }
    let trigger = request.amount.minor.rem_euclid(100);
    let status = match (request.method.as_str(), trigger) {
        ("barcode", 0..=50) => "succeeded",
        _ => "pending",
    };
    Ok(Json(Answer {
        status,
        provider_reference: format!("mock_{}", request.payment_id),
        qr_code: (request.method != "barcode").then(|| format!("mock://pay/{}", request.payment_id)),
    }))
}
