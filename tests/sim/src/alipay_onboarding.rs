//! Alipay's indirect ("直付通", ZFT) sub-merchant onboarding on the gateway (`gateway.do`),
//! behind the same RSA2 request check and signed answers as the trade methods:
//!
//! - `ant.merchant.expand.indirect.zft.create` (`external_id` = the merchant's number for the
//!   application): a new application starts `submitted`; the same `external_id` again
//!   answers the existing order while it is under review or active, and is a resubmission
//!   after a rejection (`submissions` + 1, back to `submitted`, a new `order_id`);
//! - `ant.merchant.expand.indirect.zftorder.query` (`external_id` or `order_id`): the first
//!   query moves a `submitted` application to `under_review`; statuses `031` (submitted or
//!   under review), `99` (active, with `smid`), `-1` (rejected, with `reason`);
//! - `ant.merchant.expand.indirect.zft.settlementmodify` (`out_biz_no` = the merchant's
//!   number for the account, `smid`, `biz_cards`): needs an active application of the same
//!   app; answers the `order_id` and a verification remittance (0.01..0.99 CNY, derived from
//!   `out_biz_no`, to a simulator account);
//! - `ant.merchant.expand.order.query` (`order_id` and/or `out_biz_no`): a settlement
//!   change's `031` (waiting for the remittance), `99` (verified), `-1` (failed, `reason`);
//!   an application's order by its `order_id` too.
//!
//! Reviews and verifications are the control endpoints' (`/_sim/alipay/applications/...`,
//! `/_sim/alipay/accounts/...`). Records live in the shared `Onboarding` model under
//! ("alipay", business code) and belong to the app (`app_id`) that submitted them.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::alipay::{Answer, beijing_time, business_error, fail, ok};
use crate::keys;
use crate::ledger::now_ms;
use crate::onboarding::{Account, AccountStatus, Application, ApplicationStatus, Onboarding};
use crate::state::Sim;

pub const PROVIDER: &str = "alipay";

pub const METHOD_CREATE: &str = "ant.merchant.expand.indirect.zft.create";
pub const METHOD_ZFT_ORDER_QUERY: &str = "ant.merchant.expand.indirect.zftorder.query";
pub const METHOD_SETTLEMENT_MODIFY: &str = "ant.merchant.expand.indirect.zft.settlementmodify";
pub const METHOD_ORDER_QUERY: &str = "ant.merchant.expand.order.query";

/// The simulator's account that verification remittances go to.
pub const VERIFICATION_ACCOUNT_NO: &str = "6217000000008430001";
pub const VERIFICATION_ACCOUNT_NAME: &str = "paygate-sim 打款验证户";

/// The 直付通 sub-merchant a trade (`alipay.trade.precreate` / `.pay`) is for: `None` for
/// the app's own trade; otherwise `sub_merchant.merchant_id` must be the `smid` of an active
/// application the app submitted, and `settle_info` must settle the whole `total_amount`
/// to the sub-merchant's default account (`defaultSettle`). The refusal otherwise.
pub fn trade_sub_merchant(
    sim: &Sim,
    method: &str,
    app_id: &str,
    biz: &Value,
) -> Result<Option<String>, Answer> {
    let Some(smid) = biz.pointer("/sub_merchant/merchant_id") else {
        return Ok(None);
    };
    let smid = smid.as_str().unwrap_or_default();
    let onboarding = sim.alipay.onboarding.lock().expect("onboarding lock");
    let found = onboarding.applications.values().find(|a| {
        a.provider == PROVIDER
            && a.submitted_by == app_id
            && a.sub_merchant_id.as_deref() == Some(smid)
    });
    match found {
        None => {
            return Err(business_error(
                method,
                "ACQ.INVALID_PARAMETER",
                "二级商户不存在",
            ));
        }
        Some(a) if a.status != ApplicationStatus::Active => {
            return Err(business_error(
                method,
                "ACQ.INVALID_PARAMETER",
                "二级商户未进件完成",
            ));
        }
        Some(_) => {}
    }
    let details = biz
        .pointer("/settle_info/settle_detail_infos")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let settles_all = matches!(details, [only]
        if text(only, "trans_in_type") == "defaultSettle"
            && text(only, "amount") == text(biz, "total_amount"));
    if !settles_all {
        return Err(business_error(
            method,
            "ACQ.INVALID_PARAMETER",
            "settle_info 须以 defaultSettle 结算全部订单金额",
        ));
    }
    Ok(Some(smid.to_owned()))
}

/// Serves the onboarding methods; `None` for any other method (the trade methods).
pub fn handle(
    sim: &Sim,
    method: &str,
    app_id: &str,
    biz: &Value,
    notify_url: Option<&str>,
) -> Option<Answer> {
    if ![
        METHOD_CREATE,
        METHOD_ZFT_ORDER_QUERY,
        METHOD_SETTLEMENT_MODIFY,
        METHOD_ORDER_QUERY,
    ]
    .contains(&method)
    {
        return None;
    }
    let mut onboarding = sim.alipay.onboarding.lock().expect("onboarding lock");
    Some(serve(
        &mut onboarding,
        method,
        app_id,
        biz,
        notify_url,
        now_ms(),
    ))
}

