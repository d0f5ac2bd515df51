#!/usr/bin/env bash
# Onboarding a merchant through paygate, step by step, as an ERP integrator would.
# Run `cargo xtask run` first (gateway on 127.0.0.1:8420, provider simulator on :8430), then
#   examples/onboarding/onboard.sh [alipay|wechatpay]
# Each step prints the request's answer. The simulator plays the provider's reviewer and the
# bank (the `_sim` calls); against a real provider those steps happen on their side.
set -euo pipefail

GATEWAY=${GATEWAY:-http://127.0.0.1:8420}
SIM=${SIM:-http://127.0.0.1:8430}
ADMIN=${ADMIN_KEY:-pg_demo_admin}
PROVIDER=${1:-alipay}
RUN=$(date +%s)

post() { # path idempotency-key json
  curl -sS -X POST "$GATEWAY$1" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: $2" -d "$3"
}
get() { curl -sS "$GATEWAY$1" -H "Authorization: Bearer $ADMIN"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
wait_for() { # path python-accessor expected
  for _ in $(seq 1 60); do
    value=$(get "$1" | field "$2")
    [ "$value" = "$3" ] && return 0
    sleep 1
  done
  echo "timed out waiting for $1 $2 == $3 (last: $value)" >&2
  exit 1
}

echo "1. Create the merchant (draft). Identity numbers are sealed at rest and shown masked."
MERCHANT=$(post /v1/merchants "onboard-$RUN-merchant" '{
  "name": "Tea House Ltd", "business_license_no": "91350100M000100Y43",
  "tax_registration_no": "91350100M000100Y43",
  "legal_person": {"name": "Zhang San", "id_number": "11010519491231002X"},
  "contact": {"name": "Li Si", "phone": "13800138000", "email": "li.si@example.cn"},
  "industry_code": "5812"}')
echo "$MERCHANT"
ID=$(echo "$MERCHANT" | field "['id']")

echo "2. Apply to $PROVIDER, with the photos and details its reviewer needs (WeChat Pay: the"
echo "   business licence, identity cards, the store, the first settlement account; the contact"
echo "   here is an agent, so also the agent's card and letter). paygate passes them on, keeps none."
# Stand-ins for the photos: bytes that begin as a JPEG does. Use the real scans instead.
photo() { python3 -c "import base64,sys; print(base64.b64encode(b'\xff\xd8\xff\xe0' + sys.argv[1].encode()).decode())" "$1"; }
DOCUMENTS="{\"business_license\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo licence)\"},
  \"id_card_front\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo front)\"},
  \"id_card_back\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo back)\"},
  \"store_entrance\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo entrance)\"},
  \"store_indoor\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo indoor)\"},
  \"contact_id_front\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo agent-front)\"},
  \"contact_id_back\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo agent-back)\"},
  \"authorization_letter\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo letter)\"}}"
DETAILS='{
  "business_license": {"address": "1 Wuyi Road, Fuzhou", "valid_from": "2018-03-01", "valid_until": "long-term"},
  "legal_person": {"id_address": "2 Dongcheng Road, Beijing", "id_valid_from": "2019-05-20", "id_valid_until": "2039-05-20"},
  "contact": {"id_number": "110101199201011231", "id_valid_from": "2020-01-01", "id_valid_until": "long-term"},
  "store": {"name": "Tea House", "area_code": "350102", "address": "1 Wuyi Road, Fuzhou, shop 3"},
  "settlement_account": {"account_holder": "Tea House Ltd", "bank_name": "招商银行", "bank_area_code": "350100",
                         "account_number": "591900000000001"}}'
ACTIVATION=$(post "/v1/merchants/$ID/activations" "onboard-$RUN-act" \
  "{\"provider\": \"$PROVIDER\", \"documents\": $DOCUMENTS, \"details\": $DETAILS}")
echo "$ACTIVATION"
ACT=$(echo "$ACTIVATION" | field "['id']")

echo "3. (The provider reviews the application; here the simulator's reviewer approves it.)"
curl -sS -X POST "$SIM/_sim/$PROVIDER/applications/$ACT/approve" >/dev/null
wait_for "/v1/merchants/$ID/activations/$ACT" "['status']" active
get "/v1/merchants/$ID/activations/$ACT"; echo

echo "4. Bind the settlement account; the provider asks for a small remittance to verify it."
ACCOUNT=$(post "/v1/merchants/$ID/bank_accounts" "onboard-$RUN-ba" "{
  \"provider\": \"$PROVIDER\", \"account_holder\": \"Tea House Ltd\",
  \"account_number\": \"6217000010012345678901\", \"bank_name\": \"Bank of Example\",
  \"bank_area_code\": \"350100\"}")
echo "$ACCOUNT"
BA=$(echo "$ACCOUNT" | field "['id']")
# The provider's number for the binding: the simulator's bank finds the account by it.
REF=$(echo "$ACCOUNT" | field "['provider_reference']")

echo "5. (The remittance arrives; here the simulator's bank confirms it.)"
curl -sS -X POST "$SIM/_sim/$PROVIDER/accounts/$REF/verify" >/dev/null
wait_for "/v1/merchants/$ID/bank_accounts/$BA" "['status']" verified
get "/v1/merchants/$ID/bank_accounts/$BA"; echo

echo "6. The first payment."
post /v1/payments "onboard-$RUN-pay" "{\"merchant_id\": \"$ID\", \"amount\": \"8.00\",
  \"currency\": \"CNY\", \"method\": \"qr\", \"provider\": \"$PROVIDER\"}"; echo

echo "7. The audit log: who changed what, when, from where."
get "/v1/audit?merchant_id=$ID"; echo
