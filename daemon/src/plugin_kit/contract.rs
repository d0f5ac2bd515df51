//! The world's contract, checked on what a call answered: each error class used as
//! `provider.wit` defines it, when the provider's last answer is taken away (a timeout, a
//! refused connection, a server error, an answer that is not the provider's), and no key
//! material in what the plugin logged or sent.

use serde_json::Value;

use super::cassette::{Answer, Body, Call, Exchange, Failure};

/// What the provider's last answer is replaced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// No answer in time: the request may have been acted on.
    Timeout,
    /// The connection failed before the request was sent.
    Connection,
    /// `500` with an empty JSON object.
    ServerError,
    /// `200` with a body that is not the provider's (an HTML error page).
    Garbage,
}

impl Mutation {
    pub const ALL: [Mutation; 4] = [
        Mutation::Timeout,
        Mutation::Connection,
        Mutation::ServerError,
        Mutation::Garbage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutation::Timeout => "timeout",
            Mutation::Connection => "connection refused",
            Mutation::ServerError => "HTTP 500",
            Mutation::Garbage => "garbage answer",
        }
    }

    /// The recorded exchanges with the last answer replaced.
    pub fn apply(self, exchanges: &[Exchange]) -> Vec<Exchange> {
        let mut mutated = exchanges.to_vec();
        if let Some(last) = mutated.last_mut() {
            last.answer = match self {
                Mutation::Timeout => Answer::Failure {
                    failure: Failure::Timeout,
                    message: String::new(),
                },
                Mutation::Connection => Answer::Failure {
                    failure: Failure::Connection,
                    message: "connection refused (the plugin kit)".into(),
                },
                Mutation::ServerError => Answer::Response {
                    status: 500,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Body::Text("{}".into()),
                },
                Mutation::Garbage => Answer::Response {
                    status: 200,
                    headers: vec![("content-type".into(), "text/html".into())],
                    body: Body::Text("<html><body>502 Bad Gateway</body></html>".into()),
                },
            };
        }
        mutated
    }
}

/// The error class of a result (`{"Err": {"UnknownOutcome": ...}}` → `unknown-outcome`), or
/// `ok:{status}` for a result.
pub fn class(result: &Value) -> String {
    if let Some(ok) = result.get("Ok") {
        return format!(
            "ok:{}",
            ok.get("status")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_ascii_lowercase()
        );
    }
    match result
        .get("Err")
        .and_then(Value::as_object)
        .and_then(|e| e.keys().next())
    {
        Some(kind) => match kind.as_str() {
            "Declined" => "declined",
            "InvalidRequest" => "invalid-request",
            "Unavailable" => "unavailable",
            "UnknownOutcome" => "unknown-outcome",
            _ => "?",
        }
        .to_owned(),
        None => "?".into(),
    }
}

/// Whether `class` is what `call` may answer when its last answer was taken away by
/// `mutation` (`read`: that last request was a `GET`, which changes nothing); the rule
/// broken otherwise.
///
/// - A call that may move money or change the provider's state (create, cancel, refund,
///   onboard, bind) must not answer as if nothing happened, nor as final, when its last
///   request may have been acted on (a timeout, 500 or garbage after anything but a `GET`):
///   `unknown-outcome` (the gateway queries), or `pending`. A refused connection sent
///   nothing, and a `GET` changed nothing: `unavailable` is right then too.
/// - A query that got no usable answer knows nothing: `unavailable` (ask again).
pub fn allowed(call: &Call, mutation: Mutation, read: bool, class: &str) -> Result<(), String> {
    let acted_on = mutation != Mutation::Connection && !read;
    let ok = if call.has_effect() {
        matches!(class, "unknown-outcome" | "ok:pending") || (!acted_on && class == "unavailable")
    } else {
        class == "unavailable"
    };
    if ok {
        return Ok(());
    }
    let expected = match (call.has_effect(), acted_on) {
        (true, true) => "unknown-outcome (or pending): the request may have been acted on",
        (true, false) => "unavailable or unknown-outcome: nothing was done",
        (false, _) => "unavailable: the query learnt nothing",
    };
    Err(format!(
        "{} on the last request: answered {class}, the contract says {expected}",
        mutation.name()
    ))
}

/// Fragments of a key's text that must never appear in logs or requests: a short secret
/// whole; of a longer one (PEM, base64) a few 24-character windows of its body.
pub fn fragments(key_text: &str) -> Vec<String> {
    let body: String = key_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let body = body.trim();
    if body.len() < 8 {
        return Vec::new();
    }
    if body.len() <= 64 {
        return vec![body.to_owned()];
    }
    let chars: Vec<char> = body.chars().collect();
    [chars.len() / 4, chars.len() / 2, chars.len() * 3 / 4]
        .iter()
        .map(|&at| chars[at..(at + 24).min(chars.len())].iter().collect())
        .collect()
}

