//! Trade bills end to end below the API: the bundled Alipay and WeChat Pay plugins, in the
//! daemon's plugin host, charge and refund at the simulator, which then publishes the day's
//! bills in the providers' formats (Alipay's GBK zip on its own bill host, WeChat Pay's
//! gzipped CSV behind a signed download with its SHA1); the plugins fetch them and read them
//! back into exactly the charges and refunds made, fees at the merchant's rate, an injected
//! discrepancy included as the provider would show it. A day not over is "not ready"; a
//! WeChat Pay day without transactions has "no bill".

use std::path::Path;
use std::sync::Arc;

use paygate_daemon::config::Config;
use paygate_daemon::metrics::Metrics;
use paygate_daemon::plugins::PluginHost;
use paygate_daemon::plugins::types::*;
use serde_json::json;

use crate::simulator::Simulator;
use crate::support::*;

/// The simulator's bill day for "now": China time.
fn china_today() -> String {
    let now =
        time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap());
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

fn merchant(host: &PluginHost, config: &Config, provider: &str) -> Merchant {
    let settings = config.merchants[0].providers[provider].settings.clone();
    host.merchant_record(
        provider,
        "m_demo",
        &settings,
        "http://127.0.0.1:1/notify".into(),
    )
    .unwrap()
}

fn barcode(
    merchant: &Merchant,
    provider: &str,
    id: &str,
    code: &str,
    minor: i64,
) -> CreatePaymentRequest {
    CreatePaymentRequest {
        payment_id: id.into(),
        provider: provider.into(),
        merchant: merchant.clone(),
        amount: cny(minor),
        method: Method::Barcode,
        auth_code: Some(code.into()),
        description: Some("2 x coffee".into()),
        terminal_id: Some("T-1".into()),
        expires_in_seconds: None,
        wallet_token: None,
    }
}

