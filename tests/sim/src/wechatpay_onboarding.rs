//! WeChat Pay's service-provider onboarding (特约商户进件) and settlement accounts, behind the
//! same request authentication and signed answers as the payment endpoints (the routes are
//! in `wechatpay.rs`, which calls these functions with the authenticated `mchid`):
//!
//! - `POST /v3/applyment4sub/applyment/` (`business_code` = the merchant's number for the
//!   application): a new application starts `submitted` and answers its `applyment_id`; the
//!   same `business_code` again is `400 PROCESSING` while it is submitted, under review or
//!   finished, and a resubmission after a rejection (`submissions` + 1, back to `submitted`,
//!   the same `applyment_id`);
//! - `GET /v3/applyment4sub/applyment/business_code/{business_code}`: the first query moves a
//!   `submitted` application to `under_review`; `APPLYMENT_STATE_AUDITING` (submitted or
//!   under review), `APPLYMENT_STATE_FINISHED` (active, with `sub_mchid`),
//!   `APPLYMENT_STATE_REJECTED` (with `audit_detail[].reject_reason`);
//! - `POST /v3/apply4sub/sub_merchants/{sub_mchid}/modify-settlement`: needs a finished
//!   application of the same service provider and no other change of the sub-merchant
//!   waiting for verification (as at WeChat Pay, a change has no business number: sent
//!   again while it waits, it is refused); answers the `application_no`, under which the
//!   account is kept (and the control endpoints find it), and the verification remittance
//!   (`account_validation`, derived from the `application_no`);
//! - `GET /v3/apply4sub/sub_merchants/{sub_mchid}/application/{application_no}`: the change,
//!   `AUDIT_SUCCESS` (the simulator accepts changes at once: the account's verification
//!   decides);
//! - `GET /v3/apply4sub/sub_merchants/{sub_mchid}/settlement`: the sub-merchant's newest
//!   account, `VERIFYING` (with `account_validation`) until the control endpoint verifies
//!   (`VERIFY_SUCCESS`) or fails it (`VERIFY_FAIL`, `verify_fail_reason`).
//!
//! Reviews and verifications are the control endpoints' (`/_sim/wechatpay/applications/...`,
//! `/_sim/wechatpay/accounts/...`). Records live in the shared `Onboarding` model under
//! ("wechatpay", business code) and belong to the service provider (`mchid`) that submitted
//! them. Account numbers in answers are masked as WeChat Pay's default rule does (first two
//! and last two characters).

use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::keys;
use crate::onboarding::{
    Account, AccountStatus, Application, ApplicationStatus, Media, Onboarding,
};
use crate::wechatpay::rfc3339_beijing;

pub const PROVIDER: &str = "wechatpay";

/// The simulator's account that verification remittances go to.
pub const VERIFICATION_ACCOUNT_NO: &str = "7955000000008430002";
pub const VERIFICATION_ACCOUNT_NAME: &str = "paygate-sim 汇款验证户";
pub const VERIFICATION_BANK: &str = "招商银行深圳分行 (paygate-sim)";
/// How long the merchant has to make the remittance.
const VERIFICATION_DAYS: i64 = 7;

/// An answer: status and JSON body (none for 204).
pub type Answer = (StatusCode, Option<Value>);

fn fail(status: StatusCode, code: &str, message: &str) -> Answer {
    (status, Some(json!({"code": code, "message": message})))
}

fn text<'a>(body: &'a Value, pointer: &str) -> &'a str {
    body.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `n` random decimal digits.
fn digits(n: usize) -> String {
    keys::random_token(n)
        .bytes()
        .map(|b| {
            if b.is_ascii_digit() {
                char::from(b)
            } else {
                char::from(b'0' + (b - b'A') % 10)
            }
        })
        .collect()
}