/// Where a key fragment shows: a log line or a request.
pub fn leak(fragments: &[(String, String)], heard: &[String], sent: &[Exchange]) -> Option<String> {
    for (key, fragment) in fragments {
        if heard.iter().any(|line| line.contains(fragment.as_str())) {
            return Some(format!("key `{key}` appears in the plugin's log"));
        }
        for (n, exchange) in sent.iter().enumerate() {
            let r = &exchange.request;
            let body = r.body.bytes().unwrap_or_default();
            let in_body = body
                .windows(fragment.len())
                .any(|w| w == fragment.as_bytes());
            if r.url.contains(fragment.as_str())
                || r.headers.iter().any(|(_, v)| v.contains(fragment.as_str()))
                || in_body
            {
                return Some(format!("key `{key}` appears in request {}", n + 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_are_classed() {
        assert_eq!(class(&json!({"Ok": {"status": "Pending"}})), "ok:pending");
        assert_eq!(
            class(&json!({"Err": {"UnknownOutcome": "x"}})),
            "unknown-outcome"
        );
        assert_eq!(
            class(&json!({"Err": {"Declined": {"code": "c"}}})),
            "declined"
        );
        assert_eq!(class(&json!(null)), "?");
    }

    fn call(operation: &str) -> Call {
        let money = json!({"minor": 100, "currency": "CNY", "exponent": 2});
        let merchant = json!({"id": "m", "settings_json": "{}", "notify_url": ""});
        let payment =
            json!({"payment_id": "p", "provider": "x", "merchant": merchant, "amount": money});
        let request = match operation {
            "create-payment" => json!({"payment_id": "p", "provider": "x", "merchant": merchant,
                                       "amount": money, "method": "Qr"}),
            "refund" => json!({"refund_id": "r", "payment": payment, "amount": money}),
            _ => payment,
        };
        serde_json::from_value(json!({"operation": operation, "request": request})).unwrap()
    }

    #[test]
    fn the_classes_the_contract_allows() {
        for effect in ["create-payment", "cancel-payment", "refund"] {
            let c = call(effect);
            for m in [Mutation::Timeout, Mutation::ServerError, Mutation::Garbage] {
                assert!(allowed(&c, m, false, "unknown-outcome").is_ok());
                assert!(allowed(&c, m, false, "ok:pending").is_ok());
                for wrong in ["unavailable", "ok:succeeded", "declined", "invalid-request"] {
                    let broken = allowed(&c, m, false, wrong).unwrap_err();
                    assert!(broken.contains("may have been acted on"), "{broken}");
                }
            }
            assert!(allowed(&c, Mutation::Connection, false, "unavailable").is_ok());
            assert!(allowed(&c, Mutation::Connection, false, "ok:succeeded").is_err());
            // A GET changed nothing, whatever became of its answer.
            assert!(allowed(&c, Mutation::Timeout, true, "unavailable").is_ok());
            assert!(allowed(&c, Mutation::Timeout, true, "ok:succeeded").is_err());
        }
        let query = call("query-payment");
        for m in Mutation::ALL {
            assert!(allowed(&query, m, false, "unavailable").is_ok());
            assert!(allowed(&query, m, false, "unknown-outcome").is_err());
            assert!(allowed(&query, m, false, "ok:pending").is_err());
        }
    }

    #[test]
    fn key_fragments_in_logs_or_requests_are_leaks() {
        use super::super::cassette::{Answer, Body, Exchange, Failure, Request};
        let fragments = vec![("secret".to_owned(), "385524b687a9f00a".to_owned())];
        let exchange = |url: &str, body: &str| Exchange {
            request: Request {
                method: "POST".into(),
                url: url.into(),
                headers: vec![("X-Sig".into(), "t=1,v1=ab".into())],
                body: Body::Text(body.into()),
            },
            answer: Answer::Failure {
                failure: Failure::Timeout,
                message: String::new(),
            },
        };
        let clean = [exchange("https://p/pay", "{}")];
        assert_eq!(leak(&fragments, &["paid".into()], &clean), None);
        assert!(
            leak(&fragments, &["key 385524b687a9f00a".into()], &clean)
                .unwrap()
                .contains("log")
        );
        let sent = [exchange("https://p/pay", "{\"k\":\"385524b687a9f00a\"}")];
        assert!(leak(&fragments, &[], &sent).unwrap().contains("request 1"));
    }

    #[test]
    fn fragments_of_secrets_and_pems() {
        assert_eq!(
            fragments("385524b687a9f00adef7d52ff44a7b4d\n"),
            ["385524b687a9f00adef7d52ff44a7b4d"]
        );
        assert!(fragments("short").is_empty());
        let pem = format!(
            "-----BEGIN KEY-----\n{}\n{}\n-----END KEY-----\n",
            "A".repeat(64),
            "B".repeat(64)
        );
        let parts = fragments(&pem);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() == 24 && !p.contains('-')));
    }
}
