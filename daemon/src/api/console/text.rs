//! The console's words: one catalogue per language (English, Simplified Chinese), so no page
//! string lives in `render.rs`, and the few helpers that name the API's values (statuses,
//! severities, methods, ...) and write amounts in the page's language. The language itself,
//! wallet names and amounts come from the cashier page's catalogue (`cashier_text`).
#![allow(dead_code)]

use crate::api::cashier_text::Lang;

/// Every string the console shows, in one language. `{}` in a template is replaced by the
/// value(s) its comment names, in order ([`fill`](crate::api::cashier_text::fill) for one,
/// [`fill_all`] for more).
pub struct Texts {
    /// `<html lang>`.
    pub html_lang: &'static str,
    /// This language's own name, the other page's switch to it (`English`, `简体中文`).
    pub language_name: &'static str,
    /// The console's name, in every title.
    pub console: &'static str,
    /// A page's title: its own name, the console's name.
    pub title: &'static str,
    /// Something not there (a payment without an order id, ...).
    pub none: &'static str,

    // The frame of every page after log-in.
    /// The navigation's accessible name.
    pub nav_label: &'static str,
    pub nav_today: &'static str,
    pub nav_payments: &'static str,
    pub nav_alerts: &'static str,
    pub nav_merchants: &'static str,
    /// Around the key id and its role's name.
    pub signed_in: &'static str,
    pub role_erp: &'static str,
    pub role_admin: &'static str,
    pub log_out: &'static str,

    // Notices, after an action.
    /// Around the refund id and its status's name.
    pub notice_refund_created: &'static str,
    pub notice_alert_acknowledged: &'static str,
    pub notice_block_lifted: &'static str,
    pub notice_code_required: &'static str,
    pub notice_code_invalid: &'static str,
    pub notice_form_expired: &'static str,
    /// Around the API's own message.
    pub notice_failed: &'static str,
    pub notice_admin_only: &'static str,
    pub notice_gone: &'static str,
    pub notice_not_refundable: &'static str,
    /// Around the seconds to wait.
    pub notice_too_many_codes: &'static str,
    /// What an alert or block is about: a terminal, a merchant, an API key, a payer, a
    /// provider, each around its id.
    pub subject_terminal: &'static str,
    pub subject_merchant: &'static str,
    pub subject_api_key: &'static str,
    pub subject_payer: &'static str,
    pub subject_provider: &'static str,

    // Log-in.
    pub login_title: &'static str,
    pub login_intro: &'static str,
    pub api_key: &'static str,
    /// The authenticator code's field.
    pub code: &'static str,
    pub code_hint: &'static str,
    pub sign_in: &'static str,
    pub login_refused: &'static str,
    /// Around the seconds to wait.
    pub login_too_many: &'static str,
    pub login_no_second_factor: &'static str,
    pub login_role_too_low: &'static str,
    pub login_session_ended: &'static str,

    // Today.
    /// Around the day.
    pub today_heading: &'static str,
    pub partial: &'static str,
    pub takings: &'static str,
    pub no_takings: &'static str,
    pub refunds_today: &'static str,
    pub no_refunds_today: &'static str,
    pub unpaid: &'static str,
    pub unpaid_note: &'static str,
    pub open_alerts: &'static str,
    /// Around the number of days.
    pub chart_heading: &'static str,
    /// The chart's accessible name: around the number of days and the largest day's total.
    pub chart_label: &'static str,
    /// The axis label: around the largest day's total.
    pub chart_max: &'static str,
    /// A bar segment's title: around the day, the wallet's name and the amount.
    pub chart_bar: &'static str,

