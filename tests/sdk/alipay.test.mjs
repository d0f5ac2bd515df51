// Alipay's own Node SDK (`alipay-sdk`) against the simulator, changed in nothing but its
// gateway URL: it signs every request (RSA2), the simulator verifies it, and the SDK checks
// every answer's and notice's signature with its own verifier and the sandbox Alipay key.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { AlipaySdk } from 'alipay-sdk';

import { orderNumber, sandboxKey, startNotifyUrl, startSimulator } from './sim.mjs';

const APP_ID = '2021000000000001';
let sim;
let notices;

before(async () => {
  sim = await startSimulator();
  notices = await startNotifyUrl('success');
});
after(() => {
  sim?.stop();
  notices?.stop();
});

function sdk(gateway, privateKey = sandboxKey('alipay_app_private_key.pem')) {
  return new AlipaySdk({
    appId: APP_ID,
    privateKey,
    keyType: 'PKCS8',
    alipayPublicKey: sandboxKey('alipay_public_key.pem'),
    gateway,
  });
}

const checked = { validateSign: true };

test('barcode payment, query and refunds at the real gateway path', async () => {
  const alipay = sdk(`${sim.url}/gateway.do`);
  const outTradeNo = orderNumber('sdk_pay_');
  const paid = await alipay.exec('alipay.trade.pay', {
    bizContent: {
      outTradeNo,
      scene: 'bar_code',
      authCode: '286648048691290423',
      subject: 'Latte',
      totalAmount: '12.50',
    },
  }, checked);
  assert.equal(paid.code, '10000', JSON.stringify(paid));
  assert.equal(paid.outTradeNo, outTradeNo);
  assert.equal(paid.totalAmount, '12.50');

  const queried = await alipay.exec('alipay.trade.query', { bizContent: { outTradeNo } }, checked);
  assert.equal(queried.tradeStatus, 'TRADE_SUCCESS');
  assert.equal(queried.tradeNo, paid.tradeNo);

  const refunded = await alipay.exec('alipay.trade.refund', {
    bizContent: { outTradeNo, refundAmount: '2.50', outRequestNo: `${outTradeNo}_r1` },
  }, checked);
  assert.equal(refunded.code, '10000', JSON.stringify(refunded));
  assert.equal(refunded.fundChange, 'Y');
  assert.equal(refunded.refundFee, '2.50');

  // The same refund number again moves no money; more than what is left is refused.
  const again = await alipay.exec('alipay.trade.refund', {
    bizContent: { outTradeNo, refundAmount: '2.50', outRequestNo: `${outTradeNo}_r1` },
  }, checked);
  assert.equal(again.code, '10000');
  assert.equal(again.fundChange, 'N');
  const tooMuch = await alipay.exec('alipay.trade.refund', {
    bizContent: { outTradeNo, refundAmount: '10.01', outRequestNo: `${outTradeNo}_r2` },
  }, checked);
  assert.equal(tooMuch.code, '40004');
  assert.equal(tooMuch.subCode, 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL');

  const refundQuery = await alipay.exec('alipay.trade.fastpay.refund.query', {
    bizContent: { outTradeNo, outRequestNo: `${outTradeNo}_r1` },
  }, checked);
  assert.equal(refundQuery.refundStatus, 'REFUND_SUCCESS');

  const ledger = await sim.ledger('alipay');
  const order = ledger.orders.find((o) => o.out_trade_no === outTradeNo);
  assert.equal(order.charges, 1);
  assert.equal(order.refunds[`${outTradeNo}_r1`].executions, 1);
  assert.deepEqual(ledger.violations, []);
});

test('a GET to the gateway, as the SDK signs it for a browser, is answered and verifies', async () => {
  const alipay = sdk(`${sim.url}/gateway.do`);
  const outTradeNo = orderNumber('sdk_get_');
  await alipay.exec('alipay.trade.pay', {
    bizContent: {
      outTradeNo, scene: 'bar_code', authCode: '286648048691290424', subject: 'Tea', totalAmount: '3.00',
    },
  }, checked);
  // pageExec with GET gives the signed URL with every parameter in its query string.
  const url = alipay.pageExec('alipay.trade.query', 'GET', { bizContent: { outTradeNo } });
  assert.ok(url.startsWith(`${sim.url}/gateway.do?`), url);
  const response = await fetch(url);
  assert.equal(response.status, 200);
  const raw = await response.text();
  const answer = JSON.parse(raw);
  assert.equal(answer.alipay_trade_query_response.trade_status, 'TRADE_SUCCESS', raw);
  // The SDK's own response verifier accepts the simulator's signature over the raw text.
  alipay.checkResponseSign(raw, 'alipay_trade_query_response', answer.sign);
  assert.throws(
    () => alipay.checkResponseSign(raw.replace('TRADE_SUCCESS', 'TRADE_CLOSED'), 'alipay_trade_query_response', answer.sign),
    /验签失败/,
  );
});

test('the prefixed gateway still works, and a precreate\'s notice verifies with the SDK', async () => {
  const alipay = sdk(`${sim.url}/alipay/gateway.do`);
  const outTradeNo = orderNumber('sdk_qr_');
  const created = await alipay.exec('alipay.trade.precreate', {
    notifyUrl: notices.url,
    bizContent: { outTradeNo, subject: 'Cake', totalAmount: '8.80' },
  }, checked);
  assert.equal(created.code, '10000', JSON.stringify(created));
  assert.match(created.qrCode, /^https:\/\//);

  await sim.control('/_sim/alipay/scan', { qr_code: created.qrCode, outcome: 'pay' });
  const notice = await notices.next();
  const params = Object.fromEntries(new URLSearchParams(notice.body));
  assert.equal(params.out_trade_no, outTradeNo);
  assert.equal(params.trade_status, 'TRADE_SUCCESS');
  assert.equal(params.total_amount, '8.80');
  assert.equal(alipay.checkNotifySignV2(params), true);
  assert.equal(alipay.checkNotifySignV2({ ...params, total_amount: '0.01' }), false);
});

test('a request signed with another key is refused, and a forged answer fails the SDK', async () => {
  const stranger = sdk(`${sim.url}/gateway.do`, sandboxKey('wechatpay_merchant_private_key.pem'));
  const refused = await stranger.exec('alipay.trade.query', { bizContent: { outTradeNo: 'sdk_none' } }, checked);
  assert.equal(refused.code, '40002');
  assert.equal(refused.subCode, 'isv.invalid-signature');

  await sim.control('/_sim/alipay/faults', { kind: 'bad_signature', count: 1 });
  const alipay = sdk(`${sim.url}/gateway.do`);
  await assert.rejects(
    alipay.exec('alipay.trade.query', { bizContent: { outTradeNo: 'sdk_none' } }, checked),
    /验签失败/,
  );
});
