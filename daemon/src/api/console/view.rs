//! What each console page shows, as plain data: the handlers (`mod.rs`) fill these from the
//! store and the caller's scope, `render.rs` turns them into HTML in the page's language
//! (`text.rs`). Every string here is shown as text: the renderer escapes all of it. Amounts
//! are decimal strings at the currency's scale (`"12.50"`); times are already in the
//! merchant's local time (`"2026-12-07 10:32"`).

pub use crate::api::cashier_text::Lang;

/// The console's sections, in the order of its navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Today,
    Payments,
    Alerts,
    Merchants,
}

/// A line at the top of a page, after an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A refund was asked for: its id and status (`pending`, `succeeded`, ...).
    RefundCreated {
        refund_id: String,
        status: String,
    },
    AlertAcknowledged,
    BlockLifted,
    /// The operation needs a fresh authenticator code: none was given.
    CodeRequired,
    /// The code was wrong, too old, or already used.
    CodeInvalid,
    /// The form was stale or not from this session (its CSRF token did not match).
    FormExpired,
    /// The operation is an admin key's.
    AdminOnly,
    /// The payment, alert or block named is not there (any more).
    Gone,
    /// Archived or out of scope: nothing can be refunded from here.
    NotRefundable,
    /// Too many wrong codes for the key: try again in this many seconds.
    TooManyCodes {
        retry_after_s: u64,
    },
    /// The operation failed; the API's own message (English), shown as text.
    Failed(String),
}

/// What every page after log-in shares.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    pub lang: Lang,
    /// The Content-Security-Policy nonce of the page's `<style>` (the console runs no script).
    pub nonce: &'a str,
    /// The session's CSRF token: a hidden field `csrf` in every form.
    pub csrf: &'a str,
    /// The signed-in API key's id and role (`erp`, `admin`).
    pub key_id: &'a str,
    pub role: &'a str,
    pub section: Section,
    /// This page's path and query (for the language switch to come back to).
    pub path: &'a str,
    pub notice: Option<Notice>,
}

/// Why the log-in page is shown again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginProblem {
    /// The key or the code was wrong (one message for both).
    Refused,
    /// Too many failed log-ins from this client: wait this many seconds.
    TooMany { retry_after_s: u64 },
    /// The key has no authenticator enrolled (`paygated keys totp enroll`).
    NoSecondFactor,
    /// The key's role is `pos`.
    RoleTooLow,
    /// The session ended (idle or absolute timeout, log-out, key changed).
    SessionEnded,
    /// The form was stale (its CSRF token did not match).
    FormExpired,
}

#[derive(Debug, Clone)]
pub struct LoginView<'a> {
    pub lang: Lang,
    pub nonce: &'a str,
    /// The log-in form's CSRF token (double-submit: also in a cookie).
    pub csrf: &'a str,
    pub problem: Option<LoginProblem>,
}

/// Succeeded payments of one wallet in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takings {
    pub provider: String,
    pub currency: String,
    pub count: u64,
    pub amount: String,
}

/// A count and a sum in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub currency: String,
    pub count: u64,
    pub amount: String,
}

/// 30 days of takings in one currency, stacked by wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub currency: String,
    /// Decimal places of the currency (2 for CNY): `minor / 10^scale` is the amount.
    pub scale: u32,
    /// The days, oldest first (`"2026-11-08"`).
    pub days: Vec<String>,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub provider: String,
    /// Succeeded takings in minor units, one per day of [`Chart::days`].
    pub minor: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct TodayView<'a> {
    pub frame: Frame<'a>,
    pub day: DayFigures,
}

/// The day's figures and the 30-day chart, within the key's scope.
#[derive(Debug, Clone)]
pub struct DayFigures {
    /// The day shown (`"2026-12-07"`, each merchant's own local day).
    pub date: String,
    pub takings: Vec<Takings>,
    /// Refunds asked for today and not failed, per currency.
    pub refunds: Vec<Totals>,
    /// Payments created today that are still pending, failed, cancelled or expired.
    pub unpaid: u64,
    pub open_alerts: usize,
    /// `None` when there was nothing in 30 days.
    pub chart: Option<Chart>,
    /// The scan stopped at its cap: the figures cover only the newest payments.
    pub partial: bool,
}

/// The search form's fields, as entered.
#[derive(Debug, Clone, Default)]
pub struct PaymentQuery {
    pub order_id: String,
    pub terminal_id: String,
    /// Empty, or one of `pending`, `succeeded`, `failed`, `cancelled`, `expired`.
    pub status: String,
    /// Empty, or `YYYY-MM-DD` (the merchant's local day).
    pub date: String,
}

/// A search field that could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryProblem {
    BadDate,
    BadStatus,
}

