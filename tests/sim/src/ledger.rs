//! The simulator's books: every order and refund it holds, per provider. Tests read it
//! (`GET /_sim/{provider}/ledger`) to check that no order was ever charged or refunded twice.

use std::collections::BTreeMap;

use serde::Serialize;

/// Where an order stands, in provider-neutral terms (each provider module maps these to its
/// own status words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// A QR order nobody has paid yet.
    WaitingForPayer,
    /// A payment-code order the payer has not confirmed yet ("user paying").
    UserPaying,
    Paid,
    /// Closed unpaid (closed, cancelled or expired).
    Closed,
    /// A payment-code order reversed before it completed.
    Revoked,
    /// The payment was refused (balance, invalid code).
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Processing,
    Succeeded,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refund {
    pub out_refund_no: String,
    pub refund_id: String,
    pub amount_minor: i64,
    pub status: RefundStatus,
    /// Times this refund moved money (must never exceed 1).
    pub executions: u32,
    pub created_ms: i64,
    /// When a processing refund completes.
    pub completes_at_ms: Option<i64>,
    pub notify_url: Option<String>,
}

/// What a payment code's suffix makes the payer do (see README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Payer {
    /// Pays at once.
    Pays,
    InsufficientBalance,
    InvalidCode,
    /// Confirms on the phone after a while.
    ConfirmsLater,
    /// Never confirms.
    NeverConfirms,
    /// Pays, but the provider answers "system error".
    PaysBehindSystemError,
}

impl Payer {
    /// The behaviour chosen by the last two digits of a payment code.
    pub fn from_code(code: &str) -> Payer {
        match code.get(code.len().saturating_sub(2)..).unwrap_or("") {
            "51" => Payer::InsufficientBalance,
            "52" => Payer::InvalidCode,
            "60" => Payer::NeverConfirms,
            "61" => Payer::ConfirmsLater,
            "62" => Payer::PaysBehindSystemError,
            _ => Payer::Pays,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    /// The merchant: Alipay app_id or WeChat Pay mchid (a service provider's, for a
    /// sub-merchant's order).
    pub merchant: String,
    /// The sub-merchant whose order its service provider placed (WeChat Pay's `sub_mchid`):
    /// the money is settled to it, not to `merchant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_merchant: Option<String>,
    pub out_trade_no: String,
    /// The app the order was placed for (WeChat Pay's `appid`), which its bill rows name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The provider's own trade number.
    pub trade_no: String,
    /// `qr` or `code`.
    pub kind: &'static str,
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    pub status: OrderStatus,
    pub qr_code: Option<String>,
    pub auth_code: Option<String>,
    pub payer: Option<Payer>,
    pub payer_id: Option<String>,
    pub notify_url: Option<String>,
    pub created_ms: i64,
    pub paid_ms: Option<i64>,
    /// When a "confirms later" payer confirms.
    pub confirms_at_ms: Option<i64>,
    /// When an unpaid QR order expires (closes).
    pub expires_at_ms: Option<i64>,
    /// Times money was taken for this order (must never exceed 1).
    pub charges: u32,
    pub refunds: BTreeMap<String, Refund>,
    /// Notifications sent about this order (attempts, including retries and duplicates).
    pub notifications_sent: u32,
}

impl Order {
    pub fn refunded_minor(&self) -> i64 {
        self.refunds.values().map(|r| r.amount_minor).sum()
    }

    /// Applies what time alone changes: a payer who confirms, an order that expires, a
    /// refund that completes. Returns whether the order became paid now (a notice is due)
    /// and the refunds that completed now.
    pub fn advance(&mut self, now_ms: i64) -> (bool, Vec<String>) {
        let mut paid_now = false;
        if self.status == OrderStatus::UserPaying
            && self.confirms_at_ms.is_some_and(|at| now_ms >= at)
        {
            self.pay(now_ms);
            paid_now = true;
        }
        if self.status == OrderStatus::WaitingForPayer
            && self.expires_at_ms.is_some_and(|at| now_ms >= at)
        {
            self.status = OrderStatus::Closed;
        }
        let mut completed = Vec::new();
        for refund in self.refunds.values_mut() {
            if refund.status == RefundStatus::Processing
                && refund.completes_at_ms.is_some_and(|at| now_ms >= at)
            {
                refund.status = RefundStatus::Succeeded;
                completed.push(refund.out_refund_no.clone());
            }
        }
        (paid_now, completed)
    }

    /// Takes the money (once).
    pub fn pay(&mut self, now_ms: i64) {
        self.status = OrderStatus::Paid;
        self.paid_ms = Some(now_ms);
        self.charges += 1;
        self.payer_id.get_or_insert_with(|| {
            format!(
                "sim_payer_{}",
                &self.trade_no[self.trade_no.len().saturating_sub(6)..]
            )
        });
    }
}

/// One provider's books.
#[derive(Debug, Default, Serialize)]
pub struct Ledger {
    pub orders: BTreeMap<String, Order>,
}

impl Ledger {
    /// The order under `reference`, if it is `merchant`'s (another merchant's is as good as
    /// none).
    pub fn order_of(&mut self, reference: &str, merchant: &str) -> Option<&mut Order> {
        self.orders
            .get_mut(reference)
            .filter(|o| o.merchant == merchant)
    }

    /// The refund under `reference` of one of `merchant`'s orders, with its order.
    pub fn refund_of(&self, reference: &str, merchant: &str) -> Option<(&Order, &Refund)> {
        self.orders
            .values()
            .filter(|o| o.merchant == merchant)
            .find_map(|o| o.refunds.get(reference).map(|r| (o, r)))
    }

    /// The order with this QR code content.
    pub fn by_qr_code(&mut self, qr_code: &str) -> Option<&mut Order> {
        self.orders
            .values_mut()
            .find(|o| o.qr_code.as_deref() == Some(qr_code))
    }

    /// Totals for tests: orders charged more than once, refunds executed more than once,
    /// orders refunded beyond their amount.
    pub fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        for order in self.orders.values() {
            if order.charges > 1 {
                found.push(format!(
                    "{} charged {} times",
                    order.out_trade_no, order.charges
                ));
            }
            if order.refunded_minor() > order.amount_minor {
                found.push(format!("{} refunded beyond its amount", order.out_trade_no));
            }
            for refund in order.refunds.values() {
                if refund.executions > 1 {
                    found.push(format!(
                        "refund {} executed {} times",
                        refund.out_refund_no, refund.executions
                    ));
                }
            }
        }
        found
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
