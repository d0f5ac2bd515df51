#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/<target>/seed-*) and the hand-picked hostile
inputs (fuzz/regressions/<target>/hostile-*) from the repository's real inputs: the shipped
config and the configs the end-to-end tests write, the published Alipay notice, and WeChat
Pay notices shaped like the plugin tests' (with the stand-in host's "encryption": the
plaintext followed by 16 zero bytes). Run from anywhere: python3 fuzz/make_seeds.py.

The input layouts are documented where they are read: daemon/src/fuzzing.rs,
plugins/alipay/src/fuzzing.rs, plugins/wechatpay/src/fuzzing.rs.
"""

import base64
import json
import re
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"


def write(kind, target, name, data):
    path = FUZZ / kind / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


# --- money_parse: a currency selector byte, then the amount ---------------------------------
# Selector below 0xF0: CNY EUR GBP HKD JPY KRW SGD USD by value modulo 8; from 0xF0 up, the
# next (byte & 0x0F) bytes are the code.
CNY, JPY, USD = b"\x00", b"\x04", b"\x07"
for name, data in {
    "cny": CNY + b"12.50",
    "cny-short": CNY + b"12.5",
    "jpy": JPY + b"1500",
    "usd-cent": USD + b"0.01",
    "leading-zeros": b"\x01" + b"007.10",
    "code": b"\xf3CNY8.88",
}.items():
    write("corpus", "money_parse", f"seed-{name}", data)

for name, data in {
    "empty": b"",
    "no-amount": CNY,
    "zero": CNY + b"0.00",
    "too-many-decimals": CNY + b"12.345",
    "yen-decimals": JPY + b"1.5",
    "exponent": CNY + b"1e3",
    "signs": CNY + b"-1",
    "nul-inside": CNY + b"1\x002",
    "invalid-utf8": CNY + b"\xff\xfe1",
    "fullwidth-digits": CNY + "１２".encode(),
    "max-length": CNY + b"9" * 32,
    "too-long": CNY + b"9" * 33,
    "decimal-max": CNY + b"79228162514264337593543950335",
    "decimal-overflow": CNY + b"79228162514264337593543950336",
    "tiny": CNY + b"0.0000000000000000000000000001",
    "unknown-code": b"\xf3XAU1",
    "lowercase-code": b"\xf3cny1",
    "nul-code": b"\xf3C\x00Y1",
    "long-code": b"\xff" + b"\xff" * 15 + b"1",
}.items():
    write("regressions", "money_parse", f"hostile-{name}", data)

# --- config_load: the text of a config file -------------------------------------------------
shipped = (ROOT / "config/paygate.toml").read_text()
write("corpus", "config_load", "seed-shipped.toml", shipped)
write("corpus", "config_load", "seed-tls.toml", (ROOT / "config/examples/tls.toml").read_text())
# The shipped config as the fuzz target can load it (it runs in an empty scratch directory):
# no plugin files, keys inline, so validation goes past the files to everything else.
loadable = re.sub(r"\n\[\[plugins\]\].*?(?=\n# where the key lives)", "\n", shipped, flags=re.S)
loadable = re.sub(r'"file:[^"]*"', '"inline:k"', loadable)
loadable = loadable.replace('master_key = "inline:k"', 'master_key = "env:HOME"')
write("corpus", "config_load", "seed-loadable.toml", loadable)
# What the end-to-end tests write (tests/e2e/).
for name, text in {
    "unknown-field": '[server]\nlisten = "127.0.0.1:0"\nbody_bytes = 5\n',
    "wrong-type": '[server]\n\ndrain_timeout_ms = "ten"\n',
    "missing-key-file": '[[merchants]]\nid = "m_a"\nname = "A"\n\n[merchants.providers.alipay.keys]\napp_private_key = "file:/nonexistent/k.pem"\n',
    "sandbox": '[plugin_host]\nmax_concurrent_calls = 32\n\n[[merchants]]\nid = "m_a"\nname = "A"\n[merchants.providers.mock]\nkeys = { notify_secret = "inline:s3cret" }\n\n[[merchants]]\nid = "m_b"\nname = "B"\nopening_hours = "22:00-06:00"\nutc_offset = "+08:00"\n',
    "monitor-rules": '[monitor.rules.velocity]\nthreshold = 3\naction = "alert"\n\n[monitor.rules.off_hours]\nenabled = false\namount = "5.00"\n',
    "webhooks": '[webhooks]\ntimeout_ms = 10000\n\n[[webhooks.endpoints]]\nname = "alerts"\nurl = "http://127.0.0.1:9/hooks"\nsecret = "inline:whsec"\nevents = ["alert.raised"]\n',
    "payments": '[payments]\namount_max_default = "50000"\namount_max = { JPY = "5000000" }\npublic_url = "https://pay.example"\n',
}.items():
    write("corpus", "config_load", f"seed-{name}.toml", text)

for name, data in {
    "empty": b"",
    "nul": b"\x00",
    "invalid-utf8": b"[server]\nlisten = \"\xff\xfe\"\n",
    "deep-arrays": b"x = " + b"[" * 20000 + b"]" * 20000 + b"\n",
    "deep-inline-tables": b"x = " + b"{a = " * 5000 + b"1" + b"}" * 5000 + b"\n",
    "deep-unclosed": b"x = " + b"[" * 20000,
    "deep-dotted-key": b".".join([b"a"] * 5000) + b" = 1\n",
    "huge-integer": b"[server]\nbody_bytes_max = 99999999999999999999999999\n",
    "negative": b"[server]\ndrain_timeout_ms = -1\n",
    "bad-port": b'[server]\nlisten = "[::1]:99999"\n',
    "huge-amount": b'[payments]\namount_max_default = "1e400"\n',
    "multibyte-error": "é = \n".encode(),
    "empty-offset": b'[[merchants]]\nid = "m_a"\nname = "A"\nopening_hours = "08:00-22:00"\nutc_offset = "+"\n',
    "nul-key-path": b'[[merchants]]\nid = "m_a"\nname = "A"\n[merchants.providers.x.keys]\nk = "file:a\\u0000b"\n',
    "empty-env": b'[onboarding]\nmaster_key = "env:"\n',
    "nan-threshold": b"[monitor.rules.velocity]\nthreshold = nan\n",
}.items():
    write("regressions", "config_load", f"hostile-{name}", data)

# --- alipay_notice: a form-encoded notice body ----------------------------------------------
vector = json.loads((ROOT / "tests/vectors/alipay/notify_trade_success.json").read_text())
params = vector["params"]
write("corpus", "alipay_notice", "seed-vector", urllib.parse.urlencode(params))
closed = dict(params, trade_status="TRADE_CLOSED", refund_fee="0.10", out_biz_no="re_1")
write("corpus", "alipay_notice", "seed-closed-by-refund", urllib.parse.urlencode(closed))
minimal = {
    "app_id": params["app_id"],
    "out_trade_no": "pay_1",
    "trade_status": "WAIT_BUYER_PAY",
    "sign": "QUJD",
}
write("corpus", "alipay_notice", "seed-minimal", urllib.parse.urlencode(minimal))

for name, data in {
    "empty": b"",
    "only-sign": b"sign=",
    "bad-encoding": b"sign=QUJD&out_trade_no=%FF%FE&app_id=%00",
    "repeated": b"sign=QUJD&sign=QUJD",
    "ampersands": b"&" * 4096,
    "raw-invalid-utf8": b"sign=QUJD&app_id=2019073166072302&out_trade_no=\xff\xfe&trade_status=TRADE_SUCCESS",
    "nul-bytes": b"sign=QUJD\x00&app_id=2019073166072302\x00&out_trade_no=\x00&trade_status=TRADE_SUCCESS",
    "spaces-in-sign": b"sign=%20%20%20&app_id=2019073166072302",
    "foreign-sign-type": b"sign=QUJD&sign_type=RSA&app_id=2019073166072302",
    "gbk": b"sign=QUJD&charset=gbk&app_id=2019073166072302",
    "other-seller": b"sign=QUJD&app_id=2019073166072302&seller_id=2088000000000000&out_trade_no=pay_1&trade_status=TRADE_SUCCESS",
    "other-notify-type": b"sign=QUJD&app_id=2019073166072302&notify_type=x&out_trade_no=&trade_status=",
    "huge-values": b"sign=QUJD&app_id=2019073166072302&out_trade_no=" + b"9" * 20_000 + b"&trade_status=TRADE_SUCCESS",
}.items():
    write("regressions", "alipay_notice", f"hostile-{name}", data)

# --- wechatpay_notice: a mode byte (modulo 3), then headers + body, a body, or a resource ---
MCHID, APPID, PUBLIC_KEY_ID, NOW = "1900000109", "wxd678efh567hg6787", "PUB_KEY_ID_0114", 1_710_431_400
TAG = b"\x00" * 16
transaction = {
    "mchid": MCHID, "appid": APPID, "out_trade_no": "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
    "transaction_id": "4200000000202403140000000001", "trade_type": "NATIVE",
    "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "CMC", "attach": "",
    "success_time": "2024-03-14T23:51:02+08:00", "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    "amount": {"total": 1250, "payer_total": 1250, "currency": "CNY", "payer_currency": "CNY"},
}
refund = {
    "mchid": MCHID, "out_trade_no": "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
    "transaction_id": "4200000000202403140000000001", "out_refund_no": "re_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
    "refund_id": "50000000382019052709732678859", "refund_status": "SUCCESS",
    "success_time": "2024-03-14T23:59:02+08:00", "user_received_account": "招商银行信用卡0403",
    "amount": {"total": 1250, "refund": 500, "payer_total": 1250, "payer_refund": 500},
}


def envelope(event_type, resource):
    plaintext = json.dumps(resource, ensure_ascii=False).encode()
    return json.dumps({
        "id": "EV-2018022511223320873", "create_time": "2024-03-14T23:51:03+08:00",
        "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
        "resource": {
            "original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(plaintext + TAG).decode(),
            "associated_data": "transaction", "nonce": "fdasflkja484",
        },
    }, ensure_ascii=False).encode()


def with_headers(body, timestamp=NOW, serial=PUBLIC_KEY_ID):
    head = (
        f"Wechatpay-Timestamp: {timestamp}\nWechatpay-Nonce: 5K8264ILTKCH16CQ2502SI8ZNMTM67VS\n"
        f"Wechatpay-Signature: c2lnbmF0dXJl\nWechatpay-Serial: {serial}\n"
        "Wechatpay-Signature-Type: WECHATPAY2-SHA256-RSA2048\n\n"
    )
    return b"\x00" + head.encode() + body


paid = envelope("TRANSACTION.SUCCESS", transaction)
refunded = envelope("REFUND.SUCCESS", refund)
write("corpus", "wechatpay_notice", "seed-headers-transaction", with_headers(paid))
write("corpus", "wechatpay_notice", "seed-body-transaction", b"\x01" + paid)
write("corpus", "wechatpay_notice", "seed-body-refund", b"\x01" + refunded)
write("corpus", "wechatpay_notice", "seed-body-other-event", b"\x01" + envelope("PAYSCORE.USER_OPEN_SERVICE", {"mchid": MCHID}))
write("corpus", "wechatpay_notice", "seed-resource-transaction", b"\x02TRANSACTION.SUCCESS\n" + json.dumps(transaction).encode())
write("corpus", "wechatpay_notice", "seed-resource-refund", b"\x02REFUND.ABNORMAL\n" + json.dumps(dict(refund, refund_status="ABNORMAL")).encode())
# The published notification, with its own (years old) headers.
published = json.loads((ROOT / "tests/vectors/wechatpay/notification.json").read_text())
head = "".join(f"{k}: {v}\n" for k, v in published["headers"].items())
write("corpus", "wechatpay_notice", "seed-published", b"\x00" + head.encode() + b"\n" + published["body"].encode())

for name, data in {
    "empty": b"",
    "mode-only": b"\x00",
    "no-headers": b"\x00\n\n" + paid,
    "stale": with_headers(paid, timestamp=NOW - 600),
    "huge-timestamp": with_headers(paid, timestamp="9" * 40),
    "wrong-serial": with_headers(paid, serial="PUB_KEY_ID_ROGUE"),
    "duplicated-headers": b"\x00Wechatpay-Serial: a\nWechatpay-Serial: a\n\n{}",
    "nonce-newline": b"\x00Wechatpay-Serial: PUB_KEY_ID_0114\nWechatpay-Timestamp: 1710431400\nWechatpay-Nonce: a\rb\nWechatpay-Signature: c2ln\n\n{}",
    "deep-json": b"\x01" + b"[" * 5_000 + b"]" * 5_000,
    "deep-json-object": b"\x01" + b"{\"a\":" * 5_000 + b"1" + b"}" * 5_000,
    "nul-bytes": b"\x01\x00\x00\x00",
    "invalid-utf8": b"\x01{\"event_type\": \"\xff\xfe\"}",
    "tag-only": b"\x01" + json.dumps({"event_type": "TRANSACTION.SUCCESS", "resource": {"algorithm": "AEAD_AES_256_GCM", "nonce": "n", "ciphertext": base64.b64encode(TAG).decode()}}).encode(),
    "empty-plaintext": b"\x01" + json.dumps({"event_type": "REFUND.SUCCESS", "resource": {"algorithm": "AEAD_AES_256_GCM", "nonce": "n", "ciphertext": base64.b64encode(b"x" + TAG).decode()}}).encode(),
    "huge-numbers": b"\x02TRANSACTION.SUCCESS\n" + json.dumps(dict(transaction, amount={"total": 10**30, "payer_total": -(10**30)})).encode(),
    "float-amount": b"\x02REFUND.SUCCESS\n" + json.dumps(dict(refund, amount={"total": 1e308, "refund": 1.5})).encode(),
    "invalid-utf8-event": b"\x02\xff\xfeTRANSACTION.\n{\"mchid\":\"1900000109\"}",
    "nul-event": b"\x02TRANSACTION.\x00\n{\"mchid\":\"1900000109\",\"out_trade_no\":\"pay_\\u0000abcdef\",\"trade_state\":\"SUCCESS\"}",
}.items():
    write("regressions", "wechatpay_notice", f"hostile-{name}", data)


# --- wechatpay_materials: an onboarding's materials JSON (the WeChat Pay plugin) -----------
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00").decode()
image = {"content_type": "image/jpeg", "data": JPEG}
legal = {
    "name": "示例科技有限公司",
    "business_license_no": "91440300MA5FXXXX0X",
    "legal_person": {"name": "张三", "id_number": "110101199003071234"},
    "contact": {"name": "张三", "phone": "13800138000", "email": "ops@example.cn"},
    "industry_code": "餐饮",
    "details": {
        "legal_person": {"id_address": "北京市东城区示例路1号", "id_valid_from": "2019-05-20", "id_valid_until": "long-term"},
        "store": {"name": "示例茶室", "area_code": "440305", "address": "深圳市南山区科技园路1号"},
        "settlement_account": {"account_holder": "示例科技有限公司", "bank_name": "招商银行", "bank_area_code": "440300", "account_number": "7550000000000001"},
    },
    "documents": {k: image for k in ["business_license", "id_card_front", "id_card_back", "store_entrance", "store_indoor"]},
}
agent = json.loads(json.dumps(legal))
agent["contact"]["name"] = "李四"
agent["details"]["contact"] = {"id_number": "110101199201011231", "id_valid_from": "2020-01-01", "id_valid_until": "2040-01-01"}
agent["details"]["legal_person"]["is_beneficial_owner"] = False
agent["details"]["beneficial_owners"] = [{"name": "王五", "id_number": "110101198001011232", "id_address": "上海市示例路2号", "id_valid_from": "2015-01-01", "id_valid_until": "long-term"}]
for k in ["contact_id_front", "contact_id_back", "authorization_letter", "beneficial_owner_1_id_front", "beneficial_owner_1_id_back"]:
    agent["documents"][k] = image
write("corpus", "wechatpay_materials", "seed-legal", json.dumps(legal, ensure_ascii=False))
write("corpus", "wechatpay_materials", "seed-agent-and-owner", json.dumps(agent, ensure_ascii=False))
