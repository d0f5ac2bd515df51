//! The console's pages as HTML: pure functions from a page's view (`view.rs`) to a whole
//! document, no I/O. Every word comes from the page language's catalogue (`text.rs`); every
//! value of a view is escaped, in text and in attributes, and every id in a URL is
//! percent-encoded. One `<style>` under the response's CSP nonce, no script, no inline
//! `style=` attribute, no external asset; tables turn into stacked blocks on a phone.
#![allow(dead_code)]

use std::fmt::Write as _;

use super::text::{Texts, fill_all, minor_amount, money, texts};
use super::view::{
    AlertsView, Chart, Frame, Lang, LoginProblem, LoginView, MerchantsView, Notice, PaymentView,
    PaymentsView, Problem, QueryProblem, Section, Series, SubjectPart, TodayView,
};
use crate::api::cashier_text::fill;
use crate::api::html::{escape, path_segment as segment};

/// The one stylesheet: system fonts (CJK included), a calm light look, and under 640px every
/// table row a block of its own with each cell's column name (`data-label`) above its value.
const STYLE: &str = "\
*,*::before,*::after{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}\
body{margin:0;background:#f4f5f7;color:#1d1f23;line-height:1.5;font-size:15px;\
font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,\
\"PingFang SC\",\"Hiragino Sans GB\",\"Microsoft YaHei\",\"Noto Sans CJK SC\",\
\"Source Han Sans SC\",\"WenQuanYi Micro Hei\",sans-serif}\
a{color:#0b57d0}\
header{background:#fff;border-bottom:1px solid #e2e4e8}\
.bar{max-width:1100px;margin:0 auto;padding:8px 16px 0;display:flex;flex-wrap:wrap;\
align-items:center;gap:4px 16px}\
.brand{font-weight:600;margin-right:auto}\
.who{color:#636a75;font-size:.85rem;overflow-wrap:anywhere}\
.logout button{background:none;color:#0b57d0;padding:4px 0;min-height:0;text-decoration:underline}\
nav ul{list-style:none;max-width:1100px;margin:0 auto;padding:0 16px;display:flex;\
flex-wrap:wrap;gap:0 20px}\
nav a{display:inline-block;padding:8px 0;color:#3c4048;text-decoration:none;\
border-bottom:2px solid transparent}\
nav a[aria-current=page]{color:#1d1f23;font-weight:600;border-bottom-color:#0b57d0}\
main{max-width:1100px;margin:0 auto;padding:16px}\
h1{font-size:1.35rem;margin:4px 0 16px;overflow-wrap:anywhere}\
h2{font-size:1.1rem;margin:24px 0 8px;overflow-wrap:anywhere}\
h3{font-size:1rem;margin:16px 0 8px}\
p{margin:0 0 12px}\
.notice{padding:10px 12px;border-radius:8px;overflow-wrap:anywhere}\
.ok{background:#e6f4ea;color:#145a2c}\
.error{background:#fce8e6;color:#8c1d18}\
.warn{background:#fef7e0;color:#6b4b00}\
.muted{color:#636a75}\
.panel{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:12px 16px;margin:0 0 16px}\
.table{overflow-x:auto}\
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #e2e4e8;margin:0 0 12px}\
th,td{text-align:left;vertical-align:top;padding:8px 10px;border-bottom:1px solid #eceef1;\
overflow-wrap:break-word}\
th{font-size:.8rem;font-weight:600;color:#636a75;background:#fafbfc}\
tr.done{color:#636a75}\
.num{font-variant-numeric:tabular-nums;white-space:nowrap}\
.badge{white-space:nowrap}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em;\
overflow-wrap:anywhere;word-break:break-all;white-space:pre-wrap}\
dl.details{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,220px),1fr));\
gap:10px 20px;margin:0 0 16px}\
.details div{min-width:0}\
dt{font-size:.8rem;color:#636a75}\
dd{margin:0;overflow-wrap:anywhere}\
.stats .figure{font-size:1.4rem;font-weight:600}\
.stats .muted{font-size:.8rem}\
form{margin:0}\
label{display:block;font-size:.875rem;margin:0 0 10px;max-width:100%}\
input,select{display:block;width:100%;max-width:100%;margin-top:4px;padding:8px 10px;font:inherit;\
color:inherit;border:1px solid #c4c8cf;border-radius:6px;background:#fff}\
button{font:inherit;min-height:40px;padding:8px 16px;border:0;border-radius:6px;background:#0b57d0;\
color:#fff;cursor:pointer;max-width:100%}\
.search{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,180px),1fr));\
gap:0 12px;align-items:end}\
.search button{margin:0 0 10px}\
.row-form{display:flex;flex-wrap:wrap;align-items:flex-end;gap:0 8px}\
.row-form label{flex:1 1 8em;margin:0 0 6px}\
.row-form button{margin:0 0 6px}\
.narrow{max-width:480px}\
.login{max-width:420px;margin:40px auto}\
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:.8rem;background:#eceef1;\
color:#3c4048}\
.s-succeeded,.s-active,.s-verified{background:#e6f4ea;color:#145a2c}\
.s-failed,.s-rejected,.sev-critical{background:#fce8e6;color:#8c1d18}\
.s-pending,.sev-warning{background:#fef7e0;color:#6b4b00}\
.next{text-align:center;margin:16px 0}\
.chart h2{margin-top:0}\
.chart svg{display:block;width:100%;height:auto}\
.chart line{stroke:#d3d7dd;stroke-width:1;vector-effect:non-scaling-stroke}\
.axis{font-size:.8rem;color:#636a75;margin:0 0 4px}\
.days{display:flex;justify-content:space-between;gap:8px;font-size:.75rem;color:#636a75;margin:4px 0 0}\
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 16px;padding:0;margin:8px 0 0;font-size:.85rem}\
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:6px}\
.c-alipay{fill:#1677ff;background:#1677ff}\
.c-wechatpay{fill:#07c160;background:#07c160}\
.c-applepay{fill:#333;background:#333}\
.c-mock{fill:#999;background:#999}\
.p0{fill:#f59e0b;background:#f59e0b}\
.p1{fill:#8b5cf6;background:#8b5cf6}\
.p2{fill:#e11d48;background:#e11d48}\
.p3{fill:#0d9488;background:#0d9488}\
.p4{fill:#db2777;background:#db2777}\
.p5{fill:#65a30d;background:#65a30d}\
@media (max-width:640px){\
main{padding:12px}\
table,tbody,tr,td{display:block;width:100%}\
table{border:0;background:none}\
thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}\
tr{background:#fff;border:1px solid #e2e4e8;border-radius:8px;margin:0 0 10px;padding:6px 12px}\
td{border:0;padding:4px 0}\
td::before{content:attr(data-label);display:block;font-size:.75rem;color:#636a75}\
td:empty{display:none}\
.num{white-space:normal}\
}";

/// The chart's drawing box (user units; the `<svg>` scales to the page's width).
const CHART_W: f64 = 600.0;
const CHART_H: f64 = 160.0;
/// How much of a day's column its bar takes.
const BAR_SHARE: f64 = 0.7;
/// Colour classes for wallets without a colour of their own, in order of appearance.
const PALETTE: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];