/// One onboarding call against the records.
pub fn serve(
    onboarding: &mut Onboarding,
    method: &str,
    app_id: &str,
    biz: &Value,
    notify_url: Option<&str>,
    now: i64,
) -> Answer {
    match method {
        METHOD_CREATE => create(onboarding, app_id, biz, notify_url, now),
        METHOD_ZFT_ORDER_QUERY => zft_order_query(onboarding, app_id, biz, now),
        METHOD_SETTLEMENT_MODIFY => settlement_modify(onboarding, app_id, biz, notify_url, now),
        METHOD_ORDER_QUERY => order_query(onboarding, app_id, biz, now),
        _ => fail(
            method,
            "40002",
            "Invalid Arguments",
            "isv.invalid-method",
            "不存在的方法名",
        ),
    }
}

/// A string member, trimmed; "" when absent or not a string.
fn text(object: &Value, name: &str) -> String {
    object
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn invalid(method: &str, what: &str) -> Answer {
    fail(
        method,
        "40002",
        "Invalid Arguments",
        "isv.invalid-parameter",
        &format!("参数无效: {what}"),
    )
}

/// A merchant number (`external_id`, `out_biz_no`): 1 to 64 characters.
fn business_code(method: &str, biz: &Value, name: &str) -> Result<String, Answer> {
    let code = text(biz, name);
    if code.is_empty() || code.chars().count() > 64 {
        return Err(invalid(method, name));
    }
    Ok(code)
}

/// A new order number: `2026` and 24 digits.
fn order_number() -> String {
    let digits: String = keys::random_token(24)
        .chars()
        .map(|c| char::from(b'0' + (c.to_digit(36).unwrap_or(0) % 10) as u8))
        .collect();
    format!("2026{digits}")
}

fn is_alphanumeric(text: &str, lengths: &[usize]) -> bool {
    lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------
// Applications

fn create(
    onboarding: &mut Onboarding,
    app_id: &str,
    biz: &Value,
    notify_url: Option<&str>,
    now: i64,
) -> Answer {
    let method = METHOD_CREATE;
    let external_id = match business_code(method, biz, "external_id") {
        Ok(code) => code,
        Err(answer) => return answer,
    };
    for required in [
        "name",
        "merchant_type",
        "mcc",
        "cert_type",
        "cert_no",
        "legal_name",
        "legal_cert_no",
    ] {
        if text(biz, required).is_empty() {
            return invalid(method, required);
        }
    }
    let contact_ok = biz
        .get("contact_infos")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .is_some_and(|c| !text(c, "name").is_empty() && !text(c, "mobile").is_empty());
    if !contact_ok {
        return invalid(method, "contact_infos");
    }
    let has_service = biz
        .get("service")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty() && s.iter().all(Value::is_string));
    if !has_service {
        return invalid(method, "service");
    }
    // What Alipay checks on receipt (a business failure: the application is not taken).
    if text(biz, "cert_type") == "201" && !is_alphanumeric(&text(biz, "cert_no"), &[15, 18]) {
        return business_error(method, "CERT_NO_INVALID", "营业执照号码格式不正确");
    }
    if !is_alphanumeric(&text(biz, "legal_cert_no"), &[15, 18]) {
        return business_error(method, "LEGAL_CERT_NO_INVALID", "法人证件号码格式不正确");
    }

    let key = (PROVIDER.to_owned(), external_id.clone());
    if let Some(existing) = onboarding.applications.get_mut(&key) {
        if existing.submitted_by != app_id {
            return business_error(method, "EXTERNAL_ID_IN_USE", "外部商户编号已被其他应用使用");
        }
        if existing.status == ApplicationStatus::Rejected {
            // A resubmission: a new order for the corrected materials.
            existing.submissions += 1;
            existing.status = ApplicationStatus::Submitted;
            existing.rejection_reason = None;
            existing.application_id = order_number();
            existing.materials = biz.clone();
            existing.notify_url = notify_url.map(str::to_owned);
            existing.updated_ms = now;
        }
        // Submitted, under review or active: the same order, no second application.
        return ok(
            method,
            json!({"order_id": existing.application_id, "external_id": external_id}),
        );
    }
    let application = Application {
        provider: PROVIDER.into(),
        business_code: external_id.clone(),
        application_id: order_number(),
        submitted_by: app_id.into(),
        sub_merchant_id: None,
        materials: biz.clone(),
        status: ApplicationStatus::Submitted,
        rejection_reason: None,
        submissions: 1,
        notify_url: notify_url.map(str::to_owned),
        created_ms: now,
        updated_ms: now,
    };
    let order_id = application.application_id.clone();
    onboarding.applications.insert(key, application);
    ok(
        method,
        json!({"order_id": order_id, "external_id": external_id}),
    )
}

/// Looking is reviewing: a submitted application is under review from its first query on.
fn looked_at(application: &mut Application, now: i64) {
    if application.status == ApplicationStatus::Submitted {
        application.status = ApplicationStatus::UnderReview;
        application.updated_ms = now;
    }
}

/// Alipay's order object for an application (`ZftSubMerchantOrder`).
fn application_order(application: &Application) -> Value {
    let (status, fk_audit, kz_audit) = match application.status {
        ApplicationStatus::Submitted => ("031", "CREATE", "CREATE"),
        ApplicationStatus::UnderReview | ApplicationStatus::AwaitingSignature => {
            ("031", "PASS", "CREATE")
        }
        ApplicationStatus::Active => ("99", "PASS", "PASS"),
        ApplicationStatus::Rejected => ("-1", "PASS", "REJECT"),
    };
    let mut order = json!({
        "order_id": application.application_id,
        "external_id": application.business_code,
        "merchant_name": text(&application.materials, "name"),
        "apply_type": "ZHIFUTONG_CREATE",
        "apply_time": beijing_time(application.updated_ms),
        "status": status,
        "fk_audit": fk_audit,
        "kz_audit": kz_audit,
    });
    match application.status {
        ApplicationStatus::Active => {
            order["smid"] = json!(application.sub_merchant_id);
            order["sub_confirm"] = json!("FINISH");
        }
        ApplicationStatus::Rejected => {
            let reason = application.rejection_reason.clone().unwrap_or_default();
            order["reason"] = json!(reason);
            order["kz_audit_memo"] = json!(reason);
        }
        _ => {}
    }
    order
}

fn not_found(method: &str) -> Answer {
    business_error(method, "ORDER_NOT_EXIST", "申请单不存在")
}

fn zft_order_query(onboarding: &mut Onboarding, app_id: &str, biz: &Value, now: i64) -> Answer {
    let method = METHOD_ZFT_ORDER_QUERY;
    let order_id = text(biz, "order_id");
    let external_id = text(biz, "external_id");
    if order_id.is_empty() && external_id.is_empty() {
        return invalid(method, "external_id");
    }
    // `order_id` wins when both are given.
    let found = onboarding.applications.values_mut().find(|a| {
        a.provider == PROVIDER
            && a.submitted_by == app_id
            && if order_id.is_empty() {
                a.business_code == external_id
            } else {
                a.application_id == order_id
            }
    });
    let Some(application) = found else {
        return not_found(method);
    };
    looked_at(application, now);
    ok(method, json!({"orders": [application_order(application)]}))
}

// ---------------------------------------------------------------------------------------
// Settlement accounts

/// The remittance that verifies an account: 0.01..=0.99 CNY and a memo, both derived from
/// the business code (the same account always asks for the same), to the simulator's
/// account.
pub fn remittance(business_code: &str) -> Value {
    let digest = Sha256::digest(business_code.as_bytes());
    let fen = u16::from_be_bytes([digest[0], digest[1]]) % 99 + 1;
    let memo = u32::from_be_bytes([0, digest[2], digest[3], digest[4]]) % 1_000_000;
    json!({
        "type": "remittance",
        "amount": format!("0.{fen:02}"),
        "currency": "CNY",
        "to_account": VERIFICATION_ACCOUNT_NO,
        "to_account_name": VERIFICATION_ACCOUNT_NAME,
        "memo": format!("PGV{memo:06}"),
    })
}

fn account_status(status: AccountStatus) -> &'static str {
    match status {
        AccountStatus::PendingVerification => "031",
        AccountStatus::Verified => "99",
        AccountStatus::Failed => "-1",
    }
}

