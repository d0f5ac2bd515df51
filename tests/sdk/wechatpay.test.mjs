// WeChat Pay API v3 through a widely used Node SDK (`wechatpay-axios-plugin`) against the
// simulator, changed in nothing but its base URL: the SDK signs every request over the path
// it sends, the simulator verifies it, and the SDK's own verifier checks every answer's
// signature, by platform public key id or by the platform certificate it downloads.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';

import wechatpay from 'wechatpay-axios-plugin';

import { orderNumber, sandboxKey, startNotifyUrl, startSimulator } from './sim.mjs';

const { Wechatpay, Aes, Rsa, Formatter } = wechatpay;
const MCHID = '1900000001';
const APPID = 'wxd678efh567hg6787';
const PUBLIC_KEY_ID = 'PUB_KEY_ID_0000000000000000SIM0001';
const APIV3_KEY = sandboxKey('wechatpay_apiv3_key.txt').trim();
let sim;
let notices;

before(async () => {
  sim = await startSimulator();
  notices = await startNotifyUrl(JSON.stringify({ code: 'SUCCESS', message: '成功' }));
});
after(() => {
  sim?.stop();
  notices?.stop();
});

function client(baseURL, certs = { [PUBLIC_KEY_ID]: sandboxKey('wechatpay_public_key.pem') }) {
  return new Wechatpay({
    mchid: MCHID,
    serial: '5157F09EFDC096DE15EBE81A47057A7200000001',
    privateKey: sandboxKey('wechatpay_merchant_private_key.pem'),
    certs,
    baseURL,
  });
}

test('codepay, query and refund at the real paths, answers verified by public key id', async () => {
  const wxpay = client(`${sim.url}/`);
  const outTradeNo = orderNumber('sdkpay');
  const paid = await wxpay.v3.pay.transactions.codepay.post({
    appid: APPID,
    mchid: MCHID,
    description: 'Latte',
    out_trade_no: outTradeNo,
    amount: { total: 1250, currency: 'CNY' },
    scene_info: { store_info: { out_id: 'store_1' } },
    payer: { auth_code: '134567890123456789' },
  });
  assert.equal(paid.status, 200);
  assert.equal(paid.headers['wechatpay-serial'], PUBLIC_KEY_ID);
  assert.equal(paid.data.trade_state, 'SUCCESS', JSON.stringify(paid.data));
  assert.equal(paid.data.out_trade_no, outTradeNo);

  const queried = await wxpay.v3.pay.transactions.outTradeNo.$out_trade_no$.get({
    params: { mchid: MCHID },
    out_trade_no: outTradeNo,
  });
  assert.equal(queried.data.trade_state, 'SUCCESS');
  assert.equal(queried.data.transaction_id, paid.data.transaction_id);
  const byId = await wxpay.v3.pay.transactions.id.$transaction_id$.get({
    params: { mchid: MCHID },
    transaction_id: paid.data.transaction_id,
  });
  assert.equal(byId.data.out_trade_no, outTradeNo);

  const outRefundNo = `${outTradeNo}r1`;
  const refunded = await wxpay.v3.refund.domestic.refunds.post({
    out_trade_no: outTradeNo,
    out_refund_no: outRefundNo,
    amount: { refund: 250, total: 1250, currency: 'CNY' },
  });
  assert.equal(refunded.data.status, 'SUCCESS', JSON.stringify(refunded.data));
  assert.equal(refunded.data.amount.refund, 250);

  const refundQuery = await wxpay.v3.refund.domestic.refunds.$out_refund_no$.get({
    out_refund_no: outRefundNo,
  });
  assert.equal(refundQuery.data.status, 'SUCCESS');
  assert.equal(refundQuery.data.out_refund_no, outRefundNo);

  // More than what is left is refused, and the SDK surfaces the provider's error.
  await assert.rejects(
    wxpay.v3.refund.domestic.refunds.post({
      out_trade_no: outTradeNo,
      out_refund_no: `${outTradeNo}r2`,
      amount: { refund: 1001, total: 1250, currency: 'CNY' },
    }),
    (error) => error.response?.status === 400 || error.response?.status === 403,
  );

  const ledger = await sim.ledger('wechatpay');
  const order = ledger.orders.find((o) => o.out_trade_no === outTradeNo);
  assert.equal(order.charges, 1);
  assert.equal(order.refunds[outRefundNo].executions, 1);
  assert.deepEqual(ledger.violations, []);
});