/// The log-in page: an API key and an authenticator code.
pub fn login(view: &LoginView<'_>) -> String {
    let t = texts(view.lang);
    let mut body = String::with_capacity(4 * 1024);
    body.push_str("<main class=\"login\">");
    let _ = write!(
        body,
        "<p class=\"brand\">{}</p><h1>{}</h1>",
        escape(t.console),
        escape(t.login_title)
    );
    if let Some(problem) = view.problem {
        let (role, class, message) = match problem {
            LoginProblem::Refused => ("alert", "error", t.login_refused.to_owned()),
            LoginProblem::TooMany { retry_after_s } => (
                "alert",
                "error",
                fill(t.login_too_many, &retry_after_s.to_string()),
            ),
            LoginProblem::NoSecondFactor => ("alert", "error", t.login_no_second_factor.to_owned()),
            LoginProblem::RoleTooLow => ("alert", "error", t.login_role_too_low.to_owned()),
            LoginProblem::SessionEnded => ("status", "warn", t.login_session_ended.to_owned()),
            LoginProblem::FormExpired => ("alert", "error", t.notice_form_expired.to_owned()),
        };
        let _ = write!(
            body,
            "<p class=\"notice {class}\" role=\"{role}\">{}</p>",
            escape(&message)
        );
    }
    let _ = write!(
        body,
        "<div class=\"panel\"><p class=\"muted\">{}</p>\
         <form method=\"post\" action=\"/console/login\">{}\
         <label>{}<input type=\"password\" name=\"api_key\" autocomplete=\"off\" required></label>\
         <label>{} <span class=\"muted\">({})</span>{}</label>\
         <button type=\"submit\">{}</button></form></div>",
        escape(t.login_intro),
        csrf_field(view.csrf),
        escape(t.api_key),
        escape(t.code),
        escape(t.code_hint),
        code_input(true),
        escape(t.sign_in),
    );
    body.push_str("<p>");
    // The log-in page's own path, as the brief of the language switch spells it.
    language_switch(&mut body, view.lang, "/console/login");
    body.push_str("</p></main>");
    document(
        view.lang,
        view.nonce,
        &fill_all(t.title, &[t.login_title, t.console]),
        &body,
    )
}

/// Today: the day's takings per wallet, refunds, unpaid payments, open alerts, and 30 days
/// of takings as a chart.
pub fn today(view: &TodayView<'_>) -> String {
    let lang = view.frame.lang;
    let t = texts(lang);
    let mut m = String::with_capacity(8 * 1024);
    let _ = write!(
        m,
        "<h1>{}</h1>",
        escape(&fill(t.today_heading, &view.day.date))
    );
    if view.day.partial {
        let _ = write!(m, "<p class=\"notice warn\">{}</p>", escape(t.partial));
    }
    let _ = write!(
        m,
        "<dl class=\"details stats panel\">\
         <div><dt>{}</dt><dd class=\"figure\">{}</dd><dd class=\"muted\">{}</dd></div>\
         <div><dt>{}</dt><dd class=\"figure\"><a href=\"/console/alerts\">{}</a></dd></div></dl>",
        escape(t.unpaid),
        view.day.unpaid,
        escape(t.unpaid_note),
        escape(t.open_alerts),
        view.day.open_alerts,
    );

    let _ = write!(m, "<h2>{}</h2>", escape(t.takings));
    if view.day.takings.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_takings));
    } else {
        table_head(&mut m, &[t.col_wallet, t.col_count, t.col_amount]);
        for row in &view.day.takings {
            m.push_str("<tr>");
            cell(
                &mut m,
                t.col_wallet,
                &escape(&lang.wallet_name(&row.provider)),
            );
            num_cell(&mut m, t.col_count, &row.count.to_string());
            num_cell(
                &mut m,
                t.col_amount,
                &money(lang, &row.amount, &row.currency),
            );
            m.push_str("</tr>");
        }
        table_foot(&mut m);
    }

    let _ = write!(m, "<h2>{}</h2>", escape(t.refunds_today));
    if view.day.refunds.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_refunds_today));
    } else {
        table_head(&mut m, &[t.col_count, t.col_amount]);
        for row in &view.day.refunds {
            m.push_str("<tr>");
            num_cell(&mut m, t.col_count, &row.count.to_string());
            num_cell(
                &mut m,
                t.col_amount,
                &money(lang, &row.amount, &row.currency),
            );
            m.push_str("</tr>");
        }
        table_foot(&mut m);
    }

    if let Some(chart) = &view.day.chart {
        chart_section(&mut m, lang, chart);
    }
    framed(&view.frame, t.nav_today, &m)
}

/// The payments search: the form, the matching payments newest first, a link to older ones.
pub fn payments(view: &PaymentsView<'_>) -> String {
    let lang = view.frame.lang;
    let t = texts(lang);
    let q = &view.query;
    let mut m = String::with_capacity(16 * 1024);
    let _ = write!(m, "<h1>{}</h1>", escape(t.nav_payments));
    let _ = write!(
        m,
        "<form class=\"search panel\" method=\"get\" action=\"/console/payments\" role=\"search\" \
         aria-label=\"{}\">\
         <label>{}<input name=\"order_id\" value=\"{}\" autocomplete=\"off\"></label>\
         <label>{}<input name=\"terminal_id\" value=\"{}\" autocomplete=\"off\"></label>\
         <label>{}<select name=\"status\"><option value=\"\"{}>{}</option>",
        escape(t.search_label),
        escape(t.col_order),
        escape(&q.order_id),
        escape(t.col_terminal),
        escape(&q.terminal_id),
        escape(t.col_status),
        selected(q.status.is_empty()),
        escape(t.any_status),
    );
    for status in ["pending", "succeeded", "failed", "cancelled", "expired"] {
        let _ = write!(
            m,
            "<option value=\"{status}\"{}>{}</option>",
            selected(q.status == status),
            escape(t.payment_status(status))
        );
    }
    let _ = write!(
        m,
        "</select></label>\
         <label>{}<input type=\"date\" name=\"date\" value=\"{}\"></label>\
         <button type=\"submit\">{}</button></form>",
        escape(t.col_date),
        escape(&q.date),
        escape(t.search),
    );
    if let Some(problem) = view.problem {
        let message = match problem {
            QueryProblem::BadDate => t.bad_date,
            QueryProblem::BadStatus => t.bad_status,
        };
        let _ = write!(
            m,
            "<p class=\"notice error\" role=\"alert\">{}</p>",
            escape(message)
        );
    }

    if view.rows.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_payments));
    } else {
        table_head(
            &mut m,
            &[
                t.col_created,
                t.col_payment,
                t.col_merchant,
                t.col_order,
                t.col_terminal,
                t.col_wallet,
                t.col_method,
                t.col_status,
                t.col_amount,
                t.col_refunded,
            ],
        );
        for row in &view.rows {
            m.push_str("<tr>");
            cell(&mut m, t.col_created, &escape(&row.created));
            cell(
                &mut m,
                t.col_payment,
                &format!(
                    "<a href=\"/console/payments/{}\"><code>{}</code></a>",
                    escape(&segment(&row.id)),
                    escape(&row.id)
                ),
            );
            cell(&mut m, t.col_merchant, &code(&row.merchant_id));
            cell(&mut m, t.col_order, &optional(t, row.order_id.as_deref()));
            cell(
                &mut m,
                t.col_terminal,
                &optional(t, row.terminal_id.as_deref()),
            );
            cell(
                &mut m,
                t.col_wallet,
                &escape(&wallet(lang, t, &row.provider)),
            );
            cell(&mut m, t.col_method, &escape(t.method(&row.method)));
            cell(&mut m, t.col_status, &payment_badge(t, &row.status));
            num_cell(
                &mut m,
                t.col_amount,
                &money(lang, &row.amount, &row.currency),
            );
            num_cell(
                &mut m,
                t.col_refunded,
                &money(lang, &row.refunded, &row.currency),
            );
            m.push_str("</tr>");
        }
        table_foot(&mut m);
    }
    // Only a console path becomes a link (escaping alone would not stop `javascript:`).
    if let Some(next) = view.next.as_deref().filter(|n| is_console_payments_path(n)) {
        let _ = write!(
            m,
            "<p class=\"next\"><a href=\"{}\" rel=\"next\">{}</a></p>",
            escape(next),
            escape(t.older)
        );
    }
    framed(&view.frame, t.nav_payments, &m)
}