#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub id: String,
    pub created: String,
    pub merchant_id: String,
    pub order_id: Option<String>,
    pub terminal_id: Option<String>,
    /// Empty while a link payment's payer has not chosen a wallet.
    pub provider: String,
    /// `qr`, `barcode`, `link`.
    pub method: String,
    pub status: String,
    pub amount: String,
    pub currency: String,
    pub refunded: String,
}

#[derive(Debug, Clone)]
pub struct PaymentsView<'a> {
    pub frame: Frame<'a>,
    pub query: PaymentQuery,
    pub problem: Option<QueryProblem>,
    pub rows: Vec<PaymentRow>,
    /// The next page's path and query, when there is one (a link "older").
    pub next: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PaymentDetail {
    /// What its row in a list shows.
    pub summary: PaymentRow,
    pub description: Option<String>,
    pub updated: String,
    pub provider_reference: Option<String>,
    /// The failure's code and message.
    pub failure: Option<String>,
    pub metadata: Vec<(String, String)>,
    /// Moved to the archive (read-only).
    pub archived: bool,
}

#[derive(Debug, Clone)]
pub struct RefundRow {
    pub id: String,
    pub created: String,
    pub amount: String,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub at: String,
    /// `payment.succeeded`, `refund.created`, ...
    pub kind: String,
}

/// The refund form under a refundable payment.
#[derive(Debug, Clone)]
pub struct RefundForm {
    /// A hidden field `idempotency_key`: the same form sent twice makes one refund.
    pub idempotency_key: String,
    /// The amount field's value: what is still refundable, or what was entered.
    pub amount: String,
    pub reason: String,
    /// Refunds above this need a fresh code (the key has an authenticator); `None` when no
    /// threshold is set for the currency.
    pub code_above: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PaymentView<'a> {
    pub frame: Frame<'a>,
    pub payment: PaymentDetail,
    pub refunds: Vec<RefundRow>,
    pub events: Vec<EventRow>,
    /// False when only the newest part of the event log was read: older events of the
    /// payment are not listed (the page says so).
    pub events_complete: bool,
    /// `None` when the payment cannot be refunded (not succeeded, nothing left, archived).
    pub refund_form: Option<RefundForm>,
}

/// One part of what an alert or a block is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPart {
    /// `terminal`, `merchant`, `api_key`, `payer`, `provider`.
    pub kind: &'static str,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct AlertRow {
    pub id: String,
    pub created: String,
    pub rule: String,
    /// `info`, `warning`, `critical`.
    pub severity: String,
    /// Who or what it is about.
    pub subject: Vec<SubjectPart>,
    pub summary: String,
    /// The alert's evidence, as compact JSON text.
    pub evidence: String,
    pub count: u64,
    /// Open alerts get an "acknowledge" button.
    pub acknowledged: bool,
}

#[derive(Debug, Clone)]
pub struct BlockRow {
    pub id: String,
    /// What is refused: a merchant's terminal, or an API key.
    pub subject: Vec<SubjectPart>,
    pub rule: String,
    pub until: String,
}

#[derive(Debug, Clone)]
pub struct AlertsView<'a> {
    pub frame: Frame<'a>,
    pub alerts: Vec<AlertRow>,
    pub blocks: Vec<BlockRow>,
    /// Admin keys may acknowledge alerts and lift blocks (lifting with a fresh code when
    /// they have an authenticator).
    pub can_lift: bool,
}

#[derive(Debug, Clone)]
pub struct ActivationRow {
    pub provider: String,
    /// `submitted`, `under_review`, `active`, `rejected`, ...
    pub status: String,
    /// What the merchant must do next (`sign_agreement`, ...), if the provider asks.
    pub next_step: Option<String>,
    /// Where to do it (the step's `url`: an `https` link the daemon checked when it stored
    /// the step).
    pub next_step_url: Option<String>,
    pub rejection_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AccountRow {
    pub provider: String,
    pub bank_name: String,
    /// `•••• 1234`: only the last four digits are ever shown.
    pub last4: String,
    pub status: String,
    pub is_default: bool,
}

#[derive(Debug, Clone)]
pub struct MerchantRow {
    pub id: String,
    pub name: String,
    /// `active`, `suspended`, ... (`configured` for merchants of the config file).
    pub status: String,
    pub activations: Vec<ActivationRow>,
    pub accounts: Vec<AccountRow>,
}

#[derive(Debug, Clone)]
pub struct MerchantsView<'a> {
    pub frame: Frame<'a>,
    pub merchants: Vec<MerchantRow>,
}

/// A page that could not be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    NotFound,
    /// Outside the key's merchant scope (told apart from "not found" only for admins).
    Forbidden,
}