    // Column names and labels.
    pub col_wallet: &'static str,
    pub col_count: &'static str,
    pub col_amount: &'static str,
    pub col_created: &'static str,
    pub col_payment: &'static str,
    pub col_merchant: &'static str,
    pub col_order: &'static str,
    pub col_terminal: &'static str,
    pub col_method: &'static str,
    pub col_status: &'static str,
    pub col_refunded: &'static str,
    pub col_description: &'static str,
    pub col_provider_reference: &'static str,
    pub col_updated: &'static str,
    pub col_failure: &'static str,
    pub col_key: &'static str,
    pub col_value: &'static str,
    pub col_refund: &'static str,
    pub col_reason: &'static str,
    pub col_time: &'static str,
    pub col_event: &'static str,
    pub col_rule: &'static str,
    pub col_severity: &'static str,
    pub col_subject: &'static str,
    pub col_summary: &'static str,
    pub col_evidence: &'static str,
    pub col_state: &'static str,
    pub col_until: &'static str,
    pub col_action: &'static str,
    pub col_merchant_id: &'static str,
    pub col_next_step: &'static str,
    /// The link to where the next step is done.
    pub next_step_open: &'static str,
    pub col_rejection: &'static str,
    pub col_bank: &'static str,
    pub col_account: &'static str,
    pub col_default: &'static str,
    pub col_date: &'static str,

    // Payments.
    pub search_label: &'static str,
    pub search: &'static str,
    pub any_status: &'static str,
    pub bad_date: &'static str,
    pub bad_status: &'static str,
    pub no_payments: &'static str,
    pub older: &'static str,
    /// A link payment whose payer has not chosen a wallet yet.
    pub wallet_not_chosen: &'static str,

    // One payment.
    /// Around the payment id.
    pub payment_heading: &'static str,
    pub archived: &'static str,
    pub metadata: &'static str,
    pub no_metadata: &'static str,
    pub refunds: &'static str,
    pub no_refunds: &'static str,
    pub events: &'static str,
    pub no_events: &'static str,
    /// Only the newest part of the log was read.
    pub events_partial: &'static str,
    pub refund_heading: &'static str,
    /// Around the currency code.
    pub refund_amount: &'static str,
    pub refund_reason: &'static str,
    /// The code's label when refunds above an amount need one: around the amount.
    pub refund_code_above: &'static str,
    /// The code's label when no threshold is set.
    pub refund_code: &'static str,
    pub refund_submit: &'static str,

    // Alerts and blocks.
    pub no_alerts: &'static str,
    pub alert_open: &'static str,
    pub alert_acknowledged: &'static str,
    pub acknowledge: &'static str,
    pub blocks: &'static str,
    pub no_blocks: &'static str,
    pub lift: &'static str,
    /// The code's label on a block's lift form.
    pub lift_code: &'static str,

    // Merchants.
    pub no_merchants: &'static str,
    pub activations: &'static str,
    pub no_activations: &'static str,
    pub accounts: &'static str,
    pub no_accounts: &'static str,
    /// The default account's mark.
    pub default_mark: &'static str,
    /// A bank account's number: around its last four digits.
    pub account_last4: &'static str,

    // Pages that could not be shown.
    pub not_found: &'static str,
    pub not_found_note: &'static str,
    pub forbidden: &'static str,
    pub forbidden_note: &'static str,

    // Payment statuses.
    pub payment_pending: &'static str,
    pub payment_succeeded: &'static str,
    pub payment_failed: &'static str,
    pub payment_cancelled: &'static str,
    pub payment_expired: &'static str,

    // Refund statuses.
    pub refund_pending: &'static str,
    pub refund_succeeded: &'static str,
    pub refund_failed: &'static str,

    // Alert severities.
    pub severity_info: &'static str,
    pub severity_warning: &'static str,
    pub severity_critical: &'static str,

    // Alert rules (`monitor::settings::RULES`).
    pub rule_card_testing: &'static str,
    pub rule_decline_burst: &'static str,
    pub rule_decline_rate: &'static str,
    pub rule_amount_spike: &'static str,
    pub rule_refund_burst: &'static str,
    pub rule_refund_ratio: &'static str,
    pub rule_off_hours: &'static str,
    pub rule_forged_notifications: &'static str,
    pub rule_report_mismatch: &'static str,
    pub rule_credential_abuse: &'static str,
    pub rule_idempotency_abuse: &'static str,
    pub rule_state_conflict: &'static str,
    pub rule_reconciliation_discrepancy: &'static str,
    pub rule_reconciliation_critical: &'static str,