/// One payment: its details, metadata, refunds, the refund form and its events.
pub fn payment(view: &PaymentView<'_>) -> String {
    let lang = view.frame.lang;
    let t = texts(lang);
    let p = &view.payment;
    let s = &p.summary;
    let mut m = String::with_capacity(16 * 1024);
    let heading = fill(t.payment_heading, &s.id);
    let _ = write!(m, "<h1>{}</h1>", escape(&heading));
    if p.archived {
        let _ = write!(m, "<p class=\"notice warn\">{}</p>", escape(t.archived));
    }

    m.push_str("<dl class=\"details panel\">");
    detail(&mut m, t.col_status, &payment_badge(t, &s.status));
    detail(
        &mut m,
        t.col_amount,
        &escape(&money(lang, &s.amount, &s.currency)),
    );
    detail(
        &mut m,
        t.col_refunded,
        &escape(&money(lang, &s.refunded, &s.currency)),
    );
    detail(&mut m, t.col_wallet, &escape(&wallet(lang, t, &s.provider)));
    detail(&mut m, t.col_method, &escape(t.method(&s.method)));
    detail(&mut m, t.col_merchant, &code(&s.merchant_id));
    detail(&mut m, t.col_order, &optional(t, s.order_id.as_deref()));
    detail(
        &mut m,
        t.col_terminal,
        &optional(t, s.terminal_id.as_deref()),
    );
    detail(
        &mut m,
        t.col_description,
        &optional_text(t, p.description.as_deref()),
    );
    detail(
        &mut m,
        t.col_provider_reference,
        &optional(t, p.provider_reference.as_deref()),
    );
    detail(&mut m, t.col_created, &escape(&s.created));
    detail(&mut m, t.col_updated, &escape(&p.updated));
    if let Some(failure) = &p.failure {
        detail(&mut m, t.col_failure, &escape(failure));
    }
    m.push_str("</dl>");

    let _ = write!(m, "<h2>{}</h2>", escape(t.metadata));
    if p.metadata.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_metadata));
    } else {
        table_head(&mut m, &[t.col_key, t.col_value]);
        for (key, value) in &p.metadata {
            m.push_str("<tr>");
            cell(&mut m, t.col_key, &code(key));
            cell(&mut m, t.col_value, &escape(value));
            m.push_str("</tr>");
        }
        table_foot(&mut m);
    }

    let _ = write!(m, "<h2>{}</h2>", escape(t.refunds));
    if view.refunds.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_refunds));
    } else {
        table_head(
            &mut m,
            &[
                t.col_refund,
                t.col_created,
                t.col_amount,
                t.col_status,
                t.col_reason,
            ],
        );
        for refund in &view.refunds {
            m.push_str("<tr>");
            cell(&mut m, t.col_refund, &code(&refund.id));
            cell(&mut m, t.col_created, &escape(&refund.created));
            num_cell(
                &mut m,
                t.col_amount,
                &money(lang, &refund.amount, &s.currency),
            );
            cell(
                &mut m,
                t.col_status,
                &badge(
                    status_class(&refund.status),
                    t.refund_status(&refund.status),
                ),
            );
            cell(
                &mut m,
                t.col_reason,
                &optional_text(t, refund.reason.as_deref()),
            );
            m.push_str("</tr>");
        }
        table_foot(&mut m);
    }

    if let Some(form) = &view.refund_form {
        let code_label = match &form.code_above {
            Some(above) => fill(t.refund_code_above, &money(lang, above, &s.currency)),
            None => t.refund_code.to_owned(),
        };
        let _ = write!(
            m,
            "<h2>{}</h2><form class=\"panel narrow\" method=\"post\" \
             action=\"/console/payments/{}/refund\">{}\
             <input type=\"hidden\" name=\"idempotency_key\" value=\"{}\">\
             <label>{}<input name=\"amount\" inputmode=\"decimal\" value=\"{}\" \
             autocomplete=\"off\" required></label>\
             <label>{}<input name=\"reason\" value=\"{}\" autocomplete=\"off\"></label>\
             <label>{}{}</label>\
             <button type=\"submit\">{}</button></form>",
            escape(t.refund_heading),
            escape(&segment(&s.id)),
            csrf_field(view.frame.csrf),
            escape(&form.idempotency_key),
            escape(&fill(t.refund_amount, &s.currency)),
            escape(&form.amount),
            escape(t.refund_reason),
            escape(&form.reason),
            escape(&code_label),
            code_input(false),
            escape(t.refund_submit),
        );
    }

    let _ = write!(m, "<h2>{}</h2>", escape(t.events));
    if !view.events_complete {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.events_partial));
    }
    if view.events.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_events));
    } else {
        table_head(&mut m, &[t.col_time, t.col_event]);
        for event in &view.events {
            m.push_str("<tr>");
            cell(&mut m, t.col_time, &escape(&event.at));
            cell(&mut m, t.col_event, &code(&event.kind));
            m.push_str("</tr>");
        }
        table_foot(&mut m);
    }
    framed(&view.frame, &heading, &m)
}

/// Alerts (open ones first, as given) with an acknowledge button each, and the blocks in
/// force, which admins may lift.
pub fn alerts(view: &AlertsView<'_>) -> String {
    let t = texts(view.frame.lang);
    let csrf = csrf_field(view.frame.csrf);
    let mut m = String::with_capacity(16 * 1024);
    let _ = write!(m, "<h1>{}</h1>", escape(t.nav_alerts));
    if view.alerts.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_alerts));
    } else {
        table_head(
            &mut m,
            &[
                t.col_created,
                t.col_severity,
                t.col_rule,
                t.col_subject,
                t.col_summary,
                t.col_evidence,
                t.col_count,
                t.col_state,
                t.col_action,
            ],
        );
        for alert in &view.alerts {
            m.push_str(if alert.acknowledged {
                "<tr class=\"done\">"
            } else {
                "<tr>"
            });
            cell(&mut m, t.col_created, &escape(&alert.created));
            cell(
                &mut m,
                t.col_severity,
                &badge(severity_class(&alert.severity), t.severity(&alert.severity)),
            );
            cell(&mut m, t.col_rule, &escape(t.rule(&alert.rule)));
            cell(&mut m, t.col_subject, &escape(&subject(t, &alert.subject)));
            cell(&mut m, t.col_summary, &escape(&alert.summary));
            cell(&mut m, t.col_evidence, &code(&alert.evidence));
            num_cell(&mut m, t.col_count, &alert.count.to_string());
            let state = if alert.acknowledged {
                t.alert_acknowledged
            } else {
                t.alert_open
            };
            cell(&mut m, t.col_state, &escape(state));
            // Acknowledging is an admin's, as on the API.
            let action = if alert.acknowledged || !view.can_lift {
                String::new()
            } else {
                format!(
                    "<form method=\"post\" action=\"/console/alerts/{}/ack\">{csrf}\
                     <button type=\"submit\">{}</button></form>",
                    escape(&segment(&alert.id)),
                    escape(t.acknowledge)
                )
            };
            cell(&mut m, t.col_action, &action);
            m.push_str("</tr>");
        }
        table_foot(&mut m);
    }

    let _ = write!(m, "<h2>{}</h2>", escape(t.blocks));
    if view.blocks.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_blocks));
    } else {
        let mut headers = vec![t.col_subject, t.col_rule, t.col_until];
        if view.can_lift {
            headers.push(t.col_action);
        }
        table_head(&mut m, &headers);
        for block in &view.blocks {
            m.push_str("<tr>");
            cell(&mut m, t.col_subject, &escape(&subject(t, &block.subject)));
            cell(&mut m, t.col_rule, &escape(t.rule(&block.rule)));
            cell(&mut m, t.col_until, &escape(&block.until));
            if view.can_lift {
                cell(
                    &mut m,
                    t.col_action,
                    &format!(
                        "<form class=\"row-form\" method=\"post\" \
                         action=\"/console/blocks/{}/lift\">{csrf}<label>{}{}</label>\
                         <button type=\"submit\">{}</button></form>",
                        escape(&segment(&block.id)),
                        escape(t.lift_code),
                        code_input(false),
                        escape(t.lift)
                    ),
                );
            }
            m.push_str("</tr>");
        }
        table_foot(&mut m);
    }
    framed(&view.frame, t.nav_alerts, &m)
}