async fn pay_and_refund(
    host: &PluginHost,
    merchant: &Merchant,
    provider: &str,
    code: &str,
    tag: &str,
) {
    for (id, minor) in [(format!("pay_{tag}1"), 1250), (format!("pay_{tag}2"), 3000)] {
        let paid = host
            .create_payment(barcode(merchant, provider, &id, code, minor))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(paid.status, PaymentStatus::Succeeded, "{id}");
    }
    let refund = RefundRequest {
        refund_id: format!("re_{tag}1"),
        payment: PaymentRef {
            payment_id: format!("pay_{tag}1"),
            provider: provider.into(),
            merchant: merchant.clone(),
            amount: cny(1250),
            provider_reference: None,
        },
        amount: cny(500),
        reason: None,
    };
    let refunded = host.refund(refund.clone()).await.unwrap().unwrap();
    assert_ne!(refunded.status, RefundStatus::Failed);
    // A bill lists refunds that went through: wait for WeChat Pay's to.
    let asked = RefundRef {
        refund_id: refund.refund_id,
        payment: refund.payment,
        amount: refund.amount,
        provider_reference: refunded.provider_reference,
    };
    for _ in 0..100 {
        let now = host.query_refund(asked.clone()).await.unwrap().unwrap();
        if now.status == RefundStatus::Succeeded {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the refund of {tag} never went through");
}

async fn fetch(host: &PluginHost, merchant: &Merchant, provider: &str, date: &str) -> BillDownload {
    host.fetch_bill(BillFetchRequest {
        provider: provider.into(),
        merchant: merchant.clone(),
        date: date.into(),
    })
    .await
    .unwrap()
    .unwrap()
}

async fn parse(
    host: &PluginHost,
    merchant: &Merchant,
    provider: &str,
    date: &str,
    content: Vec<u8>,
) -> Result<Vec<BillEntry>, ProviderError> {
    host.parse_bill(BillRequest {
        provider: provider.into(),
        merchant: merchant.clone(),
        date: date.into(),
        content,
    })
    .await
    .unwrap()
}

fn summary(entries: &[BillEntry]) -> Vec<(BillEntryKind, String, Option<String>, i64, i64)> {
    let mut rows: Vec<_> = entries
        .iter()
        .map(|e| {
            let fee = e.fee.as_ref().map_or(0, |f| {
                f.minor * 10i64.pow(2) / 10i64.pow(u32::from(f.exponent))
            });
            (
                e.kind,
                e.payment_id.clone(),
                e.refund_id.clone(),
                e.amount.minor,
                fee,
            )
        })
        .collect();
    rows.sort_by_key(|r| (r.1.clone(), r.2.clone()));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_fetch_and_read_the_days_bills_the_simulator_publishes() {
    let sim = Simulator::spawn();
    let config = Config::parse(Path::new("bills.toml"), &sim.daemon_config()).unwrap();
    let host = PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    let today = china_today();
    let (alipay, wechatpay) = (
        merchant(&host, &config, "alipay"),
        merchant(&host, &config, "wechatpay"),
    );

    // Before the day is over, neither provider has published it.
    assert!(
        matches!(fetch(&host, &alipay, "alipay", &today).await, BillDownload::NotReady(m) if m.contains("bill_not_exist"))
    );
    assert!(
        matches!(fetch(&host, &wechatpay, "wechatpay", &today).await, BillDownload::NotReady(m) if m.contains("STATEMENT_CREATING"))
    );

    pay_and_refund(&host, &alipay, "alipay", "280000000000000001", "billa").await;
    pay_and_refund(
        &host,
        &wechatpay,
        "wechatpay",
        "134000000000000001",
        "billw",
    )
    .await;
    // The WeChat Pay merchant's rate is 0.38 %; Alipay's the default 0.6 %.
    sim.control(
        "wechatpay/bills/rates",
        json!({"merchant": "1900000001", "basis_points": 38}),
    )
    .await;
    // Alipay's bill states another amount for one payment.
    let (status, _) = sim
        .control(
            "alipay/bills/discrepancies",
            json!({"kind": "amount_mismatch", "out_trade_no": "pay_billa2", "amount_minor": 3100}),
        )
        .await;
    assert_eq!(status, 200);
    for provider in ["alipay", "wechatpay"] {
        let (status, _) = sim
            .control(&format!("{provider}/bills/close"), json!({"date": today}))
            .await;
        assert_eq!(status, 200);
    }

    let BillDownload::File(file) = fetch(&host, &alipay, "alipay", &today).await else {
        panic!("Alipay's bill is published");
    };
    assert!(file.name.ends_with(".csv.zip"), "{}", file.name);
    assert!(file.content.starts_with(b"PK"));
    let entries = parse(&host, &alipay, "alipay", &today, file.content.clone())
        .await
        .unwrap();
    assert_eq!(
        summary(&entries),
        vec![
            (BillEntryKind::Payment, "pay_billa1".into(), None, 1250, 8),
            (
                BillEntryKind::Refund,
                "pay_billa1".into(),
                Some("re_billa1".into()),
                500,
                3
            ),
            (BillEntryKind::Payment, "pay_billa2".into(), None, 3100, 19),
        ]
    );
    assert!(entries.iter().all(|e| {
        e.line.is_some()
            && e.occurred_at
                .as_deref()
                .is_some_and(|t| t.starts_with(&today))
    }));
    // Published once: the same file every time after.
    let BillDownload::File(again) = fetch(&host, &alipay, "alipay", &today).await else {
        panic!("still published");
    };
    assert_eq!(again.content, file.content);
    // The same bill for another day, or cut short, is refused naming what is wrong.
    let other_day = parse(&host, &alipay, "alipay", "2020-01-01", file.content.clone()).await;
    assert!(
        matches!(&other_day, Err(ProviderError::InvalidRequest(m)) if m.contains("line 3")),
        "{other_day:?}"
    );
    let cut = parse(
        &host,
        &alipay,
        "alipay",
        &today,
        file.content[..file.content.len() / 2].to_vec(),
    )
    .await;
    assert!(
        matches!(&cut, Err(ProviderError::InvalidRequest(_))),
        "{cut:?}"
    );

    let BillDownload::File(file) = fetch(&host, &wechatpay, "wechatpay", &today).await else {
        panic!("WeChat Pay's bill is published");
    };
    assert!(file.content.starts_with(&[0x1f, 0x8b]), "gzipped");
    let entries = parse(&host, &wechatpay, "wechatpay", &today, file.content)
        .await
        .unwrap();
    // 0.38 % of 12.50 is 4.75 fen: rounded half up, 5; of 30.00, 11.4: 11; the refund of
    // 5.00 gives back 1.9: 2.
    assert_eq!(
        summary(&entries),
        vec![
            (BillEntryKind::Payment, "pay_billw1".into(), None, 1250, 5),
            (
                BillEntryKind::Refund,
                "pay_billw1".into(),
                Some("re_billw1".into()),
                500,
                2
            ),
            (BillEntryKind::Payment, "pay_billw2".into(), None, 3000, 11),
        ]
    );

    // A day long gone without any transaction: Alipay publishes an empty bill, WeChat Pay
    // none.
    let BillDownload::File(empty) = fetch(&host, &alipay, "alipay", "2020-01-01").await else {
        panic!("an empty bill");
    };
    assert_eq!(
        parse(&host, &alipay, "alipay", "2020-01-01", empty.content)
            .await
            .unwrap()
            .len(),
        0
    );
    assert!(matches!(
        fetch(&host, &wechatpay, "wechatpay", "2020-01-01").await,
        BillDownload::NoBill
    ));
}