    // Merchant statuses.
    pub merchant_draft: &'static str,
    pub merchant_onboarding: &'static str,
    pub merchant_active: &'static str,
    pub merchant_suspended: &'static str,
    pub merchant_configured: &'static str,

    // Activation statuses.
    pub activation_submitted: &'static str,
    pub activation_under_review: &'static str,
    pub activation_active: &'static str,
    pub activation_rejected: &'static str,

    // Next steps a provider asks for.
    pub step_sign_agreement: &'static str,

    // Bank account statuses.
    pub account_pending_verification: &'static str,
    pub account_verified: &'static str,
    pub account_failed: &'static str,

    // Payment methods.
    pub method_qr: &'static str,
    pub method_barcode: &'static str,
    pub method_link: &'static str,
    pub method_wallet_token: &'static str,
}

pub const EN: Texts = Texts {
    html_lang: "en",
    language_name: "English",
    console: "Paygate console",
    title: "{} \u{2013} {}",
    none: "\u{2014}",

    nav_label: "Sections",
    nav_today: "Today",
    nav_payments: "Payments",
    nav_alerts: "Alerts",
    nav_merchants: "Merchants",
    signed_in: "Signed in as {} ({})",
    role_erp: "ERP",
    role_admin: "administrator",
    log_out: "Log out",

    notice_refund_created: "Refund {} requested: {}.",
    notice_alert_acknowledged: "The alert is acknowledged.",
    notice_block_lifted: "The block is lifted.",
    notice_code_required: "This needs the 6-digit code from your authenticator app: enter it and try again.",
    notice_code_invalid: "The code is wrong, too old or already used. Wait for a new code and try again.",
    notice_form_expired: "The form had expired. Please try again.",
    notice_failed: "That did not work: {}",
    notice_admin_only: "Only an admin key may do this.",
    notice_gone: "It is not there any more.",
    notice_not_refundable: "This payment cannot be refunded from here.",
    notice_too_many_codes: "Too many wrong codes for this key. Try again in {} seconds.",
    subject_terminal: "terminal {}",
    subject_merchant: "merchant {}",
    subject_api_key: "API key {}",
    subject_payer: "payer {}",
    subject_provider: "provider {}",

    login_title: "Sign in",
    login_intro: "Sign in with an API key of role erp or admin and the code from your authenticator app.",
    api_key: "API key",
    code: "Authenticator code",
    code_hint: "6 digits",
    sign_in: "Sign in",
    login_refused: "The key or the code is wrong.",
    login_too_many: "Too many failed attempts. Try again in {} seconds.",
    login_no_second_factor: "This key has no authenticator yet. Enrol one with \u{201c}paygated keys totp enroll\u{201d}, then sign in.",
    login_role_too_low: "This key cannot open the console: it needs the role erp or admin.",
    login_session_ended: "Your session has ended. Please sign in again.",

    today_heading: "Today, {}",
    partial: "Only the newest payments were counted: these figures may be incomplete.",
    takings: "Takings",
    no_takings: "No payments received yet today.",
    refunds_today: "Refunds",
    no_refunds_today: "No refunds today.",
    unpaid: "Unpaid",
    unpaid_note: "Payments created today and not paid (pending, failed, cancelled or expired).",
    open_alerts: "Open alerts",
    chart_heading: "Takings, last {} days",
    chart_label: "Takings per day over the last {} days, by wallet; the largest day: {}.",
    chart_max: "Largest day: {}",
    chart_bar: "{} \u{b7} {}: {}",

    col_wallet: "Wallet",
    col_count: "Count",
    col_amount: "Amount",
    col_created: "Created",
    col_payment: "Payment",
    col_merchant: "Merchant",
    col_order: "Order",
    col_terminal: "Terminal",
    col_method: "Method",
    col_status: "Status",
    col_refunded: "Refunded",
    col_description: "Description",
    col_provider_reference: "Wallet\u{2019}s reference",
    col_updated: "Updated",
    col_failure: "Failure",
    col_key: "Key",
    col_value: "Value",
    col_refund: "Refund",
    col_reason: "Reason",
    col_time: "Time",
    col_event: "Event",
    col_rule: "Rule",
    col_severity: "Severity",
    col_subject: "About",
    col_summary: "Summary",
    col_evidence: "Evidence",
    col_state: "State",
    col_until: "Until",
    col_action: "Action",
    col_merchant_id: "Merchant id",
    col_next_step: "Next step",
    next_step_open: "Open",
    col_rejection: "Reason for rejection",
    col_bank: "Bank",
    col_account: "Account",
    col_default: "Default",
    col_date: "Date",

    search_label: "Find payments",
    search: "Search",
    any_status: "Any",
    bad_date: "The date must be a day like 2026-12-07.",
    bad_status: "There is no such status.",
    no_payments: "No payments found.",
    older: "Older",
    wallet_not_chosen: "Not chosen yet",

    payment_heading: "Payment {}",
    archived: "This payment is archived: it can be read but no longer changed.",
    metadata: "Metadata",
    no_metadata: "No metadata.",
    refunds: "Refunds",
    no_refunds: "No refunds.",
    events: "Events",
    no_events: "No events.",
    events_partial: "Older events of this payment are not listed (only the newest part of the log was read).",
    refund_heading: "Refund",
    refund_amount: "Amount to refund ({})",
    refund_reason: "Reason (optional)",
    refund_code_above: "Authenticator code (needed for refunds above {})",
    refund_code: "Authenticator code (if asked for)",
    refund_submit: "Refund",

    no_alerts: "No alerts.",
    alert_open: "Open",
    alert_acknowledged: "Acknowledged",
    acknowledge: "Acknowledge",
    blocks: "Blocks",
    no_blocks: "Nothing is blocked.",
    lift: "Lift",
    lift_code: "Authenticator code",

    no_merchants: "No merchants.",
    activations: "Wallets",
    no_activations: "No wallet applications.",
    accounts: "Bank accounts",
    no_accounts: "No bank accounts.",
    default_mark: "Default",
    account_last4: "\u{2022}\u{2022}\u{2022}\u{2022} {}",

    not_found: "Not found",
    not_found_note: "There is nothing here, or it is not one of your merchants\u{2019}.",
    forbidden: "Not allowed",
    forbidden_note: "This belongs to a merchant your key cannot see.",

    payment_pending: "Pending",
    payment_succeeded: "Paid",
    payment_failed: "Failed",
    payment_cancelled: "Cancelled",
    payment_expired: "Expired",

    refund_pending: "In progress",
    refund_succeeded: "Refunded",
    refund_failed: "Failed",

    severity_info: "Info",
    severity_warning: "Warning",
    severity_critical: "Critical",

    rule_card_testing: "Card testing",
    rule_decline_burst: "Burst of declines",
    rule_decline_rate: "High decline rate",
    rule_amount_spike: "Unusual amount",
    rule_refund_burst: "Burst of refunds",
    rule_refund_ratio: "High refund ratio",
    rule_off_hours: "Outside opening hours",
    rule_forged_notifications: "Forged notifications",
    rule_report_mismatch: "Report mismatch",
    rule_credential_abuse: "Credential abuse",
    rule_idempotency_abuse: "Idempotency key abuse",
    rule_state_conflict: "Status conflict",
    rule_reconciliation_discrepancy: "Bill discrepancies",
    rule_reconciliation_critical: "Unknown or stray charges in a bill",

    merchant_draft: "Draft",
    merchant_onboarding: "Onboarding",
    merchant_active: "Active",
    merchant_suspended: "Suspended",
    merchant_configured: "Configured",

    activation_submitted: "Submitted",
    activation_under_review: "Under review",
    activation_active: "Active",
    activation_rejected: "Rejected",

    step_sign_agreement: "Sign the agreement",

    account_pending_verification: "Being verified",
    account_verified: "Verified",
    account_failed: "Verification failed",

    method_qr: "QR code",
    method_barcode: "Barcode",
    method_link: "Payment link",
    method_wallet_token: "Wallet token",
};