/// Merchants: each with its applications to wallets and its settlement bank accounts.
pub fn merchants(view: &MerchantsView<'_>) -> String {
    let lang = view.frame.lang;
    let t = texts(lang);
    let mut m = String::with_capacity(16 * 1024);
    let _ = write!(m, "<h1>{}</h1>", escape(t.nav_merchants));
    if view.merchants.is_empty() {
        let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_merchants));
    }
    for merchant in &view.merchants {
        let _ = write!(
            m,
            "<section><h2>{}</h2><dl class=\"details\">",
            escape(&merchant.name)
        );
        detail(&mut m, t.col_merchant_id, &code(&merchant.id));
        detail(
            &mut m,
            t.col_status,
            &badge(
                status_class(&merchant.status),
                t.merchant_status(&merchant.status),
            ),
        );
        m.push_str("</dl>");

        let _ = write!(m, "<h3>{}</h3>", escape(t.activations));
        if merchant.activations.is_empty() {
            let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_activations));
        } else {
            table_head(
                &mut m,
                &[t.col_wallet, t.col_status, t.col_next_step, t.col_rejection],
            );
            for a in &merchant.activations {
                m.push_str("<tr>");
                cell(
                    &mut m,
                    t.col_wallet,
                    &escape(&lang.wallet_name(&a.provider)),
                );
                cell(
                    &mut m,
                    t.col_status,
                    &badge(status_class(&a.status), t.activation_status(&a.status)),
                );
                let step = a.next_step.as_deref().map(|s| t.next_step(s));
                let mut step_html = optional_text(t, step);
                if let Some(url) = a
                    .next_step_url
                    .as_deref()
                    .filter(|u| u.starts_with("https://"))
                {
                    let _ = write!(
                        step_html,
                        " <a href=\"{}\" rel=\"noopener noreferrer\">{}</a>",
                        escape(url),
                        escape(t.next_step_open)
                    );
                }
                cell(&mut m, t.col_next_step, &step_html);
                cell(
                    &mut m,
                    t.col_rejection,
                    &optional_text(t, a.rejection_reason.as_deref()),
                );
                m.push_str("</tr>");
            }
            table_foot(&mut m);
        }

        let _ = write!(m, "<h3>{}</h3>", escape(t.accounts));
        if merchant.accounts.is_empty() {
            let _ = write!(m, "<p class=\"muted\">{}</p>", escape(t.no_accounts));
        } else {
            table_head(
                &mut m,
                &[
                    t.col_wallet,
                    t.col_bank,
                    t.col_account,
                    t.col_status,
                    t.col_default,
                ],
            );
            for a in &merchant.accounts {
                m.push_str("<tr>");
                cell(
                    &mut m,
                    t.col_wallet,
                    &escape(&lang.wallet_name(&a.provider)),
                );
                cell(&mut m, t.col_bank, &escape(&a.bank_name));
                // The view may already carry the dots; they are shown once.
                let digits = a.last4.trim_start_matches(['\u{2022}', ' ']);
                cell(
                    &mut m,
                    t.col_account,
                    &escape(&fill(t.account_last4, digits)),
                );
                cell(
                    &mut m,
                    t.col_status,
                    &badge(status_class(&a.status), t.account_status(&a.status)),
                );
                let mark = if a.is_default { t.default_mark } else { "" };
                cell(&mut m, t.col_default, &escape(mark));
                m.push_str("</tr>");
            }
            table_foot(&mut m);
        }
        m.push_str("</section>");
    }
    framed(&view.frame, t.nav_merchants, &m)
}

/// A page that could not be shown: not found, or not allowed.
pub fn problem(frame: &Frame<'_>, problem: Problem) -> String {
    let t = texts(frame.lang);
    let (heading, note) = match problem {
        Problem::NotFound => (t.not_found, t.not_found_note),
        Problem::Forbidden => (t.forbidden, t.forbidden_note),
    };
    let main = format!("<h1>{}</h1><p>{}</p>", escape(heading), escape(note));
    framed(frame, heading, &main)
}

/// The whole document around `body`.
fn document(lang: Lang, nonce: &str, title: &str, body: &str) -> String {
    let mut out = String::with_capacity(STYLE.len() + body.len() + 512);
    let _ = writeln!(
        out,
        "<!doctype html><html lang=\"{}\"><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <title>{}</title><style nonce=\"{}\">{STYLE}</style></head><body>{body}</body></html>",
        escape(texts(lang).html_lang),
        escape(title),
        escape(nonce),
    );
    out
}

/// A page after log-in: the header (who is signed in, log-out, the language switch), the
/// navigation, the notice, then `main`.
fn framed(frame: &Frame<'_>, page_name: &str, main: &str) -> String {
    let t = texts(frame.lang);
    let mut body = String::with_capacity(main.len() + 2048);
    let _ = write!(
        body,
        "<header><div class=\"bar\"><span class=\"brand\">{}</span><span class=\"who\">{}</span>\
         <form class=\"logout\" method=\"post\" action=\"/console/logout\">{}\
         <button type=\"submit\">{}</button></form>",
        escape(t.console),
        escape(&fill_all(t.signed_in, &[frame.key_id, t.role(frame.role)])),
        csrf_field(frame.csrf),
        escape(t.log_out),
    );
    language_switch(&mut body, frame.lang, &query_value(frame.path));
    let _ = write!(
        body,
        "</div><nav aria-label=\"{}\"><ul>",
        escape(t.nav_label)
    );
    for (section, href, name) in [
        (Section::Today, "/console", t.nav_today),
        (Section::Payments, "/console/payments", t.nav_payments),
        (Section::Alerts, "/console/alerts", t.nav_alerts),
        (Section::Merchants, "/console/merchants", t.nav_merchants),
    ] {
        let current = if section == frame.section {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<li><a href=\"{href}\"{current}>{}</a></li>",
            escape(name)
        );
    }
    body.push_str("</ul></nav></header><main>");
    if let Some(notice) = &frame.notice {
        notice_line(&mut body, t, notice);
    }
    body.push_str(main);
    body.push_str("</main>");
    document(
        frame.lang,
        frame.nonce,
        &fill_all(t.title, &[page_name, t.console]),
        &body,
    )
}