/// A business number: 1-124 of `[0-9A-Za-z_]`.
fn is_business_code(code: &str) -> bool {
    (1..=124).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// WeChat Pay's default masking of account numbers (`ACCOUNT_NUMBER_RULE_MASK_V1`): the
/// first two and last two characters, `*` for the rest.
pub fn mask_account(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let mut masked: String = chars[..2].iter().collect();
    masked.push_str(&"*".repeat(chars.len() - 4));
    masked.extend(&chars[chars.len() - 2..]);
    masked
}

/// A name masked to its first character.
fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{}", "*".repeat(chars.count())),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Applyments
// ---------------------------------------------------------------------------------------

/// Fields a submission must carry (JSON pointers into the body).
const REQUIRED: &[&str] = &[
    "/contact_info/contact_type",
    "/contact_info/contact_name",
    "/contact_info/mobile_phone",
    "/subject_info/subject_type",
    "/subject_info/business_license_info/license_number",
    "/subject_info/business_license_info/merchant_name",
    "/subject_info/business_license_info/legal_person",
    "/subject_info/identity_info/id_holder_type",
    "/subject_info/identity_info/id_doc_type",
    "/subject_info/identity_info/id_card_info/id_card_name",
    "/subject_info/identity_info/id_card_info/id_card_number",
    "/subject_info/identity_info/id_card_info/id_card_address",
    "/business_info/merchant_shortname",
    "/business_info/service_phone",
    "/business_info/sales_info/biz_store_info/biz_store_name",
    "/business_info/sales_info/biz_store_info/biz_store_address",
    "/settlement_info/settlement_id",
    "/bank_account_info/account_name",
    "/bank_account_info/account_bank",
    "/bank_account_info/account_number",
];

/// The fields an agent contact (`SUPER`) must add.
const AGENT_REQUIRED: &[&str] = &["/contact_info/contact_id_number"];

/// The images an enterprise applyment names by media id: the licence, both sides of the
/// legal person's identity card, the store's entrance and inside.
const MEDIA_FIELDS: &[&str] = &[
    "/subject_info/business_license_info/license_copy",
    "/subject_info/identity_info/id_card_info/id_card_copy",
    "/subject_info/identity_info/id_card_info/id_card_national",
    "/business_info/sales_info/biz_store_info/store_entrance_pic/0",
    "/business_info/sales_info/biz_store_info/indoor_pic/0",
];

/// The images an agent contact adds: both sides of the agent's card, the authorisation.
const AGENT_MEDIA_FIELDS: &[&str] = &[
    "/contact_info/contact_id_doc_copy",
    "/contact_info/contact_id_doc_copy_back",
    "/contact_info/business_authorization_letter",
];

/// A mainland identity card, as `applyment4sub` names it (the only kind the simulator
/// takes).
const ID_CARD: &str = "IDENTIFICATION_TYPE_IDCARD";
/// How WeChat Pay writes a term without an end.
const LONG_TERM: &str = "长期";

fn is_date(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// A term's begin and end: dates, the end after the begin or `长期`.
fn term_error(body: &Value, begin: &str, end: &str) -> Option<String> {
    let (b, e) = (text(body, begin), text(body, end));
    if !is_date(b) {
        return Some(format!("输入源“{begin}”须为日期 YYYY-MM-DD"));
    }
    if !(e == LONG_TERM || (is_date(e) && e > b)) {
        return Some(format!("输入源“{end}”须为晚于开始时间的日期或“长期”"));
    }
    None
}

fn is_area_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// What a submission lacks or gets wrong, as WeChat Pay would say it.
fn applyment_error(onboarding: &Onboarding, mchid: &str, body: &Value) -> Option<String> {
    // What is wrong with one field: missing, or (`media`) not an image the submitter uploaded.
    let missing = |field: &str| {
        text(body, field)
            .trim()
            .is_empty()
            .then(|| format!("输入源“{field}”映射到字段必填性规则校验失败,此字段为必填项"))
    };
    let media = |field: &str| {
        missing(field).or_else(|| {
            onboarding
                .media
                .get(text(body, field))
                .is_none_or(|m| m.uploaded_by != mchid)
                .then(|| format!("输入源“{field}”的 MediaID 无效或不属于本商户"))
        })
    };
    let required = |fields: &[&str]| fields.iter().find_map(|f| missing(f));
    let images = |fields: &[&str]| fields.iter().find_map(|f| media(f));
    if let Some(error) = required(REQUIRED).or_else(|| images(MEDIA_FIELDS)) {
        return Some(error);
    }
    if text(body, "/subject_info/identity_info/id_doc_type") != ID_CARD {
        return Some(format!("id_doc_type 仅支持 {ID_CARD} (paygate-sim)"));
    }
    let card = "/subject_info/identity_info/id_card_info";
    if let Some(error) = term_error(
        body,
        &format!("{card}/card_period_begin"),
        &format!("{card}/card_period_end"),
    ) {
        return Some(error);
    }
    if !is_area_code(text(
        body,
        "/business_info/sales_info/biz_store_info/biz_address_code",
    )) {
        return Some("biz_address_code 须为 6 位省市编码".into());
    }
    if text(body, "/bank_account_info/bank_account_type") != "BANK_ACCOUNT_TYPE_CORPORATE"
        || text(body, "/bank_account_info/account_name")
            != text(body, "/subject_info/business_license_info/merchant_name")
    {
        return Some("企业主体须使用对公账户,开户名称须与营业执照上的商户名称一致".into());
    }
    if !is_area_code(text(body, "/bank_account_info/bank_address_code")) {
        return Some("bank_address_code 须为 6 位省市编码".into());
    }
    match text(body, "/contact_info/contact_type") {
        "LEGAL" => {}
        "SUPER" => {
            if let Some(error) = required(AGENT_REQUIRED)
                .or_else(|| images(AGENT_MEDIA_FIELDS))
                .or_else(|| {
                    term_error(
                        body,
                        "/contact_info/contact_period_begin",
                        "/contact_info/contact_period_end",
                    )
                })
            {
                return Some(error);
            }
            if text(body, "/contact_info/contact_id_doc_type") != ID_CARD {
                return Some(format!(
                    "contact_id_doc_type 仅支持 {ID_CARD} (paygate-sim)"
                ));
            }
        }
        _ => return Some("contact_type 须为 LEGAL 或 SUPER".into()),
    }
    let owners = body
        .pointer("/subject_info/ubo_info_list")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    match body
        .pointer("/subject_info/identity_info/owner")
        .and_then(Value::as_bool)
    {
        None => return Some("identity_info.owner 必填 (经营者/法人是否为受益人)".into()),
        Some(false) if !(1..=4).contains(&owners) => {
            return Some(
                "经营者/法人不是最终受益人时,须填写 1-4 位受益所有人 (ubo_info_list)".into(),
            );
        }
        Some(_) => {}
    }
    (0..owners).find_map(|i| {
        let ubo = format!("/subject_info/ubo_info_list/{i}");
        ["ubo_id_doc_name", "ubo_id_doc_number", "ubo_id_doc_address"]
            .iter()
            .find_map(|f| missing(&format!("{ubo}/{f}")))
            .or_else(|| {
                ["ubo_id_doc_copy", "ubo_id_doc_copy_back"]
                    .iter()
                    .find_map(|f| media(&format!("{ubo}/{f}")))
            })
            .or_else(|| {
                term_error(
                    body,
                    &format!("{ubo}/ubo_period_begin"),
                    &format!("{ubo}/ubo_period_end"),
                )
            })
            .or_else(|| {
                (text(body, &format!("{ubo}/ubo_id_doc_type")) != ID_CARD)
                    .then(|| format!("ubo_id_doc_type 仅支持 {ID_CARD} (paygate-sim)"))
            })
    })
}

/// The largest image WeChat Pay's media upload takes: 2M.
pub const MEDIA_BYTES_MAX: usize = 2 << 20;

/// A media upload's parts, as read from the form.
#[derive(Debug, Default)]
pub struct Upload {
    pub meta: Option<Vec<u8>>,
    pub file_name: Option<String>,
    pub file: Option<Vec<u8>>,
}

/// What an image's first bytes say it is, when it is one WeChat Pay takes.
fn image_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if bytes.starts_with(b"BM") {
        Some("bmp")
    } else {
        None
    }
}

/// `POST /v3/merchant/media/upload`, its parts read and its signature (over `meta`) checked:
/// `meta` = `{"filename","sha256"}`, the filename ending `.jpg`, `.bmp` or `.png` as the
/// image is, the image at most 2M, its SHA-256 (hex) `meta.sha256`. Answers a new
/// `media_id`; the simulator keeps its digest and size, not the image.
pub fn upload_media(
    onboarding: &mut Onboarding,
    mchid: &str,
    meta: &Value,
    upload: &Upload,
) -> Answer {
    let refuse = |message: &str| fail(StatusCode::BAD_REQUEST, "PARAM_ERROR", message);
    let filename = text(meta, "/filename");
    let sha256 = text(meta, "/sha256");
    if upload.meta.is_none() || filename.is_empty() || sha256.is_empty() {
        return refuse("meta 缺失或缺少 filename、sha256");
    }
    let Some(file) = upload.file.as_deref().filter(|f| !f.is_empty()) else {
        return refuse("file 缺失");
    };
    if file.len() > MEDIA_BYTES_MAX {
        return refuse("文件大小不能超过2M");
    }
    let extension = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let Some(kind) = image_kind(file) else {
        return refuse("媒体图片只支持JPG、BMP、PNG格式");
    };
    if extension != kind {
        return refuse("filename 须以JPG、BMP、PNG为后缀,且与文件格式一致");
    }
    let digest = hex::encode(Sha256::digest(file));
    if !digest.eq_ignore_ascii_case(sha256) {
        return refuse("sha256 与文件内容不一致");
    }
    let media_id = format!("V1_{}", keys::random_token(60));
    onboarding.media.insert(
        media_id.clone(),
        Media {
            uploaded_by: mchid.into(),
            filename: filename.into(),
            sha256: digest,
            bytes: file.len(),
        },
    );
    (StatusCode::OK, Some(json!({"media_id": media_id})))
}

/// `POST /v3/applyment4sub/applyment/`.
pub fn submit(onboarding: &mut Onboarding, mchid: &str, body: &Value, now: i64) -> Answer {
    let business_code = text(body, "/business_code");
    if !is_business_code(business_code) {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "输入源“/business_code”映射到字段“业务申请编号”校验失败: 1-124 位数字、字母或下划线",
        );
    }
    if let Some(message) = applyment_error(onboarding, mchid, body) {
        return fail(StatusCode::BAD_REQUEST, "PARAM_ERROR", &message);
    }
    if let Some(existing) = onboarding.application(PROVIDER, business_code) {
        if existing.submitted_by != mchid {
            return fail(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                "业务申请编号已被其他服务商使用",
            );
        }
        return match existing.status {
            ApplicationStatus::Rejected => {
                existing.materials = body.clone();
                existing.submissions += 1;
                existing.status = ApplicationStatus::Submitted;
                existing.rejection_reason = None;
                existing.updated_ms = now;
                (StatusCode::OK, Some(submitted(existing)))
            }
            ApplicationStatus::Active => fail(
                StatusCode::BAD_REQUEST,
                "PROCESSING",
                "申请单已完成,请勿重复提交",
            ),
            ApplicationStatus::Submitted
            | ApplicationStatus::UnderReview
            | ApplicationStatus::AwaitingSignature => fail(
                StatusCode::BAD_REQUEST,
                "PROCESSING",
                "存在流程进行中的申请单,请检查是否重入",
            ),
        };
    }
    let application = Application {
        provider: PROVIDER.into(),
        business_code: business_code.into(),
        application_id: format!("2000002{}", digits(9)),
        submitted_by: mchid.into(),
        sub_merchant_id: None,
        materials: body.clone(),
        status: ApplicationStatus::Submitted,
        rejection_reason: None,
        submissions: 1,
        notify_url: None,
        created_ms: now,
        updated_ms: now,
    };
    let answer = submitted(&application);
    onboarding
        .applications
        .insert((PROVIDER.to_owned(), business_code.to_owned()), application);
    (StatusCode::OK, Some(answer))
}