test('under the /wechatpay prefix: a native order, and its notice verifies and decrypts', async () => {
  const wxpay = client(`${sim.url}/wechatpay/`);
  const outTradeNo = orderNumber('sdkqr');
  const created = await wxpay.v3.pay.transactions.native.post({
    appid: APPID,
    mchid: MCHID,
    description: 'Cake',
    out_trade_no: outTradeNo,
    notify_url: notices.url,
    amount: { total: 880, currency: 'CNY' },
  });
  assert.match(created.data.code_url, /^weixin:\/\/wxpay\/bizpayurl\?pr=/);

  await sim.control('/_sim/wechatpay/scan', { qr_code: created.data.code_url, outcome: 'pay' });
  const { headers, body } = await notices.next();
  // The notice's signature, checked as the SDK's verifier checks answers.
  const signed = Formatter.response(headers['wechatpay-timestamp'], headers['wechatpay-nonce'], body);
  const publicKey = Rsa.from(sandboxKey('wechatpay_public_key.pem'), Rsa.KEY_TYPE_PUBLIC);
  assert.equal(headers['wechatpay-serial'], PUBLIC_KEY_ID);
  assert.equal(Rsa.verify(signed, headers['wechatpay-signature'], publicKey), true);
  assert.equal(Rsa.verify(`${signed} `, headers['wechatpay-signature'], publicKey), false);
  const { event_type: eventType, resource } = JSON.parse(body);
  assert.equal(eventType, 'TRANSACTION.SUCCESS');
  const transaction = JSON.parse(
    Aes.AesGcm.decrypt(resource.ciphertext, APIV3_KEY, resource.nonce, resource.associated_data),
  );
  assert.equal(transaction.out_trade_no, outTradeNo);
  assert.equal(transaction.trade_state, 'SUCCESS');
  assert.equal(transaction.amount.total, 880);
});

test('the platform certificate downloads, unseals, and then verifies answers by its serial', async () => {
  // The download itself, before the client trusts any certificate: read raw, then checked.
  const bootstrap = client(`${sim.url}/`);
  const download = await bootstrap.v3.certificates.get({ transformResponse: [(data) => data] });
  const raw = download.data;
  const [item] = JSON.parse(raw).data;
  const sealed = item.encrypt_certificate;
  assert.equal(sealed.algorithm, 'AEAD_AES_256_GCM');
  const pem = Aes.AesGcm.decrypt(sealed.ciphertext, APIV3_KEY, sealed.nonce, sealed.associated_data);
  const certificate = new X509Certificate(pem);
  assert.equal(certificate.serialNumber, item.serial_no);
  assert.equal(download.headers['wechatpay-serial'], item.serial_no);
  assert.ok(new Date(certificate.validTo) > new Date());
  assert.equal(
    certificate.publicKey.export({ type: 'spki', format: 'pem' }),
    sandboxKey('wechatpay_public_key.pem'),
  );
  const signed = Formatter.response(
    download.headers['wechatpay-timestamp'], download.headers['wechatpay-nonce'], raw,
  );
  assert.equal(Rsa.verify(signed, download.headers['wechatpay-signature'], certificate.publicKey), true);

  // A client in certificate mode: it names the certificate, answers come under its serial
  // and pass the SDK's verifier.
  const wxpay = client(`${sim.url}/`, { [item.serial_no]: pem });
  const outTradeNo = orderNumber('sdkcrt');
  const created = await wxpay.v3.pay.transactions.native.post({
    appid: APPID,
    mchid: MCHID,
    description: 'Bun',
    out_trade_no: outTradeNo,
    amount: { total: 300, currency: 'CNY' },
  }, { headers: { 'Wechatpay-Serial': item.serial_no } });
  assert.equal(created.headers['wechatpay-serial'], item.serial_no);
  assert.match(created.data.code_url, /^weixin:/);
});

test('a request signed with another key gets SIGN_ERROR; a forged answer fails the SDK', async () => {
  const stranger = new Wechatpay({
    mchid: MCHID,
    serial: '5157F09EFDC096DE15EBE81A47057A7200000001',
    privateKey: sandboxKey('alipay_app_private_key.pem'),
    certs: { [PUBLIC_KEY_ID]: sandboxKey('wechatpay_public_key.pem') },
    baseURL: `${sim.url}/`,
  });
  await assert.rejects(
    stranger.v3.pay.transactions.outTradeNo.$out_trade_no$.get({
      params: { mchid: MCHID }, out_trade_no: 'sdknone1',
    }),
    (error) => error.response?.status === 401 && error.response.data.code === 'SIGN_ERROR',
  );

  await sim.control('/_sim/wechatpay/faults', { kind: 'bad_signature', count: 1 });
  const wxpay = client(`${sim.url}/`);
  await assert.rejects(
    wxpay.v3.pay.transactions.native.post({
      appid: APPID,
      mchid: MCHID,
      description: 'Forged',
      out_trade_no: orderNumber('sdkbad'),
      amount: { total: 100, currency: 'CNY' },
    }),
    (error) => error.code === 'EV3_RES_HEADER_SIGNATURE_DIGEST',
  );
});