pub const ZH_HANS: Texts = Texts {
    html_lang: "zh-CN",
    language_name: "简体中文",
    console: "Paygate 商户后台",
    title: "{} - {}",
    none: "\u{2014}",

    nav_label: "栏目",
    nav_today: "今日",
    nav_payments: "收款",
    nav_alerts: "告警",
    nav_merchants: "商户",
    signed_in: "当前登录：{}（{}）",
    role_erp: "ERP",
    role_admin: "管理员",
    log_out: "退出登录",

    notice_refund_created: "已提交退款 {}：{}。",
    notice_alert_acknowledged: "告警已确认。",
    notice_block_lifted: "已解除封禁。",
    notice_code_required: "此操作需要身份验证器中的 6 位验证码，请输入后重试。",
    notice_code_invalid: "验证码错误、已过期或已使用过，请等待新的验证码后重试。",
    notice_form_expired: "表单已过期，请重试。",
    notice_failed: "操作失败：{}",
    notice_admin_only: "只有管理员密钥可以执行此操作。",
    notice_gone: "该记录已不存在。",
    notice_not_refundable: "此付款无法在此退款。",
    notice_too_many_codes: "此密钥输错验证码次数过多，请 {} 秒后再试。",
    subject_terminal: "终端 {}",
    subject_merchant: "商户 {}",
    subject_api_key: "API 密钥 {}",
    subject_payer: "付款人 {}",
    subject_provider: "支付渠道 {}",

    login_title: "登录",
    login_intro: "请使用角色为 erp 或 admin 的 API 密钥，以及身份验证器中的验证码登录。",
    api_key: "API 密钥",
    code: "验证码",
    code_hint: "6 位数字",
    sign_in: "登录",
    login_refused: "密钥或验证码错误。",
    login_too_many: "登录失败次数过多，请 {} 秒后再试。",
    login_no_second_factor: "此密钥尚未绑定身份验证器。请先运行“paygated keys totp enroll”绑定，然后再登录。",
    login_role_too_low: "此密钥无权使用商户后台：需要 erp 或 admin 角色。",
    login_session_ended: "登录已失效，请重新登录。",

    today_heading: "今日（{}）",
    partial: "仅统计了最新的一部分付款，以下数字可能不完整。",
    takings: "收款",
    no_takings: "今日暂无收款。",
    refunds_today: "退款",
    no_refunds_today: "今日暂无退款。",
    unpaid: "未付款",
    unpaid_note: "今日创建但尚未成功支付的订单（待支付、失败、已取消或已过期）。",
    open_alerts: "未处理告警",
    chart_heading: "近 {} 天收款",
    chart_label: "近 {} 天每日收款，按支付方式分色；单日最高：{}。",
    chart_max: "单日最高：{}",
    chart_bar: "{} \u{b7} {}：{}",

    col_wallet: "支付方式",
    col_count: "笔数",
    col_amount: "金额",
    col_created: "创建时间",
    col_payment: "付款单号",
    col_merchant: "商户",
    col_order: "订单号",
    col_terminal: "终端",
    col_method: "收款方式",
    col_status: "状态",
    col_refunded: "已退款",
    col_description: "商品描述",
    col_provider_reference: "支付机构单号",
    col_updated: "更新时间",
    col_failure: "失败原因",
    col_key: "键",
    col_value: "值",
    col_refund: "退款单号",
    col_reason: "原因",
    col_time: "时间",
    col_event: "事件",
    col_rule: "规则",
    col_severity: "级别",
    col_subject: "对象",
    col_summary: "摘要",
    col_evidence: "证据",
    col_state: "处理状态",
    col_until: "截止时间",
    col_action: "操作",
    col_merchant_id: "商户号",
    col_next_step: "下一步",
    next_step_open: "前往办理",
    col_rejection: "驳回原因",
    col_bank: "银行",
    col_account: "账号",
    col_default: "默认",
    col_date: "日期",

    search_label: "查询收款",
    search: "查询",
    any_status: "全部",
    bad_date: "日期格式应为 2026-12-07。",
    bad_status: "没有这个状态。",
    no_payments: "没有找到符合条件的收款。",
    older: "更早",
    wallet_not_chosen: "尚未选择",

    payment_heading: "付款单 {}",
    archived: "此付款已归档：只能查看，不能再修改。",
    metadata: "附加信息",
    no_metadata: "无附加信息。",
    refunds: "退款",
    no_refunds: "暂无退款。",
    events: "事件记录",
    no_events: "暂无事件。",
    events_partial: "仅读取了最近的日志，此付款较早的事件未列出。",
    refund_heading: "退款",
    refund_amount: "退款金额（{}）",
    refund_reason: "退款原因（选填）",
    refund_code_above: "验证码（退款金额超过 {} 时必填）",
    refund_code: "验证码（如有要求）",
    refund_submit: "确认退款",

    no_alerts: "暂无告警。",
    alert_open: "未处理",
    alert_acknowledged: "已确认",
    acknowledge: "确认",
    blocks: "封禁",
    no_blocks: "当前没有封禁。",
    lift: "解除",
    lift_code: "验证码",

    no_merchants: "暂无商户。",
    activations: "支付方式开通",
    no_activations: "尚未申请开通任何支付方式。",
    accounts: "结算银行账户",
    no_accounts: "暂无银行账户。",
    default_mark: "默认",
    account_last4: "\u{2022}\u{2022}\u{2022}\u{2022} {}",

    not_found: "未找到",
    not_found_note: "这里没有内容，或不属于您的商户。",
    forbidden: "无权访问",
    forbidden_note: "该内容属于您的密钥无权查看的商户。",

    payment_pending: "待支付",
    payment_succeeded: "已支付",
    payment_failed: "支付失败",
    payment_cancelled: "已取消",
    payment_expired: "已过期",

    refund_pending: "退款中",
    refund_succeeded: "已退款",
    refund_failed: "退款失败",

    severity_info: "提示",
    severity_warning: "警告",
    severity_critical: "严重",

    rule_card_testing: "盗卡测试",
    rule_decline_burst: "短时间内大量支付失败",
    rule_decline_rate: "支付失败率过高",
    rule_amount_spike: "金额异常",
    rule_refund_burst: "短时间内大量退款",
    rule_refund_ratio: "退款比例过高",
    rule_off_hours: "非营业时间交易",
    rule_forged_notifications: "伪造支付通知",
    rule_report_mismatch: "对账不一致",
    rule_credential_abuse: "凭证滥用",
    rule_idempotency_abuse: "幂等键滥用",
    rule_state_conflict: "状态冲突",
    rule_reconciliation_discrepancy: "对账差异",
    rule_reconciliation_critical: "对账发现未知或异常扣款",

    merchant_draft: "草稿",
    merchant_onboarding: "开通中",
    merchant_active: "正常",
    merchant_suspended: "已暂停",
    merchant_configured: "配置文件商户",

    activation_submitted: "已提交",
    activation_under_review: "审核中",
    activation_active: "已开通",
    activation_rejected: "已驳回",

    step_sign_agreement: "签署协议",

    account_pending_verification: "验证中",
    account_verified: "已验证",
    account_failed: "验证失败",

    method_qr: "扫码支付",
    method_barcode: "付款码支付",
    method_link: "支付链接",
    method_wallet_token: "钱包令牌",
};