fn applyment_id(application: &Application) -> Value {
    application
        .application_id
        .parse::<u64>()
        .map_or_else(|_| json!(application.application_id), |id| json!(id))
}

fn submitted(application: &Application) -> Value {
    json!({"applyment_id": applyment_id(application)})
}

/// WeChat Pay's words for an application's state.
pub fn applyment_state(status: ApplicationStatus) -> (&'static str, &'static str) {
    match status {
        ApplicationStatus::Submitted | ApplicationStatus::UnderReview => {
            ("APPLYMENT_STATE_AUDITING", "审核中")
        }
        ApplicationStatus::Rejected => ("APPLYMENT_STATE_REJECTED", "已驳回"),
        ApplicationStatus::AwaitingSignature => ("APPLYMENT_STATE_TO_BE_SIGNED", "待签约"),
        ApplicationStatus::Active => ("APPLYMENT_STATE_FINISHED", "已完成"),
    }
}

/// `GET /v3/applyment4sub/applyment/business_code/{business_code}`.
pub fn query(onboarding: &mut Onboarding, mchid: &str, business_code: &str, now: i64) -> Answer {
    let Some(application) = onboarding
        .application(PROVIDER, business_code)
        .filter(|a| a.submitted_by == mchid)
    else {
        return fail(StatusCode::NOT_FOUND, "APPLYMENT_NOTEXIST", "申请单不存在");
    };
    if application.status == ApplicationStatus::Submitted {
        application.status = ApplicationStatus::UnderReview;
        application.updated_ms = now;
    }
    let (state, message) = applyment_state(application.status);
    let mut answer = json!({
        "business_code": application.business_code,
        "applyment_id": applyment_id(application),
        "sign_url": format!(
            "https://pay.weixin.qq.com/public/apply4ec_sign/s?applymentId={}&sign=paygate-sim",
            application.application_id
        ),
        "applyment_state": state,
        "applyment_state_msg": message,
    });
    match application.status {
        // WeChat Pay gives the sub-merchant number from `TO_BE_SIGNED` on.
        ApplicationStatus::Active | ApplicationStatus::AwaitingSignature => {
            answer["sub_mchid"] = json!(application.sub_merchant_id);
        }
        ApplicationStatus::Rejected => {
            answer["audit_detail"] = json!([{
                "field": "",
                "field_name": "",
                "reject_reason": application.rejection_reason.clone().unwrap_or_default(),
            }]);
        }
        ApplicationStatus::Submitted | ApplicationStatus::UnderReview => {}
    }
    (StatusCode::OK, Some(answer))
}

// ---------------------------------------------------------------------------------------
// Settlement accounts
// ---------------------------------------------------------------------------------------

/// The finished application of `sub_mchid` that `mchid` submitted, or the error answer.
fn sub_merchant<'a>(
    onboarding: &'a Onboarding,
    mchid: &str,
    sub_mchid: &str,
) -> Result<&'a Application, Answer> {
    let application = onboarded_by(onboarding, mchid, sub_mchid)?;
    if application.status != ApplicationStatus::Active {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "特约商户未完成进件,不能修改结算账户",
        ));
    }
    Ok(application)
}

/// Whether `mchid` may place orders for `sub_mchid`: a sub-merchant it onboarded, whose
/// applyment is finished. WeChat Pay refuses the service provider anyone else's.
pub fn collecting_sub_merchant(
    onboarding: &Onboarding,
    mchid: &str,
    sub_mchid: &str,
) -> Result<(), Answer> {
    let application = onboarded_by(onboarding, mchid, sub_mchid)?;
    if application.status != ApplicationStatus::Active {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "特约商户未完成进件,不能收款",
        ));
    }
    Ok(())
}

/// The application of `sub_mchid` that `mchid` submitted, whatever its state.
fn onboarded_by<'a>(
    onboarding: &'a Onboarding,
    mchid: &str,
    sub_mchid: &str,
) -> Result<&'a Application, Answer> {
    onboarding
        .applications
        .values()
        .find(|a| {
            a.provider == PROVIDER
                && a.submitted_by == mchid
                && a.sub_merchant_id.as_deref() == Some(sub_mchid)
        })
        .ok_or_else(|| {
            fail(
                StatusCode::FORBIDDEN,
                "NO_AUTH",
                "该商户不是本服务商进件的子商户,无权限操作",
            )
        })
}

/// The remittance that verifies an account (`account_validation`): 0.01..=0.99 CNY and a
/// remark code, both derived from the account's business code (the same account always
/// asks for the same), to the simulator's account.
pub fn account_validation(
    business_code: &str,
    account_name: &str,
    account_number: &str,
    created_ms: i64,
) -> Value {
    let digest = Sha256::digest(business_code.as_bytes());
    let fen = u16::from_be_bytes([digest[0], digest[1]]) % 99 + 1;
    let remark = u32::from_be_bytes([0, digest[2], digest[3], digest[4]]) % 1_000_000;
    json!({
        "account_name": account_name,
        "account_no": mask_account(account_number),
        "pay_amount": fen,
        "destination_account_number": VERIFICATION_ACCOUNT_NO,
        "destination_account_name": VERIFICATION_ACCOUNT_NAME,
        "destination_account_bank": VERIFICATION_BANK,
        "city": "深圳市",
        "remark": format!("PGW{remark:06}"),
        "deadline": rfc3339_beijing(created_ms + VERIFICATION_DAYS * 86_400_000),
    })
}

fn modified(account: &Account) -> Value {
    let mut answer = json!({"application_no": account.account_id});
    if account.status == AccountStatus::PendingVerification {
        answer["account_validation"] = account.verification.clone();
    }
    answer
}

