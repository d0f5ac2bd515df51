//! A POS till in ~150 lines: what a till integration with paygate looks like.
//!
//! 1. The cashier scans the payer's payment code: `POST /v1/payments` (method `barcode`) with
//!    an `Idempotency-Key` the till keeps until it has an answer, and resends on any network
//!    error or 5xx (the same key can never charge twice).
//! 2. "User paying": the payer confirms on the phone; the till polls `GET /v1/payments/{id}`.
//! 3. The back office refunds part of it: `POST /v1/payments/{id}/refunds` (an `erp` key).
//!
//! Run `cargo xtask run` in one terminal, then `cargo run -p pos-till` in another.

use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Take a barcode payment through paygated and refund part of it")]
struct Args {
    /// The gateway.
    #[arg(long, default_value = "http://127.0.0.1:8420")]
    gateway: String,
    /// The till's API key (role pos).
    #[arg(long, default_value = "pg_demo_pos")]
    pos_key: String,
    /// The back office's API key (role erp), for the refund.
    #[arg(long, default_value = "pg_demo_erp")]
    erp_key: String,
    #[arg(long, default_value = "m_demo")]
    merchant: String,
    /// The payer's payment code, as scanned (the simulator's Alipay codes start 25–30,
    /// WeChat Pay's 10–15; ending 61 makes the payer confirm on the phone first).
    #[arg(long, default_value = "286754308888888861")]
    payment_code: String,
    #[arg(long, default_value = "18.00")]
    amount: String,
    /// How much to refund afterwards.
    #[arg(long, default_value = "5.00")]
    refund: String,
    /// This till's id, part of every idempotency key it makes.
    #[arg(long, default_value = "T-07")]
    terminal: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pos-till: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    // One key per sale, kept until the sale has an answer.
    let sale = format!("{}-{}", args.terminal, unix_millis());
    let body = json!({
        "merchant_id": args.merchant, "amount": args.amount, "currency": "CNY",
        "method": "barcode", "auth_code": args.payment_code,
        "order_id": format!("POS-{sale}"), "terminal_id": args.terminal,
        "description": "2 x coffee",
    });
    println!(
        "scanning payment code {} for {} CNY",
        args.payment_code, args.amount
    );
    let (status, payment) = post_until_answered(
        &client,
        &format!("{}/v1/payments", args.gateway),
        &args.pos_key,
        &format!("{sale}-pay"),
        &body,
    )
    .await?;
    if status == 402 {
        let error = &payment["error"];
        return Err(format!(
            "declined: {} ({})",
            error["code"], error["message"]
        ));
    }
    if status != 201 {
        return Err(format!("the gateway answered {status}: {payment}"));
    }
    let id = payment["id"].as_str().ok_or("no payment id")?.to_owned();
    println!(
        "payment {id}: {} via {}",
        payment["status"], payment["provider"]
    );
    let mut payment = payment;
    // The payer may still be confirming on the phone: poll.
    for _ in 0..120 {
        if payment["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        payment = get(
            &client,
            &format!("{}/v1/payments/{id}", args.gateway),
            &args.pos_key,
        )
        .await?;
        println!("payment {id}: {}", payment["status"]);
    }
    if payment["status"] != "succeeded" {
        return Err(format!("payment {id} ended {}", payment["status"]));
    }
    println!(
        "paid: {} CNY, provider reference {}",
        payment["amount"], payment["provider_reference"]
    );

    let (status, refund) = post_until_answered(
        &client,
        &format!("{}/v1/payments/{id}/refunds", args.gateway),
        &args.erp_key,
        &format!("{sale}-refund-1"),
        &json!({"amount": args.refund, "reason": "one coffee returned"}),
    )
    .await?;
    if status != 201 {
        return Err(format!("refund refused ({status}): {refund}"));
    }
    println!(
        "refund {}: {} CNY {}",
        refund["id"], refund["amount"], refund["status"]
    );
    let payment = get(
        &client,
        &format!("{}/v1/payments/{id}", args.gateway),
        &args.pos_key,
    )
    .await?;
    println!(
        "payment {id}: amount_refunded {}",
        payment["amount_refunded"]
    );
    Ok(())
}

/// POSTs with the idempotency key until the gateway gives a final answer: on a network error,
/// a 5xx or a 409 (still in progress) the same request is resent with the same key.
async fn post_until_answered(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
    idempotency_key: &str,
    body: &Value,
) -> Result<(u16, Value), String> {
    let mut last = String::new();
    for attempt in 0..10 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        }
        let sent = client
            .post(url)
            .bearer_auth(api_key)
            .header("idempotency-key", idempotency_key)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let value: Value = response.json().await.unwrap_or(Value::Null);
                if status >= 500 || status == 409 {
                    last = format!("{status}: {value}");
                    println!("  the gateway answered {last}; resending with the same key");
                    continue;
                }
                return Ok((status, value));
            }
            Err(e) => {
                last = e.to_string();
                println!("  no answer ({last}); resending with the same key");
            }
        }
    }
    Err(format!("no final answer after 10 attempts: {last}"))
}

async fn get(client: &reqwest::Client, url: &str, api_key: &str) -> Result<Value, String> {
    client
        .get(url)
        .bearer_auth(api_key)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