/// The catalogue of `lang`.
pub fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::En => &EN,
        Lang::ZhHans => &ZH_HANS,
    }
}

/// The names of the API's values in this language; a value the catalogue does not know is
/// shown as it is.
impl Texts {
    /// A payment's status (`pending`, `succeeded`, ...).
    pub fn payment_status<'a>(&self, status: &'a str) -> &'a str {
        match status {
            "pending" => self.payment_pending,
            "succeeded" => self.payment_succeeded,
            "failed" => self.payment_failed,
            "cancelled" => self.payment_cancelled,
            "expired" => self.payment_expired,
            other => other,
        }
    }

    /// A refund's status (`pending`, `succeeded`, `failed`).
    pub fn refund_status<'a>(&self, status: &'a str) -> &'a str {
        match status {
            "pending" => self.refund_pending,
            "succeeded" => self.refund_succeeded,
            "failed" => self.refund_failed,
            other => other,
        }
    }

    /// An alert's severity (`info`, `warning`, `critical`).
    pub fn severity<'a>(&self, severity: &'a str) -> &'a str {
        match severity {
            "info" => self.severity_info,
            "warning" => self.severity_warning,
            "critical" => self.severity_critical,
            other => other,
        }
    }

    /// An alert's rule (`card_testing`, `refund_ratio`, ...).
    pub fn rule<'a>(&self, rule: &'a str) -> &'a str {
        match rule {
            "card_testing" => self.rule_card_testing,
            "decline_burst" => self.rule_decline_burst,
            "decline_rate" => self.rule_decline_rate,
            "amount_spike" => self.rule_amount_spike,
            "refund_burst" => self.rule_refund_burst,
            "refund_ratio" => self.rule_refund_ratio,
            "off_hours" => self.rule_off_hours,
            "forged_notifications" => self.rule_forged_notifications,
            "report_mismatch" => self.rule_report_mismatch,
            "credential_abuse" => self.rule_credential_abuse,
            "idempotency_abuse" => self.rule_idempotency_abuse,
            "state_conflict" => self.rule_state_conflict,
            "reconciliation_discrepancy" => self.rule_reconciliation_discrepancy,
            "reconciliation_critical" => self.rule_reconciliation_critical,
            other => other,
        }
    }

    /// A merchant's status (`draft`, `onboarding`, `active`, `configured`, ...).
    pub fn merchant_status<'a>(&self, status: &'a str) -> &'a str {
        match status {
            "draft" => self.merchant_draft,
            "onboarding" => self.merchant_onboarding,
            "active" => self.merchant_active,
            "suspended" => self.merchant_suspended,
            "configured" => self.merchant_configured,
            other => other,
        }
    }

    /// An application's status at a provider (`submitted`, `under_review`, ...).
    pub fn activation_status<'a>(&self, status: &'a str) -> &'a str {
        match status {
            "submitted" => self.activation_submitted,
            "under_review" => self.activation_under_review,
            "active" => self.activation_active,
            "rejected" => self.activation_rejected,
            other => other,
        }
    }

    /// What a provider asks the merchant to do next (`sign_agreement`, ...).
    pub fn next_step<'a>(&self, step: &'a str) -> &'a str {
        match step {
            "sign_agreement" => self.step_sign_agreement,
            other => other,
        }
    }

    /// A settlement bank account's status (`pending_verification`, `verified`, `failed`).
    pub fn account_status<'a>(&self, status: &'a str) -> &'a str {
        match status {
            "pending_verification" => self.account_pending_verification,
            "verified" => self.account_verified,
            "failed" => self.account_failed,
            other => other,
        }
    }

    /// How a payment is paid (`qr`, `barcode`, `link`, `wallet_token`).
    pub fn method<'a>(&self, method: &'a str) -> &'a str {
        match method {
            "qr" => self.method_qr,
            "barcode" => self.method_barcode,
            "link" => self.method_link,
            "wallet_token" => self.method_wallet_token,
            other => other,
        }
    }

    /// An API key's role (`erp`, `admin`).
    pub fn role<'a>(&self, role: &'a str) -> &'a str {
        match role {
            "erp" => self.role_erp,
            "admin" => self.role_admin,
            other => other,
        }
    }
}

