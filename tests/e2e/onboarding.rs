//! Merchant onboarding (API.md §8) through the mock wallet: create, validate, activate,
//! bind, collect; sensitive data sealed at rest; roles; the audit log; key rotation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const ID_NUMBER: &str = "11010519491231002X";
const LICENCE: &str = "91350100M000100Y43";
/// A corporate account number (no checksum) and a bank card (Luhn-valid).
const ACCOUNT: &str = "6217000010012345678901";
const CARD: &str = "6212345678901232";

/// Valid onboarding materials for a merchant named `name`.
pub fn materials(name: &str) -> Value {
    json!({
        "name": name,
        "business_license_no": LICENCE,
        "tax_registration_no": "91350100M000100Y43",
        "legal_person": {"name": "Zhang San", "id_number": ID_NUMBER},
        "contact": {"name": "Li Si", "phone": "13800138000", "email": "li.si@example.cn"},
        "industry_code": "5812",
    })
}

/// The agent's (the contact's, Li Si's) identity number, given only in the details.
const AGENT_ID_NUMBER: &str = "110101199201011231";
/// The account WeChat Pay settles to from the start, given only in the details.
const FIRST_ACCOUNT: &str = "591900000000001";

/// The details WeChat Pay's applyment needs beyond the merchant's record, for a merchant
/// named `name` (its settlement account is in that name) whose contact is an agent.
pub fn details(name: &str) -> Value {
    json!({
        "business_license": {"address": "1 Wuyi Road, Fuzhou", "valid_from": "2018-03-01", "valid_until": "long-term"},
        "legal_person": {"id_address": "2 Dongcheng Road, Beijing", "id_valid_from": "2019-05-20", "id_valid_until": "2039-05-20"},
        "contact": {"id_number": AGENT_ID_NUMBER, "id_valid_from": "2020-01-01", "id_valid_until": "long-term"},
        "store": {"name": "Tea House", "area_code": "350102", "address": "1 Wuyi Road, Fuzhou, shop 3"},
        "settlement_account": {"account_holder": name, "bank_name": "招商银行", "bank_area_code": "350100",
                               "branch": "招商银行福州分行", "account_number": FIRST_ACCOUNT},
    })
}

/// The kinds of image an application with an agent contact carries.
const IMAGE_KINDS: [&str; 8] = [
    "business_license",
    "id_card_front",
    "id_card_back",
    "store_entrance",
    "store_indoor",
    "contact_id_front",
    "contact_id_back",
    "authorization_letter",
];