/// What an alert or block is about, in the page's words (`terminal t_1, merchant m_1`).
fn subject(t: &Texts, parts: &[SubjectPart]) -> String {
    let words: Vec<String> = parts
        .iter()
        .map(|p| {
            let template = match p.kind {
                "terminal" => t.subject_terminal,
                "merchant" => t.subject_merchant,
                "api_key" => t.subject_api_key,
                "payer" => t.subject_payer,
                "provider" => t.subject_provider,
                _ => "{}",
            };
            fill(template, &p.value)
        })
        .collect();
    words.join(", ")
}

/// The line after an action: `role="status"` for news, `role="alert"` for a problem.
fn notice_line(out: &mut String, t: &Texts, notice: &Notice) {
    let (role, class, message) = match notice {
        Notice::RefundCreated { refund_id, status } => (
            "status",
            "ok",
            fill_all(
                t.notice_refund_created,
                &[refund_id.as_str(), t.refund_status(status)],
            ),
        ),
        Notice::AlertAcknowledged => ("status", "ok", t.notice_alert_acknowledged.to_owned()),
        Notice::BlockLifted => ("status", "ok", t.notice_block_lifted.to_owned()),
        Notice::CodeRequired => ("alert", "error", t.notice_code_required.to_owned()),
        Notice::CodeInvalid => ("alert", "error", t.notice_code_invalid.to_owned()),
        Notice::FormExpired => ("alert", "error", t.notice_form_expired.to_owned()),
        Notice::Failed(message) => ("alert", "error", fill(t.notice_failed, message)),
        Notice::AdminOnly => ("alert", "error", t.notice_admin_only.to_owned()),
        Notice::Gone => ("alert", "error", t.notice_gone.to_owned()),
        Notice::NotRefundable => ("alert", "error", t.notice_not_refundable.to_owned()),
        Notice::TooManyCodes { retry_after_s } => (
            "alert",
            "error",
            fill(t.notice_too_many_codes, &retry_after_s.to_string()),
        ),
    };
    let _ = write!(
        out,
        "<p class=\"notice {class}\" role=\"{role}\">{}</p>",
        escape(&message)
    );
}

/// The link to this page in the other language; `back` is already a query value.
fn language_switch(out: &mut String, lang: Lang, back: &str) {
    let other = lang.other();
    let their = texts(other);
    let _ = write!(
        out,
        "<a class=\"lang\" href=\"/console/lang/{}?back={}\" hreflang=\"{l}\" lang=\"{l}\">{}</a>",
        escape(other.param()),
        escape(back),
        escape(their.language_name),
        l = escape(their.html_lang),
    );
}

/// 30 days of takings as stacked bars, one colour per wallet, scaled to the largest day.
fn chart_section(out: &mut String, lang: Lang, chart: &Chart) {
    let t = texts(lang);
    let days = chart.days.len();
    if days == 0 {
        return;
    }
    // Negative figures (none expected) draw nothing rather than a bar below the axis.
    let minor =
        |series: &Series, day: usize| -> i64 { series.minor.get(day).copied().unwrap_or(0).max(0) };
    let totals: Vec<i64> = (0..days)
        .map(|day| {
            chart
                .series
                .iter()
                .fold(0i64, |sum, s| sum.saturating_add(minor(s, day)))
        })
        .collect();
    let largest = totals.iter().copied().max().unwrap_or(0);
    let largest_text = money(lang, &minor_amount(largest, chart.scale), &chart.currency);
    let classes = colour_classes(chart);

    let _ = write!(
        out,
        "<section class=\"chart panel\"><h2>{}</h2><p class=\"axis\">{}</p>\
         <svg viewBox=\"0 0 {CHART_W} {CHART_H}\" width=\"100%\" \
         role=\"img\" aria-label=\"{}\">\
         <line x1=\"0\" y1=\"0.5\" x2=\"{CHART_W}\" y2=\"0.5\"></line>\
         <line x1=\"0\" y1=\"{CHART_H}\" x2=\"{CHART_W}\" y2=\"{CHART_H}\"></line>",
        escape(&fill(t.chart_heading, &days.to_string())),
        escape(&fill(t.chart_max, &largest_text)),
        escape(&fill_all(
            t.chart_label,
            &[&days.to_string(), &largest_text]
        )),
    );
    let column = CHART_W / days as f64;
    let width = column * BAR_SHARE;
    for (day, name) in chart.days.iter().enumerate() {
        let x = day as f64 * column + (column - width) / 2.0;
        let mut base = CHART_H;
        let _ = write!(out, "<g data-day=\"{}\">", escape(name));
        for (series, class) in chart.series.iter().zip(&classes) {
            let value = minor(series, day);
            if value == 0 || largest == 0 {
                continue;
            }
            let height = value as f64 / largest as f64 * CHART_H;
            base -= height;
            let amount = money(lang, &minor_amount(value, chart.scale), &chart.currency);
            let title = fill_all(
                t.chart_bar,
                &[name, &lang.wallet_name(&series.provider), &amount],
            );
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x:.2}\" y=\"{base:.2}\" width=\"{width:.2}\" \
                 height=\"{height:.2}\"><title>{}</title></rect>",
                escape(&title)
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    let first = chart.days.first().map(String::as_str).unwrap_or_default();
    let last = chart.days.last().map(String::as_str).unwrap_or_default();
    let _ = write!(
        out,
        "<p class=\"days\"><span>{}</span><span>{}</span></p><ul class=\"legend\" aria-label=\"{}\">",
        escape(first),
        escape(last),
        escape(t.col_wallet),
    );
    for (series, class) in chart.series.iter().zip(&classes) {
        let _ = write!(
            out,
            "<li><span class=\"sw {class}\"></span>{}</li>",
            escape(&lang.wallet_name(&series.provider))
        );
    }
    out.push_str("</ul></section>");
}

/// Each series' colour class: the wallets' own colours, others from the palette in turn.
fn colour_classes(chart: &Chart) -> Vec<&'static str> {
    let mut others = 0;
    chart
        .series
        .iter()
        .map(|s| match s.provider.as_str() {
            "alipay" => "c-alipay",
            "wechatpay" => "c-wechatpay",
            "applepay" => "c-applepay",
            "mock" => "c-mock",
            _ => {
                others += 1;
                PALETTE[(others - 1) % PALETTE.len()]
            }
        })
        .collect()
}

fn table_head(out: &mut String, headers: &[&str]) {
    out.push_str("<div class=\"table\"><table><thead><tr>");
    for header in headers {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(header));
    }
    out.push_str("</tr></thead><tbody>");
}

fn table_foot(out: &mut String) {
    out.push_str("</tbody></table></div>");
}

/// A cell of already-escaped `html`, named by its column for the stacked (phone) layout.
fn cell(out: &mut String, label: &str, html: &str) {
    let _ = write!(out, "<td data-label=\"{}\">{html}</td>", escape(label));
}

/// A cell of a number or amount (plain text, escaped here).
fn num_cell(out: &mut String, label: &str, text: &str) {
    let _ = write!(
        out,
        "<td class=\"num\" data-label=\"{}\">{}</td>",
        escape(label),
        escape(text)
    );
}

/// One name and value of a details list; `html` is already escaped.
fn detail(out: &mut String, label: &str, html: &str) {
    let _ = write!(out, "<div><dt>{}</dt><dd>{html}</dd></div>", escape(label));
}

/// An id or other machine text, escaped, in `<code>`.
fn code(text: &str) -> String {
    format!("<code>{}</code>", escape(text))
}