/// The verification step as answer fields (`verify_*`), while it is still to be done.
fn add_verification(fields: &mut Value, account: &Account) {
    if account.status != AccountStatus::PendingVerification {
        return;
    }
    let v = &account.verification;
    fields["verify_type"] = json!("REMITTANCE");
    fields["verify_amount"] = json!(text(v, "amount"));
    fields["verify_payee_account_no"] = json!(text(v, "to_account"));
    fields["verify_payee_account_name"] = json!(text(v, "to_account_name"));
    fields["verify_memo"] = json!(text(v, "memo"));
}

fn settlement_modify(
    onboarding: &mut Onboarding,
    app_id: &str,
    biz: &Value,
    notify_url: Option<&str>,
    now: i64,
) -> Answer {
    let method = METHOD_SETTLEMENT_MODIFY;
    let out_biz_no = match business_code(method, biz, "out_biz_no") {
        Ok(code) => code,
        Err(answer) => return answer,
    };
    let Some(card) = biz.get("biz_cards").filter(|c| c.is_object()) else {
        return invalid(method, "biz_cards");
    };
    let account_no = text(card, "account_no");
    if !(6..=32).contains(&account_no.len()) || !account_no.bytes().all(|b| b.is_ascii_digit()) {
        return invalid(method, "biz_cards.account_no");
    }
    for required in ["account_holder_name", "account_inst_name"] {
        if text(card, required).is_empty() {
            return invalid(method, &format!("biz_cards.{required}"));
        }
    }

    if let Some(existing) = onboarding.account(PROVIDER, &out_biz_no) {
        if existing.submitted_by != app_id {
            return business_error(method, "OUT_BIZ_NO_IN_USE", "外部业务号已被其他应用使用");
        }
        if existing.account_number != account_no {
            return business_error(
                method,
                "OUT_BIZ_NO_CONFLICT",
                "同一外部业务号的结算信息不一致",
            );
        }
        // The same request again: the same order, nothing new.
        let mut fields = json!({"order_id": existing.account_id, "out_biz_no": out_biz_no});
        add_verification(&mut fields, existing);
        return ok(method, fields);
    }

    // The sub-merchant it settles for: an active application of this app.
    let smid = text(biz, "smid");
    let mine = |a: &&Application| a.provider == PROVIDER && a.submitted_by == app_id;
    let sub_merchant = if smid.is_empty() {
        let active: Vec<&Application> = onboarding
            .applications
            .values()
            .filter(mine)
            .filter(|a| a.status == ApplicationStatus::Active)
            .collect();
        match active.as_slice() {
            [] => {
                return business_error(method, "SUB_MERCHANT_NOT_ACTIVE", "没有进件完成的二级商户");
            }
            [only] => only.sub_merchant_id.clone(),
            _ => return business_error(method, "SMID_REQUIRED", "请指定二级商户 smid"),
        }
    } else {
        match onboarding
            .applications
            .values()
            .filter(mine)
            .find(|a| a.sub_merchant_id.as_deref() == Some(smid.as_str()))
        {
            None => return business_error(method, "SMID_NOT_EXIST", "二级商户不存在"),
            Some(a) if a.status != ApplicationStatus::Active => {
                return business_error(method, "SUB_MERCHANT_NOT_ACTIVE", "二级商户未进件完成");
            }
            Some(a) => a.sub_merchant_id.clone(),
        }
    };

    let account = Account {
        provider: PROVIDER.into(),
        business_code: out_biz_no.clone(),
        account_id: order_number(),
        submitted_by: app_id.into(),
        sub_merchant_id: sub_merchant,
        account_holder: text(card, "account_holder_name"),
        account_number: account_no,
        bank_name: text(card, "account_inst_name"),
        status: AccountStatus::PendingVerification,
        failure_reason: None,
        verification: remittance(&out_biz_no),
        notify_url: notify_url.map(str::to_owned),
        created_ms: now,
        updated_ms: now,
    };
    let mut fields = json!({"order_id": account.account_id, "out_biz_no": out_biz_no});
    add_verification(&mut fields, &account);
    onboarding
        .accounts
        .insert((PROVIDER.to_owned(), out_biz_no), account);
    ok(method, fields)
}