/// `template` with its `{}`s replaced by `values`, in order (a `{}` inside a value stays as
/// it is; placeholders without a value are left out).
pub fn fill_all(template: &str, values: &[&str]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.len()).sum::<usize>());
    let mut values = values.iter();
    let mut parts = template.split("{}");
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for part in parts {
        if let Some(value) = values.next() {
            out.push_str(value);
        }
        out.push_str(part);
    }
    out
}

/// An amount as this language writes it, in one string: `12.50 CNY`, or `¥12.50` in Chinese
/// ([`Lang::amount`]).
pub fn money(lang: Lang, amount: &str, currency: &str) -> String {
    match lang.amount(amount, currency) {
        (before, number, "") => format!("{before}{number}"),
        (before, number, after) => format!("{before}{number} {after}"),
    }
}

/// `minor / 10^scale` with exactly `scale` decimals, by digits, never through a float
/// (`1250, 2` -> `12.50`; `-5, 2` -> `-0.05`; `7, 0` -> `7`).
pub fn minor_amount(minor: i64, scale: u32) -> String {
    let digits = minor.unsigned_abs().to_string();
    let scale = scale as usize;
    let digits = if digits.len() <= scale {
        format!("{digits:0>width$}", width = scale + 1)
    } else {
        digits
    };
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if minor < 0 { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cashier_text::fill;

    #[test]
    fn values_are_named_in_each_language_and_unknown_ones_kept() {
        let zh = texts(Lang::ZhHans);
        let en = texts(Lang::En);
        assert_eq!(zh.payment_status("succeeded"), "已支付");
        assert_eq!(en.payment_status("pending"), "Pending");
        assert_eq!(zh.refund_status("pending"), "退款中");
        assert_eq!(zh.severity("critical"), "严重");
        assert_eq!(zh.activation_status("under_review"), "审核中");
        assert_eq!(zh.account_status("pending_verification"), "验证中");
        assert_eq!(zh.method("barcode"), "付款码支付");
        assert_eq!(zh.merchant_status("configured"), "配置文件商户");
        assert_eq!(en.rule("off_hours"), "Outside opening hours");
        for unknown in ["<weird>", "", "Pending"] {
            assert_eq!(zh.payment_status(unknown), unknown);
            assert_eq!(zh.refund_status(unknown), unknown);
            assert_eq!(zh.severity(unknown), unknown);
            assert_eq!(zh.method(unknown), unknown);
            assert_eq!(zh.activation_status(unknown), unknown);
            assert_eq!(zh.account_status(unknown), unknown);
        }
    }

    #[test]
    fn every_rule_the_monitor_knows_has_a_name() {
        for texts in [&EN, &ZH_HANS] {
            for rule in crate::monitor::settings::RULES {
                assert_ne!(texts.rule(rule), *rule);
            }
        }
    }

    #[test]
    fn templates_take_their_values_in_order() {
        for texts in [&EN, &ZH_HANS] {
            for (template, n) in [
                (texts.title, 2),
                (texts.signed_in, 2),
                (texts.notice_refund_created, 2),
                (texts.notice_failed, 1),
                (texts.notice_too_many_codes, 1),
                (texts.subject_terminal, 1),
                (texts.subject_merchant, 1),
                (texts.subject_api_key, 1),
                (texts.subject_payer, 1),
                (texts.subject_provider, 1),
                (texts.login_too_many, 1),
                (texts.today_heading, 1),
                (texts.chart_heading, 1),
                (texts.chart_label, 2),
                (texts.chart_max, 1),
                (texts.chart_bar, 3),
                (texts.payment_heading, 1),
                (texts.refund_amount, 1),
                (texts.refund_code_above, 1),
                (texts.account_last4, 1),
            ] {
                assert_eq!(template.matches("{}").count(), n, "{template}");
            }
        }
        assert_eq!(fill_all("{} · {}: {}", &["a{}", "b", "c"]), "a{} · b: c");
        assert_eq!(fill_all("{} and {}", &["x"]), "x and ");
        assert_eq!(fill(ZH_HANS.chart_max, "¥1.00"), "单日最高：¥1.00");
    }

    #[test]
    fn amounts_from_minor_units_by_digits() {
        assert_eq!(minor_amount(1250, 2), "12.50");
        assert_eq!(minor_amount(5, 2), "0.05");
        assert_eq!(minor_amount(0, 2), "0.00");
        assert_eq!(minor_amount(-5, 2), "-0.05");
        assert_eq!(minor_amount(7, 0), "7");
        assert_eq!(minor_amount(1, 3), "0.001");
        assert_eq!(minor_amount(i64::MAX, 2), "92233720368547758.07");
        assert_eq!(minor_amount(i64::MIN, 0), "-9223372036854775808");
        assert_eq!(money(Lang::ZhHans, "12.50", "CNY"), "¥12.50");
        assert_eq!(money(Lang::En, "12.50", "CNY"), "12.50 CNY");
        assert_eq!(money(Lang::ZhHans, "3.00", "USD"), "3.00 USD");
    }
}
