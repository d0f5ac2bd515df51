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

echo "2. Apply to $PROVIDER, with the photos its reviewer needs (WeChat Pay: the business licence"
echo "   and both sides of the legal person's identity card). paygate passes them on and keeps none."
# Stand-ins for the photos: bytes that begin as a JPEG does. Use the real scans instead.
photo() { python3 -c "import base64,sys; print(base64.b64encode(b'\xff\xd8\xff\xe0' + sys.argv[1].encode()).decode())" "$1"; }
DOCUMENTS="{\"business_license\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo licence)\"},
  \"id_card_front\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo front)\"},
  \"id_card_back\": {\"content_type\": \"image/jpeg\", \"data\": \"$(photo back)\"}}"
ACTIVATION=$(post "/v1/merchants/$ID/activations" "onboard-$RUN-act" \
  "{\"provider\": \"$PROVIDER\", \"documents\": $DOCUMENTS}")
echo "$ACTIVATION"
ACT=$(echo "$ACTIVATION" | field "['id']")

echo "3. (The provider reviews the application; here the simulator's reviewer approves it.)"
curl -sS -X POST "$SIM/_sim/$PROVIDER/applications/$ACT/approve" >/dev/null
wait_for "/v1/merchants/$ID/activations/$ACT" "['status']" active
get "/v1/merchants/$ID/activations/$ACT"; echo

echo "4. Bind the settlement account; the provider asks for a small remittance to verify it."
ACCOUNT=$(post "/v1/merchants/$ID/bank_accounts" "onboard-$RUN-ba" "{
  \"provider\": \"$PROVIDER\", \"account_holder\": \"Tea House Ltd\",
  \"account_number\": \"6217000010012345678901\", \"bank_name\": \"Bank of Example\"}")
echo "$ACCOUNT"
BA=$(echo "$ACCOUNT" | field "['id']")

echo "5. (The remittance arrives; here the simulator's bank confirms it.)"
curl -sS -X POST "$SIM/_sim/$PROVIDER/accounts/$BA/verify" >/dev/null
wait_for "/v1/merchants/$ID/bank_accounts/$BA" "['status']" verified
get "/v1/merchants/$ID/bank_accounts/$BA"; echo

echo "6. The first payment."
post /v1/payments "onboard-$RUN-pay" "{\"merchant_id\": \"$ID\", \"amount\": \"8.00\",
  \"currency\": \"CNY\", \"method\": \"qr\", \"provider\": \"$PROVIDER\"}"; echo

echo "7. The audit log: who changed what, when, from where."
get "/v1/audit?merchant_id=$ID"; echo