/// An application's images (JPEGs as far as their first bytes go), each about 200 KiB,
/// carrying `marker`; and their SHA-256s, in order.
pub fn documents(marker: &str) -> (Value, Vec<String>) {
    use base64::Engine as _;
    let mut out = serde_json::Map::new();
    let mut digests = Vec::new();
    for (n, kind) in IMAGE_KINDS.into_iter().enumerate() {
        let mut image = vec![0xFF, 0xD8, 0xFF, 0xE0];
        image.extend_from_slice(format!("{marker}-{kind}").as_bytes());
        // Filler that does not repeat, as a photo's bytes do not.
        let mut x = 0x9E37_79B9_u32.wrapping_add(n as u32);
        image.extend((0..200_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        digests.push(sha256_hex(&image));
        out.insert(
            kind.into(),
            json!({"content_type": "image/jpeg",
                   "data": base64::engine::general_purpose::STANDARD.encode(&image)}),
        );
    }
    (Value::Object(out), digests)
}

/// The digests of the images the simulator's WeChat Pay was sent (its onboarding state),
/// sorted.
fn uploaded(state: &Value) -> Vec<String> {
    sorted(
        state["media"]
            .as_object()
            .unwrap()
            .values()
            .map(|m| m["sha256"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .iter(),
    )
}

fn sorted<'a>(digests: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut all: Vec<String> = digests.cloned().collect();
    all.sort_unstable();
    all
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fast_janitor() -> String {
    default_config_text().replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200")
}

async fn create(daemon: &Daemon, key: &str, name: &str) -> (u16, Value) {
    let (status, _, body) = daemon
        .post_idempotent("/v1/merchants", ADMIN, Some(key), &materials(name))
        .await;
    (status, body)
}

/// Polls `path` (admin) until `field` is `want` (10 s at most).
async fn wait_for(daemon: &Daemon, path: &str, field: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = daemon.get(path, Some(ADMIN)).await.1;
        if last[field] == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path}: {field} never became {want}: {last}");
}

#[tokio::test]
async fn a_merchant_is_created_activated_bound_and_collects() {
    let daemon = Daemon::with_config(fast_janitor());
    let (status, merchant) = create(&daemon, "m-1", "Tea House").await;
    assert_eq!(status, 201, "{merchant}");
    let id = merchant["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("m_"));
    assert_eq!(merchant["status"], "draft");
    assert_eq!(merchant["source"], "api");
    assert_eq!(merchant["legal_person"]["id_number"], "1101**********002X");
    assert_eq!(merchant["providers"], json!([]));

    // A draft can be corrected.
    let mut corrected = materials("Tea House Ltd");
    corrected["contact"]["phone"] = json!("13900139000");
    let (status, _, updated) = daemon
        .post_idempotent(
            &format!("/v1/merchants/{id}"),
            ADMIN,
            Some("m-1-upd"),
            &corrected,
        )
        .await;
    assert_eq!(
        (status, updated["name"].as_str()),
        (200, Some("Tea House Ltd")),
        "{updated}"
    );

    // No collection before activation.
    let pay = json!({"merchant_id": id, "amount": "8.00", "currency": "CNY", "method": "barcode",
                     "auth_code": "990000000000001234"});
    let (status, _, refused) = daemon
        .post_idempotent("/v1/payments", ADMIN, Some("p-0"), &pay)
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "merchant_not_active");

    // Apply to the mock wallet: under review, then active (the janitor polls).
    let (status, _, activation) = daemon
        .post_idempotent(
            &format!("/v1/merchants/{id}/activations"),
            ADMIN,
            Some("act-1"),
            &json!({"provider": "mock"}),
        )
        .await;
    assert_eq!(status, 201, "{activation}");
    assert!(activation["id"].as_str().unwrap().starts_with("act_"));
    assert_eq!(activation["status"], "under_review");
    let activation_path = format!(
        "/v1/merchants/{id}/activations/{}",
        activation["id"].as_str().unwrap()
    );
    wait_for(&daemon, &activation_path, "status", "active").await;
    let merchant = wait_for(&daemon, &format!("/v1/merchants/{id}"), "status", "active").await;
    assert_eq!(merchant["providers"], json!(["mock"]));

    // No longer a draft: the materials are frozen.
    let (status, _, frozen) = daemon
        .post_idempotent(
            &format!("/v1/merchants/{id}"),
            ADMIN,
            Some("m-1-upd2"),
            &materials("X"),
        )
        .await;
    assert_eq!(status, 422, "{frozen}");

    // Bank accounts: the holder must be the merchant or its legal person; numbers checked.
    let accounts = format!("/v1/merchants/{id}/bank_accounts");
    let account = |holder: &str, number: &str, kind: &str| {
        json!({"provider": "mock", "account_holder": holder, "account_number": number,
               "account_type": kind, "bank_name": "Bank of Example", "branch": "Fuzhou"})
    };
    let (status, _, mismatch) = daemon
        .post_idempotent(
            &accounts,
            ADMIN,
            Some("ba-x"),
            &account("Someone Else", ACCOUNT, "corporate"),
        )
        .await;
    assert_eq!(
        (status, mismatch["error"]["code"].as_str()),
        (422, Some("account_holder_mismatch"))
    );
    let (status, _, luhn) = daemon
        .post_idempotent(
            &accounts,
            ADMIN,
            Some("ba-y"),
            &account("Zhang San", "6212345678901234", "card"),
        )
        .await;
    assert_eq!(
        (status, luhn["error"]["param"].as_str()),
        (400, Some("account_number")),
        "{luhn}"
    );
    let (status, _, bound) = daemon
        .post_idempotent(
            &accounts,
            ADMIN,
            Some("ba-1"),
            &account("Tea House Ltd", ACCOUNT, "corporate"),
        )
        .await;
    assert_eq!(status, 201, "{bound}");
    assert_eq!(bound["status"], "pending_verification");
    assert_eq!(bound["account_number_last4"], "8901");
    assert_eq!(bound["default"], true, "the first account is the default");
    assert!(
        bound["verification"].is_object(),
        "the provider's step is shown: {bound}"
    );
    assert!(!bound.to_string().contains(ACCOUNT));
    let account_path = format!("{accounts}/{}", bound["id"].as_str().unwrap());
    wait_for(&daemon, &account_path, "status", "verified").await;
    let (status, _, second) = daemon
        .post_idempotent(
            &accounts,
            ADMIN,
            Some("ba-2"),
            &account("Zhang San", CARD, "card"),
        )
        .await;
    assert_eq!(
        (status, second["default"].as_bool()),
        (201, Some(false)),
        "{second}"
    );

    // The first payment.
    let (status, _, paid) = daemon
        .post_idempotent("/v1/payments", ADMIN, Some("p-1"), &pay)
        .await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("succeeded")),
        "{paid}"
    );
    assert_eq!(paid["merchant_id"], id.as_str());

    // The audit log: who did what, from where.
    let (status, audit) = daemon
        .get(&format!("/v1/audit?merchant_id={id}"), Some(ADMIN))
        .await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "merchant.created",
        "merchant.updated",
        "activation.submitted",
        "activation.updated",
        "bank_account.submitted",
        "bank_account.updated",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let first = &audit["data"][0];
    assert_eq!(first["actor"], "key_demo_admin");
    assert_eq!(first["source"], "127.0.0.1");
    assert!(!audit.to_string().contains(ID_NUMBER) && !audit.to_string().contains(ACCOUNT));
    assert_eq!(
        daemon
            .get(&format!("/v1/audit?merchant_id={id}"), Some(ERP))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn what_the_provider_asks_of_the_merchant_is_shown_until_the_application_is_decided() {
    let daemon = Daemon::with_config(
        fast_janitor().replace("janitor_interval_ms = 200", "janitor_interval_ms = 2000"),
    );
    // The mock asks a merchant named "Unsigned ..." to sign its agreement first.
    let (status, merchant) = create(&daemon, "m-sign", "Unsigned Tea Ltd").await;
    assert_eq!(status, 201, "{merchant}");
    let id = merchant["id"].as_str().unwrap().to_owned();
    let (status, _, activation) = daemon
        .post_idempotent(
            &format!("/v1/merchants/{id}/activations"),
            ADMIN,
            Some("act-sign"),
            &json!({"provider": "mock"}),
        )
        .await;
    assert_eq!(status, 201, "{activation}");
    let act = activation["id"].as_str().unwrap().to_owned();
    let step = json!({"type": "sign_agreement", "url": format!("https://mock.example/sign/{act}")});
    assert_eq!(activation["status"], "under_review");
    assert_eq!(activation["next_step"], step, "{activation}");
    let path = format!("/v1/merchants/{id}/activations/{act}");
    let (status, stored) = daemon.get(&path, Some(ADMIN)).await;
    assert_eq!((status, &stored["next_step"]), (200, &step), "{stored}");
    // Decided (the janitor asks the mock, which approves): nothing is left to do.
    let active = wait_for(&daemon, &path, "status", "active").await;
    assert_eq!(active["next_step"], Value::Null, "{active}");
}

#[tokio::test]
async fn bad_materials_are_refused_naming_the_field() {
    let daemon = Daemon::start();
    for (path, value, param) in [
        (
            "business_license_no",
            json!("91350100M000100Y44"),
            "business_license_no",
        ),
        (
            "business_license_no",
            json!("91350100m000100y43"),
            "business_license_no",
        ),
        (
            "legal_person.id_number",
            json!("110105194912310021"),
            "legal_person.id_number",
        ),
        (
            "legal_person.id_number",
            json!("11010519491331002X"),
            "legal_person.id_number",
        ),
        ("contact.phone", json!("12800138000"), "contact.phone"),
        ("contact.email", json!("not-an-email"), "contact.email"),
        ("name", json!(""), "name"),
    ] {
        let mut body = materials("Bad Shop");
        let pointer: Vec<&str> = path.split('.').collect();
        match pointer.as_slice() {
            [a] => body[*a] = value.clone(),
            [a, b] => body[*a][*b] = value.clone(),
            _ => unreachable!(),
        }
        let (status, _, error) = daemon
            .post_idempotent(
                "/v1/merchants",
                ADMIN,
                Some(&format!("bad-{path}-{value}")),
                &body,
            )
            .await;
        assert_eq!(status, 400, "{path}={value}: {error}");
        assert_eq!(error["error"]["param"], param, "{error}");
    }
    let mut typo = materials("Typo Shop");
    typo["legal_persn"] = json!({});
    let (status, _, error) = daemon
        .post_idempotent("/v1/merchants", ADMIN, Some("typo"), &typo)
        .await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("legal_persn")),
        "{error}"
    );
}

#[tokio::test]
async fn only_admins_create_and_scoped_keys_see_only_their_merchants() {
    let daemon = Daemon::start();
    for key in [POS, ERP] {
        let (status, _, _) = daemon
            .post_idempotent("/v1/merchants", key, Some("nope"), &materials("X"))
            .await;
        assert_eq!(status, 403);
    }
    let (_, merchant) = create(&daemon, "m-scope", "Scoped Shop").await;
    let id = merchant["id"].as_str().unwrap();
    // The demo erp key acts for m_demo only: the new merchant looks missing to it.
    for path in [
        format!("/v1/merchants/{id}"),
        format!("/v1/merchants/{id}/activations"),
        format!("/v1/merchants/{id}/bank_accounts"),
    ] {
        assert_eq!(daemon.get(&path, Some(ERP)).await.0, 403, "{path}");
        assert_eq!(daemon.get(&path, Some(POS)).await.0, 403, "{path}");
        assert_eq!(daemon.get(&path, Some(ADMIN)).await.0, 200, "{path}");
    }
    // Every mutating route: out of scope for the erp key, below the role for the till.
    for (path, body) in [
        (format!("/v1/merchants/{id}"), materials("X")),
        (
            format!("/v1/merchants/{id}/activations"),
            json!({"provider": "mock"}),
        ),
        (
            format!("/v1/merchants/{id}/bank_accounts"),
            json!({"provider": "mock", "account_holder": "X", "account_number": ACCOUNT,
                   "bank_name": "B"}),
        ),
    ] {
        for key in [ERP, POS] {
            let (status, _, error) = daemon
                .post_idempotent(&path, key, Some(&format!("deny-{path}")), &body)
                .await;
            assert_eq!(status, 403, "{path} with {key}: {error}");
        }
    }
    for path in [
        format!("/v1/merchants/{id}/activations/act_x"),
        format!("/v1/merchants/{id}/bank_accounts/ba_x"),
        format!("/v1/audit?merchant_id={id}"),
    ] {
        assert_eq!(daemon.get(&path, Some(ERP)).await.0, 403, "{path}");
        assert_eq!(daemon.get(&path, Some(POS)).await.0, 403, "{path}");
    }
    // The erp key's own merchant is a config merchant: not onboarded, so 404 there.
    let (status, _) = daemon
        .get("/v1/merchants/m_demo/activations", Some(ERP))
        .await;
    assert_eq!(status, 404);
    // The same key replays; another body under it is refused.
    let (status, replayed, again) = daemon
        .post_idempotent(
            "/v1/merchants",
            ADMIN,
            Some("m-scope"),
            &materials("Scoped Shop"),
        )
        .await;
    assert_eq!(
        (status, replayed, again["id"].as_str()),
        (201, true, Some(id))
    );
    let (status, _, _) = daemon
        .post_idempotent("/v1/merchants", ADMIN, Some("m-scope"), &materials("Other"))
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn identity_and_account_numbers_never_reach_the_disk_or_the_logs_in_clear() {
    let mut daemon = Daemon::with_config(fast_janitor());
    let (_, merchant) = create(&daemon, "m-secret", "Secret Shop").await;
    let id = merchant["id"].as_str().unwrap().to_owned();
    daemon
        .post_idempotent(
            &format!("/v1/merchants/{id}/activations"),
            ADMIN,
            Some("act-s"),
            &json!({"provider": "mock"}),
        )
        .await;
    wait_for(&daemon, &format!("/v1/merchants/{id}"), "status", "active").await;
    let (status, _, _) = daemon
        .post_idempotent(
            &format!("/v1/merchants/{id}/bank_accounts"),
            ADMIN,
            Some("ba-s"),
            &json!({"provider": "mock", "account_holder": "Secret Shop", "account_number": ACCOUNT,
                    "bank_name": "Bank of Example"}),
        )
        .await;
    assert_eq!(status, 201);
    daemon.terminate();
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    let mut found = Vec::new();
    for entry in walk(&daemon.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        for secret in [ID_NUMBER, ACCOUNT, "19491231002X", "0012345678901"] {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("{secret} in {}", entry.display()));
            }
        }
    }
    assert!(found.is_empty(), "clear values on disk: {found:?}");
    let logs = daemon.logs();
    assert!(
        !logs.contains(ID_NUMBER) && !logs.contains(ACCOUNT),
        "clear values in the logs"
    );
}