/// `POST /v3/apply4sub/sub_merchants/{sub_mchid}/modify-settlement`.
pub fn modify_settlement(
    onboarding: &mut Onboarding,
    mchid: &str,
    sub_mchid: &str,
    body: &Value,
    now: i64,
) -> Answer {
    let merchant_name = match sub_merchant(onboarding, mchid, sub_mchid) {
        Ok(application) => text(
            &application.materials,
            "/subject_info/business_license_info/merchant_name",
        )
        .to_owned(),
        Err(answer) => return answer,
    };
    if text(body, "/account_type") != "ACCOUNT_TYPE_BUSINESS" {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "企业主体仅支持对公银行账户 (ACCOUNT_TYPE_BUSINESS)",
        );
    }
    let account_bank = text(body, "/account_bank").trim();
    let account_number = text(body, "/account_number").trim();
    if !is_area_code(text(body, "/bank_address_code")) {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "输入源“/bank_address_code”映射到字段必填性规则校验失败,须为 6 位省市编码",
        );
    }
    if account_bank.is_empty()
        || !(4..=40).contains(&account_number.len())
        || !account_number.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "account_bank 与 account_number 必填,银行账号须为 4-40 位字母或数字",
        );
    }
    let account_name = Some(text(body, "/account_name").trim())
        .filter(|n| !n.is_empty())
        .unwrap_or(&merchant_name)
        .to_owned();
    let waiting = onboarding.accounts.values().any(|a| {
        a.provider == PROVIDER
            && a.sub_merchant_id.as_deref() == Some(sub_mchid)
            && a.status == AccountStatus::PendingVerification
    });
    if waiting {
        return fail(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "存在审核中的结算账户修改申请,请等待审核结果后再提交",
        );
    }
    let application_no = format!("1023{}", digits(10));
    let account = Account {
        provider: PROVIDER.into(),
        business_code: application_no.clone(),
        account_id: application_no.clone(),
        submitted_by: mchid.into(),
        sub_merchant_id: Some(sub_mchid.into()),
        account_holder: account_name.clone(),
        account_number: account_number.into(),
        bank_name: account_bank.into(),
        status: AccountStatus::PendingVerification,
        failure_reason: None,
        verification: account_validation(&application_no, &account_name, account_number, now),
        notify_url: None,
        created_ms: now,
        updated_ms: now,
    };
    let answer = modified(&account);
    onboarding
        .accounts
        .insert((PROVIDER.to_owned(), application_no), account);
    (StatusCode::OK, Some(answer))
}

/// What both settlement queries say about an account.
fn account_fields(account: &Account) -> Value {
    json!({
        "account_name": mask_name(&account.account_holder),
        "account_type": "ACCOUNT_TYPE_BUSINESS",
        "account_bank": account.bank_name,
        "account_number": mask_account(&account.account_number),
    })
}

/// `GET /v3/apply4sub/sub_merchants/{sub_mchid}/application/{application_no}`.
pub fn query_application(
    onboarding: &Onboarding,
    mchid: &str,
    sub_mchid: &str,
    application_no: &str,
) -> Answer {
    if let Err(answer) = sub_merchant(onboarding, mchid, sub_mchid) {
        return answer;
    }
    let Some(account) = onboarding.accounts.values().find(|a| {
        a.provider == PROVIDER
            && a.submitted_by == mchid
            && a.sub_merchant_id.as_deref() == Some(sub_mchid)
            && a.account_id == application_no
    }) else {
        return fail(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "申请单不存在");
    };
    let mut answer = account_fields(account);
    answer["verify_result"] = json!("AUDIT_SUCCESS");
    answer["verify_fail_reason"] = json!("");
    answer["verify_finish_time"] = json!(rfc3339_beijing(account.created_ms));
    (StatusCode::OK, Some(answer))
}