fn account_order(account: &Account) -> Value {
    let mut fields = json!({
        "order_id": account.account_id,
        "out_biz_no": account.business_code,
        "apply_type": "ZHIFUTONG_MODIFY",
        "apply_time": beijing_time(account.created_ms),
        "status": account_status(account.status),
    });
    if let Some(smid) = &account.sub_merchant_id {
        fields["ip_role_id"] = json!([smid]);
    }
    if account.status == AccountStatus::Failed {
        fields["reason"] = json!(account.failure_reason.clone().unwrap_or_default());
    }
    add_verification(&mut fields, account);
    fields
}

fn order_query(onboarding: &mut Onboarding, app_id: &str, biz: &Value, now: i64) -> Answer {
    let method = METHOD_ORDER_QUERY;
    let order_id = text(biz, "order_id");
    let out_biz_no = text(biz, "out_biz_no");
    if order_id.is_empty() && out_biz_no.is_empty() {
        return invalid(method, "order_id");
    }
    let account = onboarding.accounts.values().find(|a| {
        a.provider == PROVIDER
            && a.submitted_by == app_id
            && (out_biz_no.is_empty() || a.business_code == out_biz_no)
            && (order_id.is_empty() || a.account_id == order_id)
    });
    if let Some(account) = account {
        return ok(method, account_order(account));
    }
    if !out_biz_no.is_empty() {
        return not_found(method);
    }
    // An application's order, by its id.
    let Some(application) = onboarding.applications.values_mut().find(|a| {
        a.provider == PROVIDER && a.submitted_by == app_id && a.application_id == order_id
    }) else {
        return not_found(method);
    };
    looked_at(application, now);
    let order = application_order(application);
    let mut fields = json!({
        "order_id": order["order_id"],
        "merchant_name": order["merchant_name"],
        "apply_type": order["apply_type"],
        "apply_time": order["apply_time"],
        "status": order["status"],
    });
    if let Some(smid) = &application.sub_merchant_id
        && application.status == ApplicationStatus::Active
    {
        fields["ip_role_id"] = json!([smid]);
    }
    if let Some(reason) = order.get("reason") {
        fields["reason"] = reason.clone();
    }
    ok(method, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "2021000000000001";

    fn materials(external_id: &str) -> Value {
        json!({
            "external_id": external_id,
            "name": "杭州示例科技有限公司",
            "alias_name": "杭州示例科技有限公司",
            "merchant_type": "01",
            "mcc": "B0001",
            "cert_type": "201",
            "cert_no": "91330100MA2AXXXX1X",
            "legal_name": "张三",
            "legal_cert_no": "33010219900101123X",
            "contact_infos": [{"name": "李四", "mobile": "13800000000"}],
            "service": ["当面付"],
        })
    }

    fn card(out_biz_no: &str, smid: Option<&str>) -> Value {
        let mut biz = json!({
            "out_biz_no": out_biz_no,
            "biz_cards": {"account_holder_name": "杭州示例科技有限公司", "account_no": "6222021234567890",
                "account_inst_name": "中国工商银行", "account_type": "DC", "usage_type": "01"},
        });
        if let Some(smid) = smid {
            biz["smid"] = json!(smid);
        }
        biz
    }

    fn call(onboarding: &mut Onboarding, method: &str, biz: Value) -> Value {
        call_as(onboarding, APP, method, biz)
    }

    fn call_as(onboarding: &mut Onboarding, app: &str, method: &str, biz: Value) -> Value {
        let answer = serve(onboarding, method, app, &biz, None, 1_700_000_000_000);
        assert_eq!(answer.method, method);
        answer.object
    }

    fn sub_code(answer: &Value) -> &str {
        assert_eq!(answer["code"], "40004", "{answer}");
        answer["sub_code"].as_str().unwrap()
    }

    fn application<'a>(onboarding: &'a mut Onboarding, code: &str) -> &'a mut Application {
        onboarding.application(PROVIDER, code).unwrap()
    }

    fn approve(onboarding: &mut Onboarding, code: &str, smid: &str) {
        let a = application(onboarding, code);
        a.status = ApplicationStatus::Active;
        a.sub_merchant_id = Some(smid.into());
    }

    #[test]
    fn an_application_is_submitted_then_under_review_at_its_first_query() {
        let mut ob = Onboarding::default();
        let created = call(&mut ob, METHOD_CREATE, materials("act_1"));
        assert_eq!(created["code"], "10000");
        let order_id = created["order_id"].as_str().unwrap().to_owned();
        assert!(
            order_id.starts_with("2026") && order_id.len() == 28,
            "{order_id}"
        );
        assert!(order_id.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            application(&mut ob, "act_1").status,
            ApplicationStatus::Submitted
        );
        assert_eq!(application(&mut ob, "act_1").submitted_by, APP);

        let first = call(
            &mut ob,
            METHOD_ZFT_ORDER_QUERY,
            json!({"external_id": "act_1"}),
        );
        assert_eq!(first["code"], "10000");
        let order = &first["orders"][0];
        assert_eq!(order["status"], "031");
        assert_eq!(order["order_id"], order_id.as_str());
        assert_eq!(order["external_id"], "act_1");
        assert_eq!(order["apply_type"], "ZHIFUTONG_CREATE");
        assert_eq!(
            application(&mut ob, "act_1").status,
            ApplicationStatus::UnderReview
        );
        // By order_id too (which wins over external_id).
        let by_id = call(
            &mut ob,
            METHOD_ZFT_ORDER_QUERY,
            json!({"order_id": order_id, "external_id": "nonsense"}),
        );
        assert_eq!(by_id["orders"][0]["external_id"], "act_1");

        approve(&mut ob, "act_1", "1666666666");
        let active = call(
            &mut ob,
            METHOD_ZFT_ORDER_QUERY,
            json!({"external_id": "act_1"}),
        );
        assert_eq!(active["orders"][0]["status"], "99");
        assert_eq!(active["orders"][0]["smid"], "1666666666");
        assert!(active["orders"][0].get("reason").is_none());
    }

    #[test]
    fn resubmitting_after_a_rejection_and_only_then() {
        let mut ob = Onboarding::default();
        let first = call(&mut ob, METHOD_CREATE, materials("act_1"))["order_id"].clone();
        // While submitted or under review: the same order, no second application.
        assert_eq!(
            call(&mut ob, METHOD_CREATE, materials("act_1"))["order_id"],
            first
        );
        call(
            &mut ob,
            METHOD_ZFT_ORDER_QUERY,
            json!({"external_id": "act_1"}),
        );
        assert_eq!(
            call(&mut ob, METHOD_CREATE, materials("act_1"))["order_id"],
            first
        );
        assert_eq!(application(&mut ob, "act_1").submissions, 1);
        assert_eq!(
            application(&mut ob, "act_1").status,
            ApplicationStatus::UnderReview
        );

        let a = application(&mut ob, "act_1");
        a.status = ApplicationStatus::Rejected;
        a.rejection_reason = Some("营业执照不清晰".into());
        let rejected = call(
            &mut ob,
            METHOD_ZFT_ORDER_QUERY,
            json!({"external_id": "act_1"}),
        );
        assert_eq!(rejected["orders"][0]["status"], "-1");
        assert_eq!(rejected["orders"][0]["reason"], "营业执照不清晰");
        assert_eq!(rejected["orders"][0]["kz_audit"], "REJECT");

        let mut corrected = materials("act_1");
        corrected["name"] = json!("杭州示例科技股份有限公司");
        let again = call(&mut ob, METHOD_CREATE, corrected);
        assert_eq!(again["code"], "10000");
        assert_ne!(again["order_id"], first);
        let a = application(&mut ob, "act_1");
        assert_eq!(a.submissions, 2);
        assert_eq!(a.status, ApplicationStatus::Submitted);
        assert_eq!(a.rejection_reason, None);
        assert_eq!(a.materials["name"], "杭州示例科技股份有限公司");

        // Active: the same order again.
        approve(&mut ob, "act_1", "1666666666");
        assert_eq!(
            call(&mut ob, METHOD_CREATE, materials("act_1"))["order_id"],
            again["order_id"]
        );
        assert_eq!(application(&mut ob, "act_1").submissions, 2);
        assert_eq!(
            application(&mut ob, "act_1").status,
            ApplicationStatus::Active
        );
    }

    #[test]
    fn applications_belong_to_their_app_and_bad_ones_are_refused() {
        let mut ob = Onboarding::default();
        call(&mut ob, METHOD_CREATE, materials("act_1"));
        let other = call_as(&mut ob, "2021999", METHOD_CREATE, materials("act_1"));
        assert_eq!(sub_code(&other), "EXTERNAL_ID_IN_USE");
        let hidden = call_as(
            &mut ob,
            "2021999",
            METHOD_ZFT_ORDER_QUERY,
            json!({"external_id": "act_1"}),
        );
        assert_eq!(sub_code(&hidden), "ORDER_NOT_EXIST");
        let none = call(
            &mut ob,
            METHOD_ZFT_ORDER_QUERY,
            json!({"external_id": "act_2"}),
        );
        assert_eq!(sub_code(&none), "ORDER_NOT_EXIST");
        let blank = call(&mut ob, METHOD_ZFT_ORDER_QUERY, json!({}));
        assert_eq!(blank["code"], "40002");

        for (field, value) in [
            ("external_id", json!("")),
            ("external_id", json!("x".repeat(65))),
            ("name", json!(" ")),
            ("mcc", Value::Null),
            ("legal_name", json!(7)),
            ("contact_infos", json!([])),
            ("contact_infos", json!([{"name": "李四"}])),
            ("service", json!([])),
        ] {
            let mut biz = materials("act_9");
            biz[field] = value;
            assert_eq!(
                call(&mut ob, METHOD_CREATE, biz)["code"],
                "40002",
                "{field}"
            );
        }
        let mut biz = materials("act_9");
        biz["cert_no"] = json!("12345");
        assert_eq!(
            sub_code(&call(&mut ob, METHOD_CREATE, biz)),
            "CERT_NO_INVALID"
        );
        let mut biz = materials("act_9");
        biz["legal_cert_no"] = json!("3301-0219");
        assert_eq!(
            sub_code(&call(&mut ob, METHOD_CREATE, biz)),
            "LEGAL_CERT_NO_INVALID"
        );
        assert!(ob.application(PROVIDER, "act_9").is_none());
    }

    #[test]
    fn binding_needs_an_active_sub_merchant_of_the_same_app() {
        let mut ob = Onboarding::default();
        assert_eq!(
            sub_code(&call(&mut ob, METHOD_SETTLEMENT_MODIFY, card("ba_1", None))),
            "SUB_MERCHANT_NOT_ACTIVE"
        );
        call(&mut ob, METHOD_CREATE, materials("act_1"));
        assert_eq!(
            sub_code(&call(&mut ob, METHOD_SETTLEMENT_MODIFY, card("ba_1", None))),
            "SUB_MERCHANT_NOT_ACTIVE"
        );
        approve(&mut ob, "act_1", "1666666666");
        assert_eq!(
            sub_code(&call(
                &mut ob,
                METHOD_SETTLEMENT_MODIFY,
                card("ba_1", Some("1999"))
            )),
            "SMID_NOT_EXIST"
        );
        // Another app's sub-merchant does not exist for this one.
        assert_eq!(
            sub_code(&call_as(
                &mut ob,
                "2021999",
                METHOD_SETTLEMENT_MODIFY,
                card("ba_1", Some("1666666666"))
            )),
            "SMID_NOT_EXIST"
        );
        // Two active sub-merchants: which one must be said.
        call(&mut ob, METHOD_CREATE, materials("act_2"));
        approve(&mut ob, "act_2", "1777777777");
        assert_eq!(
            sub_code(&call(&mut ob, METHOD_SETTLEMENT_MODIFY, card("ba_1", None))),
            "SMID_REQUIRED"
        );
        application(&mut ob, "act_2").status = ApplicationStatus::Rejected;
        assert_eq!(
            sub_code(&call(
                &mut ob,
                METHOD_SETTLEMENT_MODIFY,
                card("ba_1", Some("1777777777"))
            )),
            "SUB_MERCHANT_NOT_ACTIVE"
        );
        assert!(ob.accounts.is_empty());

        let bound = call(
            &mut ob,
            METHOD_SETTLEMENT_MODIFY,
            card("ba_1", Some("1666666666")),
        );
        assert_eq!(bound["code"], "10000", "{bound}");
        let account = ob.account(PROVIDER, "ba_1").unwrap();
        assert_eq!(account.sub_merchant_id.as_deref(), Some("1666666666"));
        assert_eq!(account.status, AccountStatus::PendingVerification);
        assert_eq!(bound["order_id"], account.account_id.as_str());
        assert_eq!(bound["verify_type"], "REMITTANCE");
        assert_eq!(bound["verify_amount"], account.verification["amount"]);
        assert_eq!(bound["verify_payee_account_no"], VERIFICATION_ACCOUNT_NO);
        // Without smid, the app's only active sub-merchant.
        let only = call(&mut ob, METHOD_SETTLEMENT_MODIFY, card("ba_2", None));
        assert_eq!(only["code"], "10000");
        assert_eq!(
            ob.account(PROVIDER, "ba_2")
                .unwrap()
                .sub_merchant_id
                .as_deref(),
            Some("1666666666")
        );
    }

    #[test]
    fn a_bound_account_is_answered_again_and_queried() {
        let mut ob = Onboarding::default();
        call(&mut ob, METHOD_CREATE, materials("act_1"));
        approve(&mut ob, "act_1", "1666666666");
        let bound = call(
            &mut ob,
            METHOD_SETTLEMENT_MODIFY,
            card("ba_1", Some("1666666666")),
        );
        let again = call(
            &mut ob,
            METHOD_SETTLEMENT_MODIFY,
            card("ba_1", Some("1666666666")),
        );
        assert_eq!(again, bound);
        assert_eq!(ob.accounts.len(), 1);
        let mut other_card = card("ba_1", Some("1666666666"));
        other_card["biz_cards"]["account_no"] = json!("6222029999999999");
        assert_eq!(
            sub_code(&call(&mut ob, METHOD_SETTLEMENT_MODIFY, other_card)),
            "OUT_BIZ_NO_CONFLICT"
        );
        assert_eq!(
            sub_code(&call_as(
                &mut ob,
                "2021999",
                METHOD_SETTLEMENT_MODIFY,
                card("ba_1", None)
            )),
            "OUT_BIZ_NO_IN_USE"
        );

        let order_id = bound["order_id"].as_str().unwrap().to_owned();
        let pending = call(
            &mut ob,
            METHOD_ORDER_QUERY,
            json!({"order_id": order_id, "out_biz_no": "ba_1"}),
        );
        assert_eq!(pending["status"], "031");
        assert_eq!(pending["apply_type"], "ZHIFUTONG_MODIFY");
        assert_eq!(pending["verify_amount"], bound["verify_amount"]);
        assert_eq!(pending["ip_role_id"], json!(["1666666666"]));
        // Either key finds it; disagreeing keys find nothing.
        assert_eq!(
            call(&mut ob, METHOD_ORDER_QUERY, json!({"out_biz_no": "ba_1"}))["status"],
            "031"
        );
        assert_eq!(
            call(&mut ob, METHOD_ORDER_QUERY, json!({"order_id": order_id}))["status"],
            "031"
        );
        let mismatch = call(
            &mut ob,
            METHOD_ORDER_QUERY,
            json!({"order_id": "2026000", "out_biz_no": "ba_1"}),
        );
        assert_eq!(sub_code(&mismatch), "ORDER_NOT_EXIST");
        let foreign = call_as(
            &mut ob,
            "2021999",
            METHOD_ORDER_QUERY,
            json!({"out_biz_no": "ba_1"}),
        );
        assert_eq!(sub_code(&foreign), "ORDER_NOT_EXIST");

        ob.account(PROVIDER, "ba_1").unwrap().status = AccountStatus::Verified;
        let verified = call(&mut ob, METHOD_ORDER_QUERY, json!({"out_biz_no": "ba_1"}));
        assert_eq!(verified["status"], "99");
        assert!(verified.get("verify_type").is_none());
        let account = ob.account(PROVIDER, "ba_1").unwrap();
        account.status = AccountStatus::Failed;
        account.failure_reason = Some("remittance not received".into());
        let failed = call(&mut ob, METHOD_ORDER_QUERY, json!({"out_biz_no": "ba_1"}));
        assert_eq!(failed["status"], "-1");
        assert_eq!(failed["reason"], "remittance not received");

        // An application's order by its id.
        let app_order = application(&mut ob, "act_1").application_id.clone();
        let app = call(&mut ob, METHOD_ORDER_QUERY, json!({"order_id": app_order}));
        assert_eq!(app["status"], "99");
        assert_eq!(app["apply_type"], "ZHIFUTONG_CREATE");
        assert_eq!(app["ip_role_id"], json!(["1666666666"]));
        assert_eq!(
            call(&mut ob, METHOD_ORDER_QUERY, json!({}))["code"],
            "40002"
        );
    }

    #[test]
    fn bad_settlement_requests_are_refused() {
        let mut ob = Onboarding::default();
        call(&mut ob, METHOD_CREATE, materials("act_1"));
        approve(&mut ob, "act_1", "1666666666");
        for (path, value) in [
            (&["out_biz_no"][..], json!("")),
            (&["biz_cards"], json!([])),
            (&["biz_cards", "account_no"], json!("12345")),
            (&["biz_cards", "account_no"], json!("6222-0212-3456")),
            (&["biz_cards", "account_holder_name"], json!("")),
            (&["biz_cards", "account_inst_name"], Value::Null),
        ] {
            let mut biz = card("ba_1", None);
            match path {
                [one] => biz[*one] = value,
                [a, b] => biz[*a][*b] = value,
                _ => unreachable!(),
            }
            assert_eq!(
                call(&mut ob, METHOD_SETTLEMENT_MODIFY, biz)["code"],
                "40002",
                "{path:?}"
            );
        }
        assert!(ob.accounts.is_empty());
    }

    #[test]
    fn remittances_are_small_and_deterministic() {
        let first = remittance("ba_1");
        assert_eq!(first, remittance("ba_1"));
        let mut amounts = std::collections::BTreeSet::new();
        for i in 0..500 {
            let r = remittance(&format!("ba_{i}"));
            let amount = r["amount"].as_str().unwrap();
            let fen: u32 = amount.strip_prefix("0.").unwrap().parse().unwrap();
            assert!((1..=99).contains(&fen), "{amount}");
            assert_eq!(amount.len(), 4);
            let memo = r["memo"].as_str().unwrap();
            assert!(memo.starts_with("PGV") && memo.len() == 9, "{memo}");
            amounts.insert(fen);
        }
        assert!(amounts.len() > 50, "the amounts should spread");
    }

    /// Through `gateway.do`'s dispatch: the RSA2 request check, then signed answers.
    #[test]
    fn signed_calls_through_the_gateway() {
        use rsa::pkcs1v15::{SigningKey, VerifyingKey};
        use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
        use std::collections::BTreeMap;
        use std::sync::Arc;

        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/sandbox-keys");
        let sim = Arc::new(Sim::new(
            crate::keys::Keys::load(&dir).unwrap(),
            crate::notifier::Notifier::new(1),
            crate::state::Timings {
                confirm_after: std::time::Duration::from_secs(1),
                refund_after: std::time::Duration::from_secs(1),
            },
            None,
        ));
        let pem = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let app_key = SigningKey::<Sha256>::new(
            rsa::RsaPrivateKey::from_pkcs8_pem(&pem("alipay_app_private_key.pem")).unwrap(),
        );
        let alipay_key = VerifyingKey::<Sha256>::new(
            rsa::RsaPublicKey::from_public_key_pem(&pem("alipay_public_key.pem")).unwrap(),
        );
        let request = |method: &str, biz: &Value, forge: bool| {
            let mut params: BTreeMap<String, String> = [
                ("app_id", APP),
                ("method", method),
                ("format", "JSON"),
                ("charset", "utf-8"),
                ("sign_type", "RSA2"),
                ("timestamp", "2026-01-01 08:00:00"),
                ("version", "1.0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            params.insert("biz_content".into(), biz.to_string());
            let signed = crate::alipay::signing_string(&params, &["sign"]);
            let data = if forge {
                b"something else".to_vec()
            } else {
                signed.into_bytes()
            };
            params.insert("sign".into(), keys::sign(&app_key, &data));
            let answer = crate::alipay::handle(&sim, method, &params);
            // The body is signed over the object's text, as sent.
            let body = crate::alipay::render(&sim, &answer, false);
            let object = answer.object.to_string();
            let parsed: Value = serde_json::from_str(&body).unwrap();
            let key = format!("{}_response", method.replace('.', "_"));
            assert_eq!(parsed[&key], answer.object);
            assert!(body.contains(&object));
            assert!(keys::verify(
                &alipay_key,
                object.as_bytes(),
                parsed["sign"].as_str().unwrap()
            ));
            answer.object
        };

        let forged = request(METHOD_CREATE, &materials("act_1"), true);
        assert_eq!(forged["sub_code"], "isv.invalid-signature");
        assert!(
            sim.alipay
                .onboarding
                .lock()
                .unwrap()
                .applications
                .is_empty()
        );

        let created = request(METHOD_CREATE, &materials("act_1"), false);
        assert_eq!(created["code"], "10000", "{created}");
        let queried = request(
            METHOD_ZFT_ORDER_QUERY,
            &json!({"external_id": "act_1"}),
            false,
        );
        assert_eq!(queried["orders"][0]["status"], "031");
        approve(
            &mut sim.alipay.onboarding.lock().unwrap(),
            "act_1",
            "1666666666",
        );
        let bound = request(
            METHOD_SETTLEMENT_MODIFY,
            &card("ba_1", Some("1666666666")),
            false,
        );
        assert_eq!(bound["verify_type"], "REMITTANCE");
        let status = request(METHOD_ORDER_QUERY, &json!({"out_biz_no": "ba_1"}), false);
        assert_eq!(status["status"], "031");
        // Trade methods still reach the ledger.
        let trade = request(
            "alipay.trade.query",
            &json!({"out_trade_no": "pay_1"}),
            false,
        );
        assert_eq!(trade["sub_code"], "ACQ.TRADE_NOT_EXIST");
    }

    #[test]
    fn other_methods_are_not_ours() {
        let mut ob = Onboarding::default();
        let answer = serve(&mut ob, "alipay.trade.query", APP, &json!({}), None, 0);
        assert_eq!(answer.object["sub_code"], "isv.invalid-method");
    }
}