/// An application's images go to WeChat Pay through its media upload and nowhere else: not
/// the disk, not the logs; the audit log keeps their digests. A submission whose upload
/// failed is submitted again by the retry. Bad images are refused naming the field.
#[tokio::test]
async fn images_go_to_wechat_pay_and_nowhere_else() {
    use base64::Engine as _;
    let simulator = crate::simulator::Simulator::spawn();
    // The janitor stays away: the test decides every request WeChat Pay sees (a fault is
    // injected below for the next one).
    let config = simulator.daemon_config();
    assert!(config.contains("janitor_interval_ms = 3000"));
    let mut daemon = Daemon::with_config(
        config.replace("janitor_interval_ms = 3000", "janitor_interval_ms = 600000"),
    );
    let (_, merchant) = create(&daemon, "img-m", "Image Shop").await;
    let id = merchant["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/merchants/{id}/activations");
    let marker = "paygate-image-marker-5d41402abc4b2a76";
    let (images, digests) = documents(marker);
    let apply = |key: &'static str, body: Value| {
        let daemon = &daemon;
        let path = path.clone();
        async move { daemon.post_idempotent(&path, ADMIN, Some(key), &body).await }
    };

    // Refused before the provider hears of it, naming the image.
    let mut bad = images.clone();
    bad["id_card_back"]["content_type"] = json!("image/png");
    let (status, _, refused) = apply(
        "img-bad-1",
        json!({"provider": "wechatpay", "documents": bad}),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["param"].as_str()),
        (400, Some("documents.id_card_back")),
        "{refused}"
    );
    let mut bad = images.clone();
    bad["selfie"] = images["id_card_front"].clone();
    let (status, _, refused) = apply(
        "img-bad-2",
        json!({"provider": "wechatpay", "documents": bad}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    // Bad details: refused by the gateway, naming the section.
    let mut bad = details("Image Shop");
    bad["store"]["area_code"] = json!("3501");
    let (status, _, refused) = apply(
        "img-bad-5",
        json!({"provider": "wechatpay", "documents": images, "details": bad}),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["param"].as_str()),
        (400, Some("details.store")),
        "{refused}"
    );
    // Refused with `status`, its message saying `says`.
    let refused_saying = |key: &'static str, body: Value, status: u16, says: &'static str| {
        let apply = &apply;
        async move {
            let (got, _, refused) = apply(key, body).await;
            assert_eq!(got, status, "{refused}");
            let message = refused["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{message} should say {says}");
        }
    };
    // WeChat Pay's plugin needs the details, and every image its applyment names.
    refused_saying(
        "img-bad-6",
        json!({"provider": "wechatpay", "documents": images}),
        402,
        "details.legal_person.id_address",
    )
    .await;
    // The application is rejected with the plugin's reason (nothing reached WeChat Pay, and
    // there is nothing for the janitor to ask about) until it is submitted again.
    let (_, listed) = daemon.get(&path, Some(ADMIN)).await;
    let first = &listed["data"][0];
    assert_eq!(first["status"], "rejected", "{listed}");
    assert!(
        first["rejection_reason"]
            .as_str()
            .unwrap()
            .contains("details.legal_person.id_address"),
        "{listed}"
    );
    let mut partial = images.clone();
    partial.as_object_mut().unwrap().remove("business_license");
    refused_saying(
        "img-bad-3",
        json!({"provider": "wechatpay", "documents": partial, "details": details("Image Shop")}),
        402,
        "documents.business_license",
    )
    .await;
    // Past `server.upload_bytes_max` (9 MiB by default): 413 naming that limit.
    let mut huge = images.clone();
    huge["business_license"]["data"] = json!("A".repeat(10 << 20));
    refused_saying(
        "img-bad-4",
        json!({"provider": "wechatpay", "documents": huge}),
        413,
        "9437184",
    )
    .await;
    // Other routes keep `server.body_bytes_max`.
    let (status, _, _) = daemon
        .post_idempotent(
            "/v1/merchants",
            ADMIN,
            Some("img-big-merchant"),
            &json!({"name": "x".repeat(100_000)}),
        )
        .await;
    assert_eq!(status, 413);

    // The upload fails at WeChat Pay: 502, and the retry with the same key submits it.
    let (status, _) = simulator
        .control("wechatpay/faults", json!({"kind": "http_500", "count": 1}))
        .await;
    assert_eq!(status, 204);
    let body =
        json!({"provider": "wechatpay", "documents": images, "details": details("Image Shop")});
    let (status, _, failed) = apply("img-act", body.clone()).await;
    assert_eq!(status, 502, "{failed}");
    let (status, _, activation) = apply("img-act", body).await;
    assert_eq!(status, 201, "{activation}");
    // Submitted three times: the two refused ones, then this one (its retry is the same).
    assert_eq!(activation["submissions"], 3);
    assert_eq!(activation["status"], "submitted", "{activation}");
    let act = activation["id"].as_str().unwrap().to_owned();
    let state = simulator.onboarding("wechatpay").await;
    assert_eq!(state["applications"][0]["business_code"], act.as_str());
    assert_eq!(
        uploaded(&state),
        sorted(digests.iter()),
        "one upload of each image"
    );

    // The audit log names each image by its digest and size.
    let (_, audit) = daemon
        .get(&format!("/v1/audit?merchant_id={id}"), Some(ADMIN))
        .await;
    let submitted: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "activation.submitted")
        .collect();
    let last = submitted.last().unwrap();
    let logged: Vec<&str> = last["details"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(
        logged,
        digests.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // The details by their sections, never their values.
    assert_eq!(
        last["details"]["details"],
        json!([
            "business_license",
            "legal_person",
            "contact",
            "store",
            "settlement_account"
        ])
    );
    // The simulator got them: the agent (SUPER) with the agent's card and the letter, the
    // store with its photos, the first settlement account (sealed, opened by the simulator).
    let applied = &state["applications"][0]["materials"];
    assert_eq!(applied["contact_info"]["contact_type"], "SUPER");
    assert_eq!(
        applied["contact_info"]["contact_id_number"],
        AGENT_ID_NUMBER
    );
    assert_eq!(
        applied["bank_account_info"]["account_number"],
        FIRST_ACCOUNT
    );
    assert_eq!(
        applied["business_info"]["sales_info"]["biz_store_info"]["biz_address_code"],
        "350102"
    );

    daemon.terminate();
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    // Neither the images' bytes nor their base64, nor the details' numbers, are on disk or
    // in the logs.
    let encoded = images["id_card_front"]["data"].as_str().unwrap();
    let needles = [
        marker.to_owned(),
        encoded[1000..1064].to_owned(),
        AGENT_ID_NUMBER.to_owned(),
        FIRST_ACCOUNT.to_owned(),
    ];
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let middle = &raw[100_000..100_064];
    for entry in walk(&daemon.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in {}",
                entry.display()
            );
        }
        assert!(
            !bytes.windows(middle.len()).any(|w| w == middle),
            "image bytes in {}",
            entry.display()
        );
    }
    let logs = daemon.logs();
    assert!(
        needles.iter().all(|n| !logs.contains(n.as_str())),
        "an image in the logs"
    );
}

