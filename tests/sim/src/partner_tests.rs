//! A platform's orders for its sub-merchants: placed only for a sub-merchant it onboarded
//! whose application is finished, and booked to that sub-merchant. At WeChat Pay (the
//! partner API) they are found, refunded and reversed only under it; at Alipay (直付通) the
//! trade names the sub-merchant and settles the whole amount to it.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::onboarding::{Application, ApplicationStatus};
use crate::real_paths_tests::{alipay_params, form, wechatpay_authorization};
use crate::state::Sim;
use crate::tests::sim;
use crate::{router, wechatpay_onboarding};

/// The sandbox merchant (the key the requests are signed with): the service provider.
const SP: &str = "1900000001";
const SUB: &str = "1900006491";
const REVIEWED: &str = "1900006492";
/// Another finished sub-merchant of the same provider.
const NEIGHBOUR: &str = "1900006493";
/// A finished sub-merchant of another provider (or Alipay app).
const FOREIGN: &str = "1900006494";
/// The sandbox Alipay app (the key `alipay_params` signs with): the 直付通 platform.
const ALIPAY_APP: &str = "2021000000000001";

/// A simulator where `SP` has onboarded `SUB` and `NEIGHBOUR` (finished) and `REVIEWED`
/// (still in review) at WeChat Pay, and the sandbox Alipay app the same three at Alipay;
/// another provider (app) has onboarded `FOREIGN` at each.
fn provider_with_sub_merchants() -> Arc<Sim> {
    let sim = sim();
    for (state, provider, platform) in [
        (&sim.wechatpay, wechatpay_onboarding::PROVIDER, SP),
        (&sim.alipay, "alipay", ALIPAY_APP),
    ] {
        let mut onboarding = state.onboarding.lock().unwrap();
        for (code, sub, status, by) in [
            ("act_1", SUB, ApplicationStatus::Active, platform),
            ("act_2", REVIEWED, ApplicationStatus::UnderReview, platform),
            ("act_3", NEIGHBOUR, ApplicationStatus::Active, platform),
            ("act_4", FOREIGN, ApplicationStatus::Active, "1900000999"),
        ] {
            onboarding.applications.insert(
                (provider.into(), code.into()),
                Application {
                    provider: provider.into(),
                    business_code: code.into(),
                    application_id: format!("200000212477569{}", &code[4..]),
                    submitted_by: by.into(),
                    sub_merchant_id: Some(sub.into()),
                    materials: json!({}),
                    status,
                    rejection_reason: None,
                    submissions: 1,
                    notify_url: None,
                    created_ms: 0,
                    updated_ms: 0,
                },
            );
        }
    }
    sim
}

/// Sends one signed request; the status and the JSON answer (`null` when empty).
async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(
            "authorization",
            wechatpay_authorization(method, path, &text),
        )
        .header("content-type", "application/json")
        .body(Body::from(text))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

fn order(out_trade_no: &str, sub_mchid: &str) -> Value {
    json!({
        "sp_appid": "wx_sp", "sp_mchid": SP, "sub_mchid": sub_mchid,
        "description": "Latte", "out_trade_no": out_trade_no,
        "notify_url": "http://127.0.0.1:9/notify",
        "amount": {"total": 1250, "currency": "CNY"},
    })
}

#[tokio::test]
async fn a_sub_merchants_order_is_booked_to_it_and_found_only_under_it() {
    let sim = provider_with_sub_merchants();
    let app = router(sim.clone());
    let (status, answer) = call(
        &app,
        "POST",
        "/v3/pay/partner/transactions/native",
        Some(order("pay_partner_1", SUB)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["code_url"]
            .as_str()
            .unwrap()
            .starts_with("weixin://")
    );
    {
        let ledger = sim.wechatpay.ledger.lock().unwrap();
        let booked = &ledger.orders["pay_partner_1"];
        assert_eq!(booked.merchant, SP);
        assert_eq!(booked.sub_merchant.as_deref(), Some(SUB));
    }
    let partner_query = format!(
        "/v3/pay/partner/transactions/out-trade-no/pay_partner_1?sp_mchid={SP}&sub_mchid={SUB}"
    );
    let (status, answer) = call(&app, "GET", &partner_query, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["sp_mchid"], SP);
    assert_eq!(answer["sub_mchid"], SUB);
    assert!(answer.get("mchid").is_none());
    // The provider's own books do not have it, nor does another sub-merchant's.
    let direct_query = format!("/v3/pay/transactions/out-trade-no/pay_partner_1?mchid={SP}");
    assert_eq!(
        call(&app, "GET", &direct_query, None).await.0,
        StatusCode::NOT_FOUND
    );
    let other = partner_query.replace(SUB, REVIEWED);
    assert_ne!(call(&app, "GET", &other, None).await.0, StatusCode::OK);
    // Another of the provider's active sub-merchants has no such order either.
    let neighbour = partner_query.replace(SUB, NEIGHBOUR);
    assert_eq!(
        call(&app, "GET", &neighbour, None).await.0,
        StatusCode::NOT_FOUND
    );
    // Closed under the sub-merchant.
    let close = "/v3/pay/partner/transactions/out-trade-no/pay_partner_1/close";
    let (status, _) = call(
        &app,
        "POST",
        close,
        Some(json!({"sp_mchid": SP, "sub_mchid": SUB})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, answer) = call(&app, "GET", &partner_query, None).await;
    assert_eq!(answer["trade_state"], "CLOSED");
}

#[tokio::test]
async fn only_the_providers_own_finished_sub_merchants_collect() {
    let app = router(provider_with_sub_merchants());
    let path = "/v3/pay/partner/transactions/native";
    let (status, answer) = call(&app, "POST", path, Some(order("pay_p_2", "1900000777"))).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("NO_AUTH"))
    );
    let (status, answer) = call(&app, "POST", path, Some(order("pay_p_3", REVIEWED))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // Another provider's finished sub-merchant is not this provider's to collect for.
    let (status, answer) = call(&app, "POST", path, Some(order("pay_p_3b", FOREIGN))).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("NO_AUTH"))
    );
    let mut unnamed = order("pay_p_4", SUB);
    unnamed.as_object_mut().unwrap().remove("sub_mchid");
    assert_eq!(
        call(&app, "POST", path, Some(unnamed)).await.0,
        StatusCode::BAD_REQUEST
    );
    let mut not_the_signer = order("pay_p_5", SUB);
    not_the_signer["sp_mchid"] = "1900000999".into();
    let (status, answer) = call(&app, "POST", path, Some(not_the_signer)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"].as_str().unwrap().contains("sp_mchid"));
}