/// An optional id: in `<code>`, or the catalogue's "none".
fn optional(t: &Texts, value: Option<&str>) -> String {
    match value.filter(|v| !v.is_empty()) {
        Some(value) => code(value),
        None => escape(t.none),
    }
}

/// Optional prose: escaped, or the catalogue's "none".
fn optional_text(t: &Texts, value: Option<&str>) -> String {
    escape(value.filter(|v| !v.is_empty()).unwrap_or(t.none))
}

/// A payment's wallet by name, or "not chosen yet" for a link payment without one.
fn wallet(lang: Lang, t: &Texts, provider: &str) -> String {
    if provider.is_empty() {
        t.wallet_not_chosen.to_owned()
    } else {
        lang.wallet_name(provider)
    }
}

fn badge(class: &'static str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

fn payment_badge(t: &Texts, status: &str) -> String {
    badge(status_class(status), t.payment_status(status))
}

/// A fixed class for the statuses that have a colour (never the value itself).
fn status_class(status: &str) -> &'static str {
    match status {
        "succeeded" => "s-succeeded",
        "active" => "s-active",
        "verified" => "s-verified",
        "failed" => "s-failed",
        "rejected" => "s-rejected",
        "pending" | "submitted" | "under_review" | "pending_verification" | "onboarding" => {
            "s-pending"
        }
        _ => "s-other",
    }
}

fn severity_class(severity: &str) -> &'static str {
    match severity {
        "critical" => "sev-critical",
        "warning" => "sev-warning",
        _ => "sev-info",
    }
}

fn selected(yes: bool) -> &'static str {
    if yes { " selected" } else { "" }
}

/// The hidden field every form posts back.
fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

/// The authenticator code's field.
fn code_input(required: bool) -> &'static str {
    if required {
        "<input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
         pattern=\"[0-9]{6}\" maxlength=\"6\" required>"
    } else {
        "<input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
         pattern=\"[0-9]{6}\" maxlength=\"6\">"
    }
}

/// Whether `next` is a console payments path (never another site or scheme).
fn is_console_payments_path(next: &str) -> bool {
    next == "/console/payments"
        || next.starts_with("/console/payments?")
        || next.starts_with("/console/payments/")
}