/// Every regular file under `dir` (not the control socket, which holds nothing).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn the_master_key_rotates_in_place() {
    let mut daemon = Daemon::start();
    let (_, merchant) = create(&daemon, "m-rot", "Rotating Shop").await;
    let id = merchant["id"].as_str().unwrap().to_owned();
    daemon.terminate();
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paygate.toml");
    // A key with an authenticator: its secret, sealed in the config, rotates too.
    let (enrolled, _) = crate::second_factor::enrolled(&["key_demo_erp"], "");
    std::fs::write(&config, for_engine(&enrolled, &daemon.data_dir())).unwrap();
    let new_key = dir.path().join("new.hex");
    let out = run_paygated(&["keys", "new-master"]);
    assert!(out.status.success());
    std::fs::write(&new_key, &out.stdout).unwrap();
    let data = daemon.data_dir();
    let rotate = |config: &std::path::Path, key: &std::path::Path| {
        run_paygated(&[
            "keys",
            "rotate-master",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--new-key",
            &format!("file:{}", key.display()),
        ])
    };
    let out = rotate(&config, &new_key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("re-encrypted 1 records and 1 authenticator secrets")
    );
    // Everything now opens with the new key: rotating again from it back to the old one
    // works only if every value was re-sealed under it.
    let rotated_config = dir.path().join("rotated.toml");
    let old_key = repo_root().join("config/sandbox-keys/master_key.hex");
    std::fs::write(
        &rotated_config,
        std::fs::read_to_string(&config).unwrap().replace(
            &format!("file:{}", old_key.display()),
            &format!("file:{}", new_key.display()),
        ),
    )
    .unwrap();
    let check = run_paygated(&[
        "config",
        "check",
        "--config",
        rotated_config.to_str().unwrap(),
    ]);
    assert!(check.status.success(), "the secret opens with the new key");
    let back = rotate(&rotated_config, &old_key);
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    // And the daemon, on the original key, serves the merchant.
    let back_config = std::fs::read_to_string(&rotated_config).unwrap().replace(
        &format!("file:{}", new_key.display()),
        &format!("file:{}", old_key.display()),
    );
    let again = Daemon::with_config_on(back_config, &data);
    let (status, merchant) = again.get(&format!("/v1/merchants/{id}"), Some(ADMIN)).await;
    assert_eq!(
        (status, merchant["legal_person"]["id_number"].as_str()),
        (200, Some("1101**********002X"))
    );
    // A rotation while a daemon holds the data dir is refused.
    let busy = rotate(&config, &new_key);
    assert!(!busy.status.success());
}