#[tokio::test]
async fn a_sub_merchants_payment_is_refunded_and_reversed_under_it() {
    let sim = provider_with_sub_merchants();
    let app = router(sim.clone());
    let mut paid = order("pay_p_6", SUB);
    paid["payer"] = json!({"auth_code": "134567890123456789"});
    let (status, answer) = call(
        &app,
        "POST",
        "/v3/pay/partner/transactions/codepay",
        Some(paid),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["trade_state"], "SUCCESS");
    assert_eq!(answer["sub_mchid"], SUB);
    assert!(answer["payer"]["sp_openid"].is_string());

    let refund = json!({"out_trade_no": "pay_p_6", "out_refund_no": "re_p_6",
                        "amount": {"refund": 500, "total": 1250, "currency": "CNY"}});
    let refunds = "/v3/refund/domestic/refunds";
    // Without its sub-merchant, the provider has no such order.
    assert_eq!(
        call(&app, "POST", refunds, Some(refund.clone())).await.0,
        StatusCode::NOT_FOUND
    );
    let mut neighbours = refund.clone();
    neighbours["sub_mchid"] = NEIGHBOUR.into();
    assert_eq!(
        call(&app, "POST", refunds, Some(neighbours)).await.0,
        StatusCode::NOT_FOUND
    );
    let mut named = refund.clone();
    named["sub_mchid"] = SUB.into();
    let (status, answer) = call(&app, "POST", refunds, Some(named)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["out_refund_no"], "re_p_6");
    let (status, _) = call(
        &app,
        "GET",
        &format!("{refunds}/re_p_6?sub_mchid={SUB}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        call(&app, "GET", &format!("{refunds}/re_p_6"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let (status, answer) = call(
        &app,
        "POST",
        "/v3/pay/partner/transactions/out-trade-no/pay_p_6/reverse",
        Some(json!({"sp_appid": "wx_sp", "sp_mchid": SP, "sub_mchid": SUB})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["sub_mchid"], SUB);
    let ledger = sim.wechatpay.ledger.lock().unwrap();
    assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
    assert_eq!(ledger.orders["pay_p_6"].refunded_minor(), 1250);
}

/// `alipay.trade.precreate` of 12.50 through the gateway; the `*_response` object.
async fn alipay_precreate(app: &Router, out_trade_no: &str, zft: Option<(&str, &str)>) -> Value {
    let mut biz = json!({"out_trade_no": out_trade_no, "total_amount": "12.50",
                         "subject": "Latte", "product_code": "FACE_TO_FACE_PAYMENT"});
    if let Some((smid, settled)) = zft {
        biz["sub_merchant"] = json!({"merchant_id": smid});
        biz["settle_info"] = json!({"settle_detail_infos": [
            {"trans_in_type": "defaultSettle", "amount": settled}]});
    }
    let params = alipay_params("alipay.trade.precreate", &biz);
    let request = Request::post("/gateway.do")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form(&params)))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    answer["alipay_trade_precreate_response"].clone()
}

#[tokio::test]
async fn an_alipay_platforms_trade_for_its_sub_merchant_is_booked_to_it() {
    let sim = provider_with_sub_merchants();
    let app = router(sim.clone());
    let answer = alipay_precreate(&app, "pay_zft_1", Some((SUB, "12.50"))).await;
    assert_eq!(answer["code"], "10000", "{answer}");
    let own = alipay_precreate(&app, "pay_zft_own", None).await;
    assert_eq!(own["code"], "10000", "{own}");
    {
        let ledger = sim.alipay.ledger.lock().unwrap();
        assert_eq!(
            ledger.orders["pay_zft_1"].sub_merchant.as_deref(),
            Some(SUB)
        );
        assert_eq!(ledger.orders["pay_zft_own"].sub_merchant, None);
    }
    // Anyone else's sub-merchant, one still in review, a settlement short of the amount.
    for (no, zft) in [
        ("pay_zft_2", ("1900000777", "12.50")),
        ("pay_zft_2b", (FOREIGN, "12.50")),
        ("pay_zft_3", (REVIEWED, "12.50")),
        ("pay_zft_4", (SUB, "12.00")),
    ] {
        let answer = alipay_precreate(&app, no, Some(zft)).await;
        assert_eq!(
            (answer["code"].as_str(), answer["sub_code"].as_str()),
            (Some("40004"), Some("ACQ.INVALID_PARAMETER")),
            "{zft:?}: {answer}"
        );
    }
    // The same order number again, for another owner, is not the same order.
    let again = alipay_precreate(&app, "pay_zft_1", None).await;
    assert_eq!(again["sub_code"], "ACQ.CONTEXT_INCONSISTENT", "{again}");
    assert!(
        !sim.alipay
            .ledger
            .lock()
            .unwrap()
            .orders
            .contains_key("pay_zft_2")
    );
}