/// A URL query value (`application/x-www-form-urlencoded`).
fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::console::view::{
        AccountRow, ActivationRow, AlertRow, BlockRow, DayFigures, EventRow, MerchantRow,
        PaymentDetail, PaymentQuery, PaymentRow, RefundForm, RefundRow, Takings, Totals,
    };

    fn frame(lang: Lang, section: Section) -> Frame<'static> {
        Frame {
            lang,
            nonce: "n0nce",
            csrf: "tok3n",
            key_id: "key_admin",
            role: "admin",
            section,
            path: "/console/payments?status=failed&date=2026-12-07",
            notice: None,
        }
    }

    fn chart(days: usize, series: Vec<Series>) -> Chart {
        Chart {
            currency: "CNY".into(),
            scale: 2,
            days: (1..=days).map(|d| format!("2026-11-{d:02}")).collect(),
            series,
        }
    }

    fn series(provider: &str, minor: &[i64]) -> Series {
        Series {
            provider: provider.into(),
            minor: minor.to_vec(),
        }
    }

    fn today_view(lang: Lang) -> TodayView<'static> {
        TodayView {
            frame: frame(lang, Section::Today),
            day: DayFigures {
                date: "2026-12-07".into(),
                takings: vec![
                    Takings {
                        provider: "alipay".into(),
                        currency: "CNY".into(),
                        count: 3,
                        amount: "36.00".into(),
                    },
                    Takings {
                        provider: "wechatpay".into(),
                        currency: "CNY".into(),
                        count: 1,
                        amount: "8.50".into(),
                    },
                ],
                refunds: vec![Totals {
                    currency: "CNY".into(),
                    count: 1,
                    amount: "2.00".into(),
                }],
                unpaid: 2,
                open_alerts: 1,
                chart: Some(chart(
                    3,
                    vec![
                        series("alipay", &[1000, 2000, 0]),
                        series("wechatpay", &[500, 1000, 1250]),
                        series("toypay", &[0, 0, 100]),
                    ],
                )),
                partial: true,
            },
        }
    }

    fn payment_row(id: &str, order_id: &str) -> PaymentRow {
        PaymentRow {
            id: id.into(),
            created: "2026-12-07 10:32".into(),
            merchant_id: "m_1".into(),
            order_id: Some(order_id.into()),
            terminal_id: Some("t_1".into()),
            provider: "alipay".into(),
            method: "qr".into(),
            status: "succeeded".into(),
            amount: "12.50".into(),
            currency: "CNY".into(),
            refunded: "0.00".into(),
        }
    }

    fn payments_view(lang: Lang) -> PaymentsView<'static> {
        PaymentsView {
            frame: frame(lang, Section::Payments),
            query: PaymentQuery {
                status: "failed".into(),
                ..PaymentQuery::default()
            },
            problem: None,
            rows: vec![payment_row("pay_1", "A-1")],
            next: Some("/console/payments?before=pay_1&status=failed".into()),
        }
    }

    fn payment_view(lang: Lang) -> PaymentView<'static> {
        PaymentView {
            frame: frame(lang, Section::Payments),
            payment: PaymentDetail {
                summary: PaymentRow {
                    id: "pay_1".into(),
                    created: "2026-12-07 10:32".into(),
                    merchant_id: "m_1".into(),
                    order_id: Some("A-1".into()),
                    terminal_id: None,
                    provider: "alipay".into(),
                    method: "qr".into(),
                    status: "succeeded".into(),
                    amount: "12.50".into(),
                    currency: "CNY".into(),
                    refunded: "2.00".into(),
                },
                description: Some("2 cups".into()),
                updated: "2026-12-07 10:33".into(),
                provider_reference: Some("2026120722001".into()),
                failure: None,
                metadata: vec![("table".into(), "7".into())],
                archived: false,
            },
            refunds: vec![RefundRow {
                id: "re_1".into(),
                created: "2026-12-07 11:00".into(),
                amount: "2.00".into(),
                status: "succeeded".into(),
                reason: Some("cold tea".into()),
            }],
            events_complete: true,
            events: vec![EventRow {
                at: "2026-12-07 10:33".into(),
                kind: "payment.succeeded".into(),
            }],
            refund_form: Some(RefundForm {
                idempotency_key: "idem_1".into(),
                amount: "10.50".into(),
                reason: String::new(),
                code_above: Some("100.00".into()),
            }),
        }
    }

    fn alerts_view(lang: Lang) -> AlertsView<'static> {
        let alert = |id: &str, acknowledged: bool| AlertRow {
            id: id.into(),
            created: "2026-12-07 09:00".into(),
            rule: "refund_ratio".into(),
            severity: "warning".into(),
            subject: vec![
                SubjectPart {
                    kind: "terminal",
                    value: "t_1".into(),
                },
                SubjectPart {
                    kind: "merchant",
                    value: "m_1".into(),
                },
            ],
            summary: "Many refunds".into(),
            evidence: r#"{"ratio":0.5}"#.into(),
            count: 2,
            acknowledged,
        };
        AlertsView {
            frame: frame(lang, Section::Alerts),
            alerts: vec![alert("al_1", false), alert("al_2", true)],
            blocks: vec![BlockRow {
                id: "bl_1".into(),
                subject: vec![SubjectPart {
                    kind: "api_key",
                    value: "key_pos".into(),
                }],
                rule: "credential_abuse".into(),
                until: "2026-12-07 12:00".into(),
            }],
            can_lift: true,
        }
    }

    fn merchants_view(lang: Lang) -> MerchantsView<'static> {
        MerchantsView {
            frame: frame(lang, Section::Merchants),
            merchants: vec![MerchantRow {
                id: "m_1".into(),
                name: "Tea House".into(),
                status: "active".into(),
                activations: vec![ActivationRow {
                    provider: "wechatpay".into(),
                    status: "under_review".into(),
                    next_step: Some("sign_agreement".into()),
                    next_step_url: Some("https://pay.weixin.qq.com/sign?a=1&b=\"2\"".into()),
                    rejection_reason: None,
                }],
                accounts: vec![AccountRow {
                    provider: "alipay".into(),
                    bank_name: "ICBC".into(),
                    last4: "1234".into(),
                    status: "verified".into(),
                    is_default: true,
                }],
            }],
        }
    }

    fn login_view(lang: Lang) -> LoginView<'static> {
        LoginView {
            lang,
            nonce: "n0nce",
            csrf: "tok3n",
            problem: Some(LoginProblem::TooMany { retry_after_s: 60 }),
        }
    }

    fn every_page(lang: Lang) -> Vec<String> {
        let mut with_notice = frame(lang, Section::Payments);
        with_notice.notice = Some(Notice::CodeInvalid);
        vec![
            login(&login_view(lang)),
            today(&today_view(lang)),
            payments(&payments_view(lang)),
            payment(&payment_view(lang)),
            alerts(&alerts_view(lang)),
            merchants(&merchants_view(lang)),
            problem(&with_notice, Problem::NotFound),
        ]
    }

    /// The heights of each day's bar segments, in the order drawn.
    fn stacks(page: &str) -> Vec<Vec<f64>> {
        page.split("<g data-day=")
            .skip(1)
            .map(|group| {
                let group = group.split("</g>").next().unwrap();
                group
                    .split("height=\"")
                    .skip(1)
                    .map(|h| h.split('"').next().unwrap().parse().unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn escape_covers_html_specials() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(segment("pay/1\"x y_-Z"), "pay%2F1%22x%20y_-Z");
    }

    #[test]
    fn every_shown_value_is_escaped() {
        let evil = |what: &str| format!("<i>{what}</i>\"'");
        let escaped = |what: &str| format!("&lt;i&gt;{what}&lt;/i&gt;&quot;&#39;");

        let mut v = payments_view(Lang::En);
        v.rows[0].order_id = Some(evil("order"));
        v.rows[0].merchant_id = evil("merchant-id");
        v.query.order_id = evil("query");
        let mut pages = vec![(payments(&v), vec!["order", "merchant-id", "query"])];

        let mut v = payment_view(Lang::En);
        v.payment.summary.order_id = Some(evil("order"));
        v.payment.description = Some(evil("description"));
        v.payment.metadata = vec![(evil("meta-key"), evil("meta-value"))];
        v.refunds[0].reason = Some(evil("reason"));
        v.frame.notice = Some(Notice::Failed(evil("failed")));
        v.refund_form.as_mut().unwrap().reason = evil("form-reason");
        pages.push((
            payment(&v),
            vec![
                "order",
                "description",
                "meta-key",
                "meta-value",
                "reason",
                "failed",
                "form-reason",
            ],
        ));

        let mut v = merchants_view(Lang::ZhHans);
        v.merchants[0].name = evil("merchant");
        v.merchants[0].accounts[0].bank_name = evil("bank");
        pages.push((merchants(&v), vec!["merchant", "bank"]));

        let mut v = alerts_view(Lang::En);
        v.alerts[0].summary = evil("summary");
        v.alerts[0].evidence = evil("evidence");
        v.alerts[0].subject[0].value = evil("subject");
        v.blocks[0].subject[0].value = evil("block");
        v.frame.key_id = "<i>key</i>\"'";
        pages.push((
            alerts(&v),
            vec!["summary", "evidence", "subject", "block", "key"],
        ));

        for (page, fields) in pages {
            assert!(!page.contains("<i>"), "a tag got through: {page}");
            for field in fields {
                assert!(page.contains(&escaped(field)), "{field} not shown escaped");
            }
        }
    }

    #[test]
    fn every_form_that_posts_carries_the_csrf_token() {
        for lang in [Lang::En, Lang::ZhHans] {
            for page in every_page(lang) {
                let posts = page.matches("<form").count() - page.matches("method=\"get\"").count();
                assert!(posts > 0);
                assert_eq!(
                    page.matches("method=\"post\"").count(),
                    posts,
                    "every form but the search posts"
                );
                assert_eq!(
                    page.matches("<input type=\"hidden\" name=\"csrf\" value=\"tok3n\">")
                        .count(),
                    posts
                );
            }
        }
        // The acknowledge button only on the open alert; lift only for admins.
        let page = alerts(&alerts_view(Lang::En));
        assert!(page.contains("action=\"/console/alerts/al_1/ack\""));
        assert!(!page.contains("/console/alerts/al_2/ack"));
        assert!(page.contains("action=\"/console/blocks/bl_1/lift\""));
        let mut v = alerts_view(Lang::En);
        v.can_lift = false;
        assert!(!alerts(&v).contains("/lift"));
    }

    #[test]
    fn the_chinese_pages_speak_chinese() {
        let page = today(&today_view(Lang::ZhHans));
        assert!(page.contains("<html lang=\"zh-CN\">"));
        assert!(page.contains("支付宝") && page.contains("微信支付"));
        assert!(page.contains("¥36.00") && page.contains("今日（2026-12-07）"));
        assert!(page.contains(">收款</a>") && page.contains(">告警</a>"));
        assert!(page.contains("退出登录"));
        for page in every_page(Lang::ZhHans) {
            for english in [
                ">Today<",
                ">Payments<",
                ">Alerts<",
                ">Merchants<",
                "Log out",
                "Sign in",
                "Refund",
                "CNY<",
            ] {
                assert!(!page.contains(english), "{english} on a Chinese page");
            }
            assert!(page.contains(">English</a>"));
        }
        let page = payments(&payments_view(Lang::ZhHans));
        assert!(page.contains("<option value=\"failed\" selected>支付失败</option>"));
        assert!(page.contains(">更早</a>"));
    }

    #[test]
    fn navigation_marks_the_page_and_switches_language_coming_back() {
        let page = payments(&payments_view(Lang::En));
        assert!(page.contains("<a href=\"/console/payments\" aria-current=\"page\">Payments</a>"));
        assert_eq!(page.matches("aria-current=\"page\"").count(), 1);
        let nav = [
            "/console\"",
            "/console/payments\"",
            "/console/alerts\"",
            "/console/merchants\"",
        ]
        .map(|href| page.find(&format!("<a href=\"{href}")).unwrap());
        assert!(nav.is_sorted());
        assert!(page.contains(
            "href=\"/console/lang/zh-CN?back=%2Fconsole%2Fpayments%3Fstatus%3Dfailed%26date%3D2026-12-07\" \
             hreflang=\"zh-CN\" lang=\"zh-CN\">简体中文</a>"
        ));
        assert!(page.contains("Signed in as key_admin (administrator)"));
        assert!(page.contains("action=\"/console/logout\""));
        let page = login(&login_view(Lang::ZhHans));
        assert!(page.contains("href=\"/console/lang/en?back=/console/login\""));
    }

    #[test]
    fn the_chart_scales_bars_to_the_largest_day_and_titles_them() {
        let page = today(&today_view(Lang::ZhHans));
        let heights = stacks(&page);
        assert_eq!(heights.len(), 3);
        let total = |day: usize| heights[day].iter().sum::<f64>();
        // Day 2 (30.00) takes twice day 1's height (15.00), and the whole height.
        assert!((total(1) - 2.0 * total(0)).abs() < 0.05, "{heights:?}");
        assert!((total(1) - CHART_H).abs() < 0.05);
        assert!(total(2) < total(0));
        assert!(page.contains("<title>2026-11-02 · 支付宝：¥20.00</title>"));
        assert!(page.contains("<title>2026-11-03 · 微信支付：¥12.50</title>"));
        assert!(page.contains("单日最高：¥30.00"));
        assert!(page.contains("role=\"img\" aria-label=\""));
        assert!(page.contains("viewBox=\"0 0 600 160\" width=\"100%\""));
        // The wallets' colours, another wallet from the palette, all in the legend.
        assert!(page.contains("<rect class=\"c-alipay\""));
        assert!(page.contains("<rect class=\"p0\""));
        assert!(page.contains("<span class=\"sw c-wechatpay\"></span>微信支付"));
        assert!(page.contains(".c-alipay{fill:#1677ff"));

        let mut v = today_view(Lang::En);
        v.day.chart = Some(chart(2, vec![series("alipay", &[5, 0])]));
        let page = today(&v);
        assert!(page.contains("<title>2026-11-01 · Alipay: 0.05 CNY</title>"));
        assert_eq!(stacks(&page), vec![vec![CHART_H], vec![]]);
        v.day.chart = None;
        assert!(!today(&v).contains("<svg"));
    }

    #[test]
    fn pages_have_no_script_no_inline_style_and_one_nonced_style() {
        for lang in [Lang::En, Lang::ZhHans] {
            for page in every_page(lang) {
                assert!(page.starts_with("<!doctype html>"));
                assert!(page.contains(
                    "<meta name=viewport content=\"width=device-width, initial-scale=1\">"
                ));
                assert!(!page.contains("<script"));
                assert!(!page.contains(" style="));
                assert!(!page.contains("<img") && !page.contains("<link"));
                assert!(!page.contains("src=") && !page.contains("url("));
                assert_eq!(page.matches("<style").count(), 1);
                assert_eq!(page.matches("<style nonce=\"n0nce\">").count(), 1);
            }
        }
    }

    #[test]
    fn ids_are_percent_encoded_in_links_and_actions() {
        let id = "pay/1\"x";
        let mut v = payments_view(Lang::En);
        v.rows = vec![payment_row(id, "A-1")];
        let page = payments(&v);
        assert!(page.contains("<a href=\"/console/payments/pay%2F1%22x\">"));
        assert!(page.contains("<code>pay/1&quot;x</code>"));

        let mut v = payment_view(Lang::En);
        v.payment.summary.id = id.into();
        assert!(payment(&v).contains("action=\"/console/payments/pay%2F1%22x/refund\""));

        let mut v = alerts_view(Lang::En);
        v.alerts[0].id = "al/1\"".into();
        v.blocks[0].id = "bl/1\"".into();
        let page = alerts(&v);
        assert!(page.contains("action=\"/console/alerts/al%2F1%22/ack\""));
        assert!(page.contains("action=\"/console/blocks/bl%2F1%22/lift\""));

        // The next page's link is escaped, and only ever a console path.
        let mut v = payments_view(Lang::En);
        assert!(payments(&v).contains(
            "<a href=\"/console/payments?before=pay_1&amp;status=failed\" rel=\"next\">Older</a>"
        ));
        v.next = Some("javascript:alert(1)".into());
        assert!(!payments(&v).contains("javascript:"));
    }

    #[test]
    fn the_status_select_keeps_the_chosen_status() {
        let mut v = payments_view(Lang::En);
        let page = payments(&v);
        assert_eq!(page.matches(" selected>").count(), 1);
        assert!(page.contains("<option value=\"failed\" selected>Failed</option>"));
        v.query.status = String::new();
        let page = payments(&v);
        assert_eq!(page.matches(" selected>").count(), 1);
        assert!(page.contains("<option value=\"\" selected>Any</option>"));
        v.query.date = "2026-12-07".into();
        v.problem = Some(QueryProblem::BadDate);
        let page = payments(&v);
        assert!(page.contains("type=\"date\" name=\"date\" value=\"2026-12-07\""));
        assert!(page.contains("role=\"alert\">The date must be"));
    }

    #[test]
    fn the_forms_ask_for_codes_the_way_phones_fill_them() {
        let code = "<input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
                    pattern=\"[0-9]{6}\" maxlength=\"6\"";
        let page = login(&login_view(Lang::En));
        assert!(page.contains("action=\"/console/login\""));
        assert!(
            page.contains(
                "<input type=\"password\" name=\"api_key\" autocomplete=\"off\" required>"
            )
        );
        assert!(page.contains(code));
        assert!(page.contains("role=\"alert\">Too many failed attempts. Try again in 60 seconds."));

        let page = payment(&payment_view(Lang::ZhHans));
        assert!(page.contains("<input type=\"hidden\" name=\"idempotency_key\" value=\"idem_1\">"));
        assert!(page.contains("name=\"amount\" inputmode=\"decimal\" value=\"10.50\""));
        assert!(page.contains("验证码（退款金额超过 ¥100.00 时必填）"));
        assert!(page.contains(code));
        let mut v = payment_view(Lang::En);
        v.refund_form = None;
        assert!(!payment(&v).contains("/refund\""));
    }

    #[test]
    fn notices_say_what_happened() {
        let mut v = payment_view(Lang::ZhHans);
        v.frame.notice = Some(Notice::RefundCreated {
            refund_id: "re_9".into(),
            status: "pending".into(),
        });
        assert!(
            payment(&v)
                .contains("<p class=\"notice ok\" role=\"status\">已提交退款 re_9：退款中。</p>")
        );
        v.frame.notice = Some(Notice::CodeRequired);
        assert!(payment(&v).contains("role=\"alert\">此操作需要"));
    }

    #[test]
    fn merchants_show_applications_and_masked_accounts() {
        let page = merchants(&merchants_view(Lang::ZhHans));
        assert!(page.contains("<h2>Tea House</h2>"));
        assert!(page.contains("审核中") && page.contains("签署协议"));
        assert!(page.contains(">•••• 1234</td>"));
        assert!(page.contains(">默认</td>"));
        // The step's link, escaped, and only an https one.
        assert!(page.contains(
            "<a href=\"https://pay.weixin.qq.com/sign?a=1&amp;b=&quot;2&quot;\" rel=\"noopener noreferrer\">前往办理</a>"
        ));
        let mut v = merchants_view(Lang::En);
        v.merchants[0].activations[0].next_step_url = Some("javascript:alert(1)".into());
        assert!(!merchants(&v).contains("javascript:"));
        v.merchants[0].accounts[0].last4 = "•••• 1234".into();
        assert!(merchants(&v).contains(">•••• 1234</td>"));
    }

    #[test]
    fn every_cell_is_labelled_for_the_stacked_phone_layout() {
        for page in every_page(Lang::En) {
            assert_eq!(
                page.matches("<td").count(),
                page.matches("<td data-label=\"").count()
                    + page.matches("<td class=\"num\" data-label=\"").count()
            );
        }
        assert!(STYLE.contains("@media (max-width:640px)"));
        assert!(STYLE.contains("td::before{content:attr(data-label)"));
        assert!(STYLE.contains("overflow-wrap:anywhere") && STYLE.contains("max-width:100%"));
    }
}