/// The full journey through a real provider plugin and the simulator: create, apply, the
/// reviewer rejects with a reason, resubmit, approved, bind, the bank verifies, the first
/// payment (a QR code the payer scans).
async fn journey_through_the_simulator(provider: &str) {
    let simulator = crate::simulator::Simulator::spawn();
    let daemon = Daemon::with_config(
        simulator
            .daemon_config()
            .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200"),
    );
    let (status, merchant) = create(&daemon, "sim-m", "Tea House Ltd").await;
    assert_eq!(status, 201, "{merchant}");
    let id = merchant["id"].as_str().unwrap().to_owned();
    // Every submission carries the images (WeChat Pay's review needs them; Alipay's plugin
    // does not use them).
    let (images, digests) = documents("journey");
    let apply = |key: &'static str| {
        let path = format!("/v1/merchants/{id}/activations");
        let daemon = &daemon;
        let body = json!({"provider": provider, "documents": images,
                          "details": details("Tea House Ltd")});
        async move { daemon.post_idempotent(&path, ADMIN, Some(key), &body).await }
    };
    let (status, _, activation) = apply("sim-act-1").await;
    assert_eq!(status, 201, "{activation}");
    let act = activation["id"].as_str().unwrap().to_owned();
    let act_path = format!("/v1/merchants/{id}/activations/{act}");
    wait_for(&daemon, &act_path, "status", "under_review").await;

    // The reviewer rejects, with a reason the merchant sees.
    let (status, _) = simulator
        .control(
            &format!("{provider}/applications/{act}/reject"),
            json!({"reason": "business licence photo unreadable"}),
        )
        .await;
    assert_eq!(status, 200);
    let rejected = wait_for(&daemon, &act_path, "status", "rejected").await;
    assert!(
        rejected["rejection_reason"]
            .as_str()
            .unwrap()
            .contains("business licence photo unreadable"),
        "{rejected}"
    );
    // Collection is still refused.
    let qr = json!({"merchant_id": id, "amount": "12.00", "currency": "CNY", "method": "qr",
                    "provider": provider});
    let (status, _, refused) = daemon
        .post_idempotent("/v1/payments", ADMIN, Some("sim-p0"), &qr)
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("merchant_not_active"))
    );

    // Resubmitted: the same activation, a second submission, back under review; approved.
    let (status, _, again) = apply("sim-act-2").await;
    assert_eq!(
        (status, again["id"].as_str()),
        (201, Some(act.as_str())),
        "{again}"
    );
    assert_eq!(again["submissions"], 2);
    assert_eq!(again["rejection_reason"], Value::Null);
    wait_for(&daemon, &act_path, "status", "under_review").await;
    if provider == "wechatpay" {
        // Approved by the reviewer, the application waits for the super administrator to
        // sign WeChat Pay's agreement: the merchant is shown where.
        simulator
            .control(
                &format!("{provider}/applications/{act}/await_signature"),
                json!({}),
            )
            .await;
        let mut waiting = Value::Null;
        for _ in 0..100 {
            waiting = daemon.get(&act_path, Some(ADMIN)).await.1;
            if waiting["next_step"]["type"] == "sign_agreement" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(waiting["status"], "under_review", "{waiting}");
        let url = waiting["next_step"]["url"].as_str().unwrap_or_default();
        assert!(
            url.starts_with("https://pay.weixin.qq.com/public/apply4ec_sign/"),
            "{waiting}"
        );
        // Not active yet: no collection.
        let (status, _, refused) = daemon
            .post_idempotent("/v1/payments", ADMIN, Some("sim-p0b"), &qr)
            .await;
        assert_eq!(status, 422, "{refused}");
    }
    // Approved (for WeChat Pay: signed).
    simulator
        .control(&format!("{provider}/applications/{act}/approve"), json!({}))
        .await;
    let active = wait_for(&daemon, &act_path, "status", "active").await;
    assert!(active["provider_reference"].is_string(), "{active}");
    assert_eq!(active["next_step"], Value::Null, "{active}");
    if provider == "wechatpay" {
        // Both submissions uploaded the images through the media API, and the application
        // names the second set.
        let state = simulator.onboarding(provider).await;
        assert_eq!(uploaded(&state), sorted(digests.iter().chain(&digests)));
        let named = &state["applications"][0]["materials"]["subject_info"];
        let licence = named["business_license_info"]["license_copy"]
            .as_str()
            .unwrap();
        assert_eq!(state["media"][licence]["sha256"], digests[0].as_str());
    }

    // The settlement account: pending the provider's remittance check, then verified.
    let (status, _, account) = daemon
        .post_idempotent(
            &format!("/v1/merchants/{id}/bank_accounts"),
            ADMIN,
            Some("sim-ba"),
            &json!({"provider": provider, "account_holder": "Tea House Ltd",
                    "account_number": ACCOUNT, "bank_name": "Bank of Example",
                    "bank_area_code": "350100"}),
        )
        .await;
    assert_eq!(
        (status, account["status"].as_str()),
        (201, Some("pending_verification")),
        "{account}"
    );
    assert!(account["verification"].is_object(), "{account}");
    let ba = account["id"].as_str().unwrap().to_owned();
    // The provider's number for the binding (WeChat Pay's change has none of ours): its bank
    // finds the account by it.
    let reference = account["provider_reference"].as_str().unwrap_or_default();
    assert!(!reference.is_empty(), "{account}");
    let (status, verified) = simulator
        .control(
            &format!("{provider}/accounts/{reference}/verify"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{verified}");
    wait_for(
        &daemon,
        &format!("/v1/merchants/{id}/bank_accounts/{ba}"),
        "status",
        "verified",
    )
    .await;

    // The first payment: a QR code the payer scans; the provider's notice settles it.
    let (status, _, payment) = daemon
        .post_idempotent("/v1/payments", ADMIN, Some("sim-p1"), &qr)
        .await;
    assert_eq!(
        (status, payment["status"].as_str()),
        (201, Some("pending")),
        "{payment}"
    );
    let (status, _) = simulator
        .control(
            &format!("{provider}/scan"),
            json!({"qr_code": payment["qr_code"], "outcome": "pay"}),
        )
        .await;
    assert_eq!(status, 200);
    wait_for(
        &daemon,
        &format!("/v1/payments/{}", payment["id"].as_str().unwrap()),
        "status",
        "succeeded",
    )
    .await;
    let pid = payment["id"].as_str().unwrap().to_owned();
    {
        // Collected for the sub-merchant (WeChat Pay's partner API, Alipay's 直付通
        // `sub_merchant`), not into the platform's own account; refunded under it too.
        let (status, _, refund) = daemon
            .post_idempotent(
                &format!("/v1/payments/{pid}/refunds"),
                ADMIN,
                Some("sim-r1"),
                &json!({"amount": "2.00"}),
            )
            .await;
        assert_eq!(
            (status, refund["status"].as_str()),
            (201, Some("succeeded")),
            "{refund}"
        );
        let ledger = simulator.ledger(provider).await;
        let booked = ledger["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["out_trade_no"] == pid.as_str())
            .unwrap_or_else(|| panic!("{pid} not in {ledger}"));
        assert_eq!(
            booked["sub_merchant"], active["provider_reference"],
            "{booked}"
        );
        assert_eq!(booked["refunds"].as_object().unwrap().len(), 1, "{booked}");
    }
    let onboarding = simulator.ledger(provider).await;
    assert_eq!(onboarding["violations"], json!([]));
    // Every state change was an event (webhooks and the monitor see them).
    let metrics = daemon.metrics().await;
    for kind in ["merchant.activation.updated", "bank_account.updated"] {
        assert!(
            metrics.contains(&format!("paygate_events_total{{kind=\"{kind}\"}}")),
            "{kind} events missing"
        );
    }
}

#[tokio::test]
async fn the_journey_through_alipay_on_the_simulator() {
    journey_through_the_simulator("alipay").await;
}

#[tokio::test]
async fn the_journey_through_wechatpay_on_the_simulator() {
    journey_through_the_simulator("wechatpay").await;
}

#[tokio::test]
async fn activations_and_accounts_follow_the_providers_notices() {
    // The janitor stays away: only notices move things.
    let daemon = Daemon::with_config(
        default_config_text().replace("janitor_interval_ms = 3000", "janitor_interval_ms = 600000"),
    );
    let (_, merchant) = create(&daemon, "n-m", "Notice Shop").await;
    let id = merchant["id"].as_str().unwrap().to_owned();
    let apply = |key: &'static str| {
        let path = format!("/v1/merchants/{id}/activations");
        let daemon = &daemon;
        async move {
            daemon
                .post_idempotent(&path, ADMIN, Some(key), &json!({"provider": "mock"}))
                .await
                .2
        }
    };
    let activation = apply("n-act-1").await;
    let act = activation["id"].as_str().unwrap().to_owned();
    let act_path = format!("/v1/merchants/{id}/activations/{act}");
    assert_eq!(activation["status"], "under_review");

    // A forged notice changes nothing.
    let active = json!({"activation_id": act, "status": "active"});
    assert_eq!(
        notify_to(&daemon, &id, &active.to_string(), &"00".repeat(32))
            .await
            .0,
        400
    );
    assert_eq!(
        daemon.get(&act_path, Some(ADMIN)).await.1["status"],
        "under_review"
    );
    // Rejected by notice, with the reason.
    let rejected = json!({"activation_id": act, "status": "rejected", "reason": "licence expired"});
    assert_eq!(
        mock_notice(&daemon, &id, DEMO_NOTIFY_SECRET, &rejected).await,
        200
    );
    let now = daemon.get(&act_path, Some(ADMIN)).await.1;
    assert_eq!(
        (now["status"].as_str(), now["rejection_reason"].as_str()),
        (Some("rejected"), Some("licence expired"))
    );
    // Resubmitted, then approved by notice; a repeat of the notice changes nothing.
    assert_eq!(apply("n-act-2").await["submissions"], 2);
    assert_eq!(
        mock_notice(&daemon, &id, DEMO_NOTIFY_SECRET, &active).await,
        200
    );
    assert_eq!(
        daemon.get(&act_path, Some(ADMIN)).await.1["status"],
        "active"
    );
    assert_eq!(
        mock_notice(&daemon, &id, DEMO_NOTIFY_SECRET, &active).await,
        200
    );
    let merchant = daemon
        .get(&format!("/v1/merchants/{id}"), Some(ADMIN))
        .await
        .1;
    assert_eq!(merchant["status"], "active");

    // The account fails verification by notice, with the reason.
    let (status, _, account) = daemon
        .post_idempotent(
            &format!("/v1/merchants/{id}/bank_accounts"),
            ADMIN,
            Some("n-ba"),
            &json!({"provider": "mock", "account_holder": "Notice Shop", "account_number": ACCOUNT,
                    "bank_name": "Bank of Example"}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let ba = account["id"].as_str().unwrap();
    let failed =
        json!({"bank_account_id": ba, "status": "failed", "reason": "remittance not received"});
    assert_eq!(
        mock_notice(&daemon, &id, DEMO_NOTIFY_SECRET, &failed).await,
        200
    );
    let now = daemon
        .get(
            &format!("/v1/merchants/{id}/bank_accounts/{ba}"),
            Some(ADMIN),
        )
        .await
        .1;
    assert_eq!(
        (now["status"].as_str(), now["failure_reason"].as_str()),
        (Some("failed"), Some("remittance not received"))
    );
    // The audit log names the provider as the actor of those changes.
    let audit = daemon
        .get(&format!("/v1/audit?merchant_id={id}"), Some(ADMIN))
        .await
        .1;
    assert!(audit.to_string().contains("provider:mock"), "{audit}");
}