/// `GET /v3/apply4sub/sub_merchants/{sub_mchid}/settlement`: the newest account.
pub fn query_settlement(onboarding: &Onboarding, mchid: &str, sub_mchid: &str) -> Answer {
    if let Err(answer) = sub_merchant(onboarding, mchid, sub_mchid) {
        return answer;
    }
    let Some(account) = onboarding
        .accounts
        .values()
        .filter(|a| {
            a.provider == PROVIDER
                && a.submitted_by == mchid
                && a.sub_merchant_id.as_deref() == Some(sub_mchid)
        })
        .max_by_key(|a| (a.created_ms, a.account_id.clone()))
    else {
        return fail(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "特约商户未设置结算账户",
        );
    };
    let mut answer = account_fields(account);
    let (result, reason) = match account.status {
        AccountStatus::PendingVerification => ("VERIFYING", String::new()),
        AccountStatus::Verified => ("VERIFY_SUCCESS", String::new()),
        AccountStatus::Failed => (
            "VERIFY_FAIL",
            account.failure_reason.clone().unwrap_or_default(),
        ),
    };
    answer["verify_result"] = json!(result);
    answer["verify_fail_reason"] = json!(reason);
    if account.status == AccountStatus::PendingVerification {
        answer["account_validation"] = account.verification.clone();
    }
    (StatusCode::OK, Some(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: &str = "1900000109";
    const NOW: i64 = 1_710_431_400_000;

    const OTHER_SP: &str = "1900000999";

    /// A model where both service providers have uploaded the three images.
    fn onboarding() -> Onboarding {
        let mut ob = Onboarding::default();
        for owner in [SP, OTHER_SP] {
            for image in [
                "LICENCE",
                "FRONT",
                "BACK",
                "ENTRANCE",
                "INDOOR",
                "AGENT_FRONT",
                "AGENT_BACK",
                "LETTER",
                "UBO_FRONT",
                "UBO_BACK",
            ] {
                ob.media.insert(
                    format!("{owner}_{image}"),
                    Media {
                        uploaded_by: owner.into(),
                        filename: "a.jpg".into(),
                        sha256: "00".into(),
                        bytes: 1,
                    },
                );
            }
        }
        ob
    }

    fn materials(business_code: &str) -> Value {
        materials_of(SP, business_code)
    }

    fn materials_of(owner: &str, business_code: &str) -> Value {
        json!({
            "business_code": business_code,
            "contact_info": {"contact_type": "LEGAL", "contact_name": "张三", "mobile_phone": "13800138000"},
            "subject_info": {
                "subject_type": "SUBJECT_TYPE_ENTERPRISE",
                "business_license_info": {"license_copy": format!("{owner}_LICENCE"), "license_number": "91440300MA5FXXXX0X", "merchant_name": "示例科技有限公司", "legal_person": "张三"},
                "identity_info": {"id_holder_type": "LEGAL", "id_doc_type": "IDENTIFICATION_TYPE_IDCARD",
                                  "id_card_info": {"id_card_copy": format!("{owner}_FRONT"), "id_card_national": format!("{owner}_BACK"),
                                                   "id_card_name": "张三", "id_card_number": "110101199003071234",
                                                   "id_card_address": "北京市东城区示例路1号",
                                                   "card_period_begin": "2019-05-20", "card_period_end": "长期"},
                                  "owner": true},
            },
            "business_info": {"merchant_shortname": "示例科技", "service_phone": "13800138000",
                              "sales_info": {"sales_scenes_type": ["SALES_SCENES_STORE"],
                                             "biz_store_info": {"biz_store_name": "示例茶室", "biz_address_code": "440305",
                                                                "biz_store_address": "深圳市南山区科技园路1号",
                                                                "store_entrance_pic": [format!("{owner}_ENTRANCE")],
                                                                "indoor_pic": [format!("{owner}_INDOOR")]}}},
            "settlement_info": {"settlement_id": "716", "qualification_type": "餐饮"},
            "bank_account_info": {"bank_account_type": "BANK_ACCOUNT_TYPE_CORPORATE", "account_name": "示例科技有限公司",
                                  "account_bank": "招商银行", "bank_address_code": "440300", "account_number": "7550000000000001"},
        })
    }

    fn settlement_change(number: &str) -> Value {
        json!({
            "modify_mode": "MODIFY_MODE_ASYNC",
            "account_type": "ACCOUNT_TYPE_BUSINESS",
            "account_bank": "招商银行",
            "bank_address_code": "440300",
            "account_number": number,
            "account_name": "示例科技有限公司",
        })
    }

    fn body(answer: &Answer) -> &Value {
        answer.1.as_ref().expect("a body")
    }

    /// What the control endpoint's approval does.
    fn approve(onboarding: &mut Onboarding, business_code: &str) -> String {
        let application = onboarding.application(PROVIDER, business_code).unwrap();
        application.status = ApplicationStatus::Active;
        application.sub_merchant_id = Some("1612345678".into());
        "1612345678".into()
    }

    fn upload(file: &[u8], filename: &str, sha256: &str) -> Upload {
        Upload {
            meta: Some(b"{}".to_vec()),
            file_name: Some(filename.into()),
            file: Some(file.to_vec()),
        }
        .with_meta(filename, sha256)
    }

    impl Upload {
        fn with_meta(mut self, filename: &str, sha256: &str) -> Upload {
            self.meta = Some(
                json!({"filename": filename, "sha256": sha256})
                    .to_string()
                    .into_bytes(),
            );
            self
        }
    }

    fn meta(upload: &Upload) -> Value {
        serde_json::from_slice(upload.meta.as_deref().unwrap()).unwrap()
    }

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];

    #[test]
    fn an_image_is_uploaded_and_named_by_its_media_id_in_an_applyment() {
        let mut ob = Onboarding::default();
        let digest = hex::encode(Sha256::digest(JPEG));
        let good = upload(JPEG, "licence.jpg", &digest);
        let answer = upload_media(&mut ob, SP, &meta(&good), &good);
        assert_eq!(answer.0, StatusCode::OK, "{:?}", answer.1);
        let media_id = body(&answer)["media_id"].as_str().unwrap().to_owned();
        let kept = &ob.media[&media_id];
        assert_eq!((kept.uploaded_by.as_str(), kept.bytes), (SP, JPEG.len()));
        assert_eq!(kept.sha256, digest);

        // An applyment must name uploaded images of its own service provider.
        let mut application = materials("act_9");
        let answer = submit(&mut ob, SP, &application, NOW);
        assert_eq!(body(&answer)["code"], "PARAM_ERROR", "unknown media ids");
        for field in MEDIA_FIELDS {
            *application.pointer_mut(field).unwrap() = json!(media_id);
        }
        let answer = submit(&mut ob, OTHER_SP, &application, NOW);
        assert!(
            body(&answer)["message"]
                .as_str()
                .unwrap()
                .contains("MediaID")
        );
        let answer = submit(&mut ob, SP, &application, NOW);
        assert_eq!(answer.0, StatusCode::OK, "{:?}", answer.1);
        *application.pointer_mut(MEDIA_FIELDS[1]).unwrap() = json!("");
        let answer = submit(&mut ob, SP, &application, NOW);
        assert!(
            body(&answer)["message"]
                .as_str()
                .unwrap()
                .contains("id_card_copy")
        );
    }

    #[test]
    fn a_bad_upload_is_refused_and_nothing_is_kept() {
        let mut ob = Onboarding::default();
        let digest = hex::encode(Sha256::digest(JPEG));
        let too_big = [JPEG, &vec![0u8; MEDIA_BYTES_MAX]].concat();
        let png = b"\x89PNG\r\n\x1a\n0000".to_vec();
        let cases: Vec<(Upload, &str)> = vec![
            (upload(JPEG, "licence.jpg", &"0".repeat(64)), "sha256"),
            (upload(JPEG, "licence.png", &digest), "后缀"),
            (upload(JPEG, "licence.gif", &digest), "后缀"),
            (upload(b"GIF89a", "licence.jpg", &digest), "格式"),
            (
                upload(&png, "licence.jpg", &hex::encode(Sha256::digest(&png))),
                "后缀",
            ),
            (
                upload(
                    &too_big,
                    "licence.jpg",
                    &hex::encode(Sha256::digest(&too_big)),
                ),
                "2M",
            ),
            (upload(b"", "licence.jpg", &digest), "file"),
            (upload(JPEG, "", &digest), "meta"),
            (upload(JPEG, "licence.jpg", ""), "meta"),
            (
                Upload {
                    meta: None,
                    ..upload(JPEG, "licence.jpg", &digest)
                },
                "meta",
            ),
            (
                Upload {
                    file: None,
                    ..upload(JPEG, "licence.jpg", &digest)
                },
                "file",
            ),
        ];
        for (bad, expected) in cases {
            let meta = bad
                .meta
                .as_deref()
                .and_then(|m| serde_json::from_slice(m).ok())
                .unwrap_or(json!({}));
            let answer = upload_media(&mut ob, SP, &meta, &bad);
            assert_eq!(answer.0, StatusCode::BAD_REQUEST);
            let message = body(&answer)["message"].as_str().unwrap();
            assert!(
                message.contains(expected),
                "{message} should say {expected}"
            );
        }
        assert!(ob.media.is_empty());
    }

    #[test]
    fn an_application_is_submitted_then_under_review_at_its_first_query() {
        let mut ob = onboarding();
        let answer = submit(&mut ob, SP, &materials("act_1"), NOW);
        assert_eq!(answer.0, StatusCode::OK);
        let id = body(&answer)["applyment_id"].as_u64().unwrap();
        assert!(id.to_string().starts_with("2000002"));
        let application = ob.application(PROVIDER, "act_1").unwrap();
        assert_eq!(application.status, ApplicationStatus::Submitted);
        assert_eq!(application.submissions, 1);
        let answer = query(&mut ob, SP, "act_1", NOW + 1);
        assert_eq!(answer.0, StatusCode::OK);
        assert_eq!(body(&answer)["applyment_state"], "APPLYMENT_STATE_AUDITING");
        assert_eq!(body(&answer)["business_code"], "act_1");
        assert_eq!(body(&answer)["applyment_id"], id);
        assert!(body(&answer).get("sub_mchid").is_none());
        assert_eq!(
            ob.application(PROVIDER, "act_1").unwrap().status,
            ApplicationStatus::UnderReview
        );
    }

    #[test]
    fn a_submission_is_checked() {
        let mut ob = onboarding();
        let mut bad = materials("act-1");
        assert_eq!(submit(&mut ob, SP, &bad, NOW).0, StatusCode::BAD_REQUEST);
        bad = materials("act_1");
        bad["subject_info"]["identity_info"]["id_card_info"]["id_card_number"] = json!("");
        let answer = submit(&mut ob, SP, &bad, NOW);
        assert_eq!(body(&answer)["code"], "PARAM_ERROR");
        assert!(
            body(&answer)["message"]
                .as_str()
                .unwrap()
                .contains("id_card_number")
        );
        assert!(ob.applications.is_empty());
    }

    /// An agent contact, a beneficial owner: accepted whole, refused naming what is wrong.
    #[test]
    fn agents_owners_terms_stores_and_accounts_are_checked() {
        let agent = |m: &mut Value| {
            m["contact_info"] = json!({
                "contact_type": "SUPER", "contact_name": "李四", "contact_id_doc_type": "IDENTIFICATION_TYPE_IDCARD",
                "contact_id_number": "110101199201011231", "contact_id_doc_copy": format!("{SP}_AGENT_FRONT"),
                "contact_id_doc_copy_back": format!("{SP}_AGENT_BACK"), "contact_period_begin": "2020-01-01",
                "contact_period_end": "长期", "business_authorization_letter": format!("{SP}_LETTER"),
                "mobile_phone": "13800138000"});
            m["subject_info"]["identity_info"]["owner"] = json!(false);
            m["subject_info"]["ubo_info_list"] = json!([{
                "ubo_id_doc_type": "IDENTIFICATION_TYPE_IDCARD", "ubo_id_doc_copy": format!("{SP}_UBO_FRONT"),
                "ubo_id_doc_copy_back": format!("{SP}_UBO_BACK"), "ubo_id_doc_name": "王五",
                "ubo_id_doc_number": "110101198001011232", "ubo_id_doc_address": "上海市示例路2号",
                "ubo_period_begin": "2015-01-01", "ubo_period_end": "2035-01-01"}]);
        };
        let mut ob = onboarding();
        let mut whole = materials("act_agent");
        agent(&mut whole);
        assert_eq!(submit(&mut ob, SP, &whole, NOW).0, StatusCode::OK);
        type Change<'a> = &'a dyn Fn(&mut Value);
        let cases: [(Change, &str); 12] = [
            (
                &|m| m["contact_info"]["contact_id_number"] = json!(""),
                "contact_id_number",
            ),
            (
                &|m| {
                    m["contact_info"]["business_authorization_letter"] =
                        json!(format!("{OTHER_SP}_LETTER"))
                },
                "business_authorization_letter",
            ),
            (
                &|m| m["contact_info"]["contact_period_end"] = json!("2019-01-01"),
                "contact_period_end",
            ),
            (
                &|m| m["subject_info"]["ubo_info_list"] = json!([]),
                "ubo_info_list",
            ),
            (
                &|m| m["subject_info"]["ubo_info_list"][0]["ubo_id_doc_address"] = json!(""),
                "ubo_id_doc_address",
            ),
            (
                &|m| m["subject_info"]["ubo_info_list"][0]["ubo_id_doc_copy"] = json!("V1_UNKNOWN"),
                "ubo_id_doc_copy",
            ),
            (
                &|m| {
                    m["subject_info"]["identity_info"]["id_doc_type"] =
                        json!("IDENTIFICATION_TYPE_MAINLAND_IDCARD")
                },
                "id_doc_type",
            ),
            (
                &|m| {
                    m["subject_info"]["identity_info"]["id_card_info"]["card_period_begin"] =
                        json!("20190520")
                },
                "card_period_begin",
            ),
            (
                &|m| m["business_info"]["sales_info"]["biz_store_info"]["indoor_pic"] = json!([]),
                "indoor_pic",
            ),
            (
                &|m| {
                    m["business_info"]["sales_info"]["biz_store_info"]["biz_address_code"] =
                        json!("4403")
                },
                "biz_address_code",
            ),
            (
                &|m| m["bank_account_info"]["account_name"] = json!("张三"),
                "对公账户",
            ),
            (
                &|m| m["bank_account_info"]["bank_address_code"] = json!(""),
                "bank_address_code",
            ),
        ];
        for (change, expected) in cases {
            let mut bad = materials("act_bad");
            agent(&mut bad);
            change(&mut bad);
            let answer = submit(&mut ob, SP, &bad, NOW);
            assert_eq!(body(&answer)["code"], "PARAM_ERROR", "{expected}");
            let message = body(&answer)["message"].as_str().unwrap();
            assert!(
                message.contains(expected),
                "{message} should name {expected}"
            );
        }
        assert!(ob.application(PROVIDER, "act_bad").is_none());
    }

    #[test]
    fn the_same_business_code_is_processing_until_rejected_then_a_resubmission() {
        let mut ob = onboarding();
        let first = submit(&mut ob, SP, &materials("act_1"), NOW);
        let again = submit(&mut ob, SP, &materials("act_1"), NOW);
        assert_eq!(again.0, StatusCode::BAD_REQUEST);
        assert_eq!(body(&again)["code"], "PROCESSING");
        // Another service provider cannot use it.
        let other = submit(&mut ob, OTHER_SP, &materials_of(OTHER_SP, "act_1"), NOW);
        assert_eq!(body(&other)["code"], "PARAM_ERROR");
        assert_eq!(body(&other)["message"], "业务申请编号已被其他服务商使用");
        // Rejected: the reason in audit_detail; then the same code resubmits.
        let application = ob.application(PROVIDER, "act_1").unwrap();
        application.status = ApplicationStatus::Rejected;
        application.rejection_reason = Some("营业执照已过期".into());
        let answer = query(&mut ob, SP, "act_1", NOW);
        assert_eq!(body(&answer)["applyment_state"], "APPLYMENT_STATE_REJECTED");
        assert_eq!(
            body(&answer)["audit_detail"][0]["reject_reason"],
            "营业执照已过期"
        );
        let resubmitted = submit(&mut ob, SP, &materials("act_1"), NOW + 5);
        assert_eq!(resubmitted.0, StatusCode::OK);
        assert_eq!(body(&resubmitted), body(&first), "the same applyment_id");
        let application = ob.application(PROVIDER, "act_1").unwrap();
        assert_eq!(application.submissions, 2);
        assert_eq!(application.status, ApplicationStatus::Submitted);
        assert_eq!(application.rejection_reason, None);
        assert_eq!(
            body(&query(&mut ob, SP, "act_1", NOW + 6))["applyment_state"],
            "APPLYMENT_STATE_AUDITING"
        );
        // Approved: finished with its sub-merchant; submitting again is refused.
        let sub = approve(&mut ob, "act_1");
        let answer = query(&mut ob, SP, "act_1", NOW + 7);
        assert_eq!(body(&answer)["applyment_state"], "APPLYMENT_STATE_FINISHED");
        assert_eq!(body(&answer)["sub_mchid"], sub);
        assert_eq!(
            body(&submit(&mut ob, SP, &materials("act_1"), NOW))["code"],
            "PROCESSING"
        );
    }

    #[test]
    fn applications_are_the_submitters_own() {
        let mut ob = onboarding();
        submit(&mut ob, SP, &materials("act_1"), NOW);
        for (mchid, code) in [("1900000999", "act_1"), (SP, "act_2")] {
            let answer = query(&mut ob, mchid, code, NOW);
            assert_eq!(answer.0, StatusCode::NOT_FOUND);
            assert_eq!(body(&answer)["code"], "APPLYMENT_NOTEXIST");
        }
        assert_eq!(
            ob.application(PROVIDER, "act_1").unwrap().status,
            ApplicationStatus::Submitted
        );
    }

    #[test]
    fn a_settlement_change_needs_a_finished_application() {
        let mut ob = onboarding();
        let change = settlement_change("6214830123456789");
        assert_eq!(
            body(&modify_settlement(&mut ob, SP, "1612345678", &change, NOW))["code"],
            "NO_AUTH"
        );
        submit(&mut ob, SP, &materials("act_1"), NOW);
        let sub = approve(&mut ob, "act_1");
        ob.application(PROVIDER, "act_1").unwrap().status = ApplicationStatus::Rejected;
        assert_eq!(
            body(&modify_settlement(&mut ob, SP, &sub, &change, NOW))["code"],
            "INVALID_REQUEST"
        );
        ob.application(PROVIDER, "act_1").unwrap().status = ApplicationStatus::Active;
        // Another service provider's sub-merchant.
        assert_eq!(
            body(&modify_settlement(
                &mut ob,
                "1900000999",
                &sub,
                &change,
                NOW
            ))["code"],
            "NO_AUTH"
        );
        for bad in [
            json!({"account_type": "ACCOUNT_TYPE_PRIVATE"}),
            json!({"account_number": "12"}),
            json!({"account_bank": ""}),
        ] {
            let mut change = change.clone();
            for (k, v) in bad.as_object().unwrap() {
                change[k] = v.clone();
            }
            assert_eq!(
                body(&modify_settlement(&mut ob, SP, &sub, &change, NOW))["code"],
                "PARAM_ERROR",
                "{bad}"
            );
        }
        assert!(ob.accounts.is_empty());
    }

    #[test]
    fn an_account_waits_for_its_remittance_until_verified_or_failed() {
        let mut ob = onboarding();
        submit(&mut ob, SP, &materials("act_1"), NOW);
        let sub = approve(&mut ob, "act_1");
        let answer = modify_settlement(
            &mut ob,
            SP,
            &sub,
            &settlement_change("6214830123456789"),
            NOW,
        );
        assert_eq!(answer.0, StatusCode::OK);
        let application_no = body(&answer)["application_no"].as_str().unwrap().to_owned();
        let validation = &body(&answer)["account_validation"];
        let fen = validation["pay_amount"].as_u64().unwrap();
        assert!((1..=99).contains(&fen));
        assert_eq!(
            validation["destination_account_number"],
            VERIFICATION_ACCOUNT_NO
        );
        assert_eq!(validation["account_no"], "62************89");
        // Sent again, or another change, while this one waits: refused (a change has no
        // business number to find it by).
        let again = modify_settlement(
            &mut ob,
            SP,
            &sub,
            &settlement_change("6214830123456789"),
            NOW + 9,
        );
        assert_eq!(body(&again)["code"], "INVALID_REQUEST");
        let other = modify_settlement(
            &mut ob,
            SP,
            &sub,
            &settlement_change("9558800200123456"),
            NOW,
        );
        assert_eq!(body(&other)["code"], "INVALID_REQUEST");

        let change = query_application(&ob, SP, &sub, &application_no);
        assert_eq!(body(&change)["verify_result"], "AUDIT_SUCCESS");
        assert_eq!(body(&change)["account_number"], "62************89");
        assert_eq!(
            body(&query_application(&ob, SP, &sub, "1023000"))["code"],
            "RESOURCE_NOT_EXISTS"
        );
        let current = query_settlement(&ob, SP, &sub);
        assert_eq!(body(&current)["verify_result"], "VERIFYING");
        assert_eq!(body(&current)["account_number"], "62************89");
        assert_eq!(body(&current)["account_validation"], *validation);

        // The bank's verdict (what the control endpoints do).
        let account = ob.account(PROVIDER, &application_no).unwrap();
        account.status = AccountStatus::Failed;
        account.failure_reason = Some("remittance not received".into());
        let current = query_settlement(&ob, SP, &sub);
        assert_eq!(body(&current)["verify_result"], "VERIFY_FAIL");
        assert_eq!(
            body(&current)["verify_fail_reason"],
            "remittance not received"
        );
        assert!(body(&current).get("account_validation").is_none());

        // A failed account no longer blocks a new one, which becomes the current account.
        let answer = modify_settlement(
            &mut ob,
            SP,
            &sub,
            &settlement_change("9558800200123456"),
            NOW + 10,
        );
        assert_eq!(answer.0, StatusCode::OK);
        let second = body(&answer)["application_no"].as_str().unwrap().to_owned();
        ob.account(PROVIDER, &second).unwrap().status = AccountStatus::Verified;
        let current = query_settlement(&ob, SP, &sub);
        assert_eq!(body(&current)["verify_result"], "VERIFY_SUCCESS");
        assert_eq!(body(&current)["account_number"], "95************56");
    }

    #[test]
    fn a_sub_merchant_without_an_account_has_no_settlement() {
        let mut ob = onboarding();
        submit(&mut ob, SP, &materials("act_1"), NOW);
        let sub = approve(&mut ob, "act_1");
        let answer = query_settlement(&ob, SP, &sub);
        assert_eq!(answer.0, StatusCode::NOT_FOUND);
        assert_eq!(
            body(&query_settlement(&ob, SP, "1999999999"))["code"],
            "NO_AUTH"
        );
    }

    /// The whole exchange over HTTP, through the simulator's router: signed requests,
    /// signed answers, the serial check and the control endpoints.
    #[tokio::test]
    async fn over_http_with_signatures_and_the_control_endpoints() {
        use base64::Engine as _;
        use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
        use std::sync::Arc;
        use std::time::Duration;

        let dir = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/sandbox-keys"
        ));
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let merchant_key = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(
            rsa::RsaPrivateKey::from_pkcs8_pem(&read("wechatpay_merchant_private_key.pem"))
                .unwrap(),
        );
        let platform_key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(
            rsa::RsaPublicKey::from_public_key_pem(&read("wechatpay_public_key.pem")).unwrap(),
        );
        let sim = Arc::new(crate::state::Sim::new(
            keys::Keys::load(dir).unwrap(),
            crate::notifier::Notifier::new(1),
            crate::state::Timings {
                confirm_after: Duration::from_secs(3),
                refund_after: Duration::from_secs(2),
            },
            None,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, crate::router(sim)).await });
        let client = reqwest::Client::new();

        // A WeChat Pay API call as the plugin makes it; the answer's signature checked.
        let api = |method: &'static str, path: String, body: Option<Value>, serial: bool| {
            let client = client.clone();
            let origin = origin.clone();
            let merchant_key = merchant_key.clone();
            let platform_key = platform_key.clone();
            async move {
                let body = body.map(|b| b.to_string()).unwrap_or_default();
                let timestamp = crate::ledger::now_ms() / 1000;
                let nonce = keys::random_token(32);
                let signed = format!("{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n");
                let signature = keys::sign(&merchant_key, signed.as_bytes());
                let mut request = client
                    .request(method.parse().unwrap(), format!("{origin}{path}"))
                    .header(
                        "Authorization",
                        format!(
                            "WECHATPAY2-SHA256-RSA2048 mchid=\"{SP}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"5157F09EFDC096DE\""
                        ),
                    )
                    .header("Accept", "application/json");
                if serial {
                    request = request.header("Wechatpay-Serial", crate::WECHATPAY_PUBLIC_KEY_ID);
                }
                if method == "POST" {
                    request = request
                        .header("Content-Type", "application/json")
                        .body(body);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let (ts, nonce, signature, serial) = (
                    header("wechatpay-timestamp"),
                    header("wechatpay-nonce"),
                    header("wechatpay-signature"),
                    header("wechatpay-serial"),
                );
                let text = response.text().await.unwrap();
                assert_eq!(serial, crate::WECHATPAY_PUBLIC_KEY_ID);
                assert!(
                    base64::engine::general_purpose::STANDARD
                        .decode(&signature)
                        .is_ok()
                        && keys::verify(
                            &platform_key,
                            format!("{ts}\n{nonce}\n{text}\n").as_bytes(),
                            &signature
                        ),
                    "the answer's signature verifies"
                );
                let json = if text.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).unwrap()
                };
                (status, json)
            }
        };
        let control = |path: String, body: Option<Value>| {
            let client = client.clone();
            let origin = origin.clone();
            async move {
                let mut request = client.post(format!("{origin}{path}"));
                if let Some(body) = body {
                    request = request
                        .header("Content-Type", "application/json")
                        .body(body.to_string());
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let json: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
                (status, json)
            }
        };

        // Sensitive fields sealed as WeChat Pay requires (RSA-OAEP, SHA-1, under the
        // platform's public key).
        let public =
            rsa::RsaPublicKey::from_public_key_pem(&read("wechatpay_public_key.pem")).unwrap();
        let seal = |mut value: Value, pointers: &[&str]| {
            for pointer in pointers {
                if let Some(field) = value.pointer_mut(pointer) {
                    let sealed = public
                        .encrypt(
                            &mut rsa::rand_core::OsRng,
                            rsa::Oaep::new::<sha1::Sha1>(),
                            field.as_str().unwrap().as_bytes(),
                        )
                        .unwrap();
                    *field = base64::engine::general_purpose::STANDARD
                        .encode(sealed)
                        .into();
                }
            }
            value
        };
        let mut sealed_materials =
            seal(materials("act_http"), crate::wechatpay::APPLYMENT_SENSITIVE);

        // The three images, uploaded as a multipart form whose `meta` part is what the
        // signature covers; the applyment names them by the media ids answered.
        let upload_path = "/v3/merchant/media/upload";
        for field in MEDIA_FIELDS {
            let meta =
                json!({"filename": "photo.jpg", "sha256": hex::encode(Sha256::digest(JPEG))})
                    .to_string();
            let timestamp = crate::ledger::now_ms() / 1000;
            let nonce = keys::random_token(32);
            let signature = keys::sign(
                &merchant_key,
                format!("POST\n{upload_path}\n{timestamp}\n{nonce}\n{meta}\n").as_bytes(),
            );
            let boundary = "paygate-boundary";
            let mut form = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            )
            .into_bytes();
            form.extend_from_slice(JPEG);
            form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let response = client
                .post(format!("{origin}{upload_path}"))
                .header(
                    "Authorization",
                    format!(
                        "WECHATPAY2-SHA256-RSA2048 mchid=\"{SP}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"5157F09EFDC096DE\""
                    ),
                )
                .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
                .body(form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let answer: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            *sealed_materials.pointer_mut(field).unwrap() = answer["media_id"].clone();
        }
        // Not multipart: refused as WeChat Pay refuses it.
        let (status, answer) = api("POST", upload_path.to_owned(), Some(json!({})), false).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("PARAM_ERROR"))
        );

        let applyment = "/wechatpay/v3/applyment4sub/applyment/".to_owned();
        let (status, answer) = api(
            "POST",
            applyment.clone(),
            Some(sealed_materials.clone()),
            false,
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("PARAM_ERROR"))
        );
        // In clear: refused, naming the field.
        let (status, answer) =
            api("POST", applyment.clone(), Some(materials("act_http")), true).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("PARAM_ERROR"))
        );
        assert!(
            answer["message"].as_str().unwrap().contains("contact_name"),
            "{answer}"
        );
        let (status, answer) = api(
            "POST",
            applyment.clone(),
            Some(sealed_materials.clone()),
            true,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer["applyment_id"].is_u64());

        let query_path = "/wechatpay/v3/applyment4sub/applyment/business_code/act_http".to_owned();
        let (status, answer) = api("GET", query_path.clone(), None, false).await;
        assert_eq!(status, 200);
        assert_eq!(answer["applyment_state"], "APPLYMENT_STATE_AUDITING");

        let (status, rejected) = control(
            "/_sim/wechatpay/applications/act_http/reject".into(),
            Some(json!({"reason": "营业执照已过期"})),
        )
        .await;
        assert_eq!(status, 200, "{rejected}");
        let (_, answer) = api("GET", query_path.clone(), None, false).await;
        assert_eq!(answer["audit_detail"][0]["reject_reason"], "营业执照已过期");
        let (status, _) = api("POST", applyment.clone(), Some(sealed_materials), true).await;
        assert_eq!(status, 200);

        let (status, approved) =
            control("/_sim/wechatpay/applications/act_http/approve".into(), None).await;
        assert_eq!(status, 200, "{approved}");
        let (_, answer) = api("GET", query_path, None, false).await;
        assert_eq!(answer["applyment_state"], "APPLYMENT_STATE_FINISHED");
        let sub = answer["sub_mchid"].as_str().unwrap().to_owned();
        assert_eq!(approved["sub_merchant_id"], sub.as_str());

        let change = seal(
            settlement_change("6214830123456789"),
            crate::wechatpay::SETTLEMENT_SENSITIVE,
        );
        let modify = format!("/wechatpay/v3/apply4sub/sub_merchants/{sub}/modify-settlement");
        let (status, _) = api("POST", modify.clone(), Some(change.clone()), false).await;
        assert_eq!(status, 400);
        let (status, answer) = api("POST", modify, Some(change), true).await;
        assert_eq!(status, 200, "{answer}");
        let application_no = answer["application_no"].as_str().unwrap().to_owned();
        let (_, answer) = api(
            "GET",
            format!("/wechatpay/v3/apply4sub/sub_merchants/{sub}/application/{application_no}"),
            None,
            false,
        )
        .await;
        assert_eq!(answer["verify_result"], "AUDIT_SUCCESS");
        let settlement = format!("/wechatpay/v3/apply4sub/sub_merchants/{sub}/settlement");
        let (_, answer) = api("GET", settlement.clone(), None, false).await;
        assert_eq!(answer["verify_result"], "VERIFYING");
        let (status, _) = control(
            format!("/_sim/wechatpay/accounts/{application_no}/verify"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (_, answer) = api("GET", settlement, None, false).await;
        assert_eq!(answer["verify_result"], "VERIFY_SUCCESS");

        let state: Value = serde_json::from_str(
            &client
                .get(format!("{origin}/_sim/wechatpay/onboarding"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(state["applications"][0]["status"], "active");
        assert_eq!(state["applications"][0]["submissions"], 2);
        assert_eq!(state["accounts"][0]["status"], "verified");
    }

    #[test]
    fn masks_and_remittances() {
        assert_eq!(mask_account("6214830123456789"), "62************89");
        assert_eq!(mask_account("12345"), "12*45");
        assert_eq!(mask_account("1234"), "****");
        assert_eq!(mask_name("示例科技"), "示***");
        let a = account_validation("ba_1", "x", "6214830123456789", NOW);
        assert_eq!(a, account_validation("ba_1", "x", "6214830123456789", NOW));
        assert_eq!(a["deadline"], "2024-03-21T23:50:00+08:00");
        assert!(a["remark"].as_str().unwrap().starts_with("PGW"));
    }
}
