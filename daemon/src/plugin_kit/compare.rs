//! Where a request a plugin sent differs from the one a cassette recorded, named as precisely
//! as the request allows: the method, the URL's path or one query parameter, one header, or
//! one field of the body (a JSON pointer for JSON, a key for a form, a byte offset for the
//! rest).

use serde_json::Value;

use super::cassette::Request;

/// Longest value quoted in a difference.
const QUOTE_CHARS_MAX: usize = 120;

fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(QUOTE_CHARS_MAX).collect();
    if text.chars().count() > QUOTE_CHARS_MAX {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

fn differ(what: &str, recorded: &str, sent: &str) -> String {
    format!("{what}: recorded {}, sent {}", quote(recorded), quote(sent))
}

/// The first difference between `recorded` and `sent`, or `None` when they are the same.
pub fn difference(recorded: &Request, sent: &Request) -> Option<String> {
    if recorded.method != sent.method {
        return Some(differ("method", &recorded.method, &sent.method));
    }
    if let Some(d) = url_difference(&recorded.url, &sent.url) {
        return Some(d);
    }
    if let Some(d) = header_difference(&recorded.headers, &sent.headers) {
        return Some(d);
    }
    let (recorded_body, sent_body) = match (recorded.body.bytes(), sent.body.bytes()) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => return Some(e),
    };
    if recorded_body == sent_body {
        return None;
    }
    let content_type = header(&recorded.headers, "content-type").unwrap_or_default();
    Some(body_difference(&content_type, &recorded_body, &sent_body))
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn url_difference(recorded: &str, sent: &str) -> Option<String> {
    if recorded == sent {
        return None;
    }
    let split = |url: &str| -> (String, Vec<(String, String)>) {
        match url.split_once('?') {
            Some((base, query)) => (
                base.to_owned(),
                form_urlencoded::parse(query.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
            None => (url.to_owned(), Vec::new()),
        }
    };
    let (recorded_base, recorded_query) = split(recorded);
    let (sent_base, sent_query) = split(sent);
    if recorded_base != sent_base {
        return Some(differ("url", &recorded_base, &sent_base));
    }
    Some(
        pairs_difference("url query", &recorded_query, &sent_query)
            .unwrap_or_else(|| differ("url", recorded, sent)),
    )
}

/// Pairs compared by key (each key's values in order), then in order.
fn pairs_difference(
    what: &str,
    recorded: &[(String, String)],
    sent: &[(String, String)],
) -> Option<String> {
    let values = |pairs: &[(String, String)], key: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    for (key, _) in recorded {
        let (r, s) = (values(recorded, key), values(sent, key));
        if s.is_empty() {
            return Some(format!("{what} `{key}`: recorded, not sent"));
        }
        if r != s {
            return Some(differ(
                &format!("{what} `{key}`"),
                &r.join(", "),
                &s.join(", "),
            ));
        }
    }
    if let Some((key, _)) = sent
        .iter()
        .find(|(k, _)| !recorded.iter().any(|(r, _)| r == k))
    {
        return Some(format!("{what} `{key}`: sent, not recorded"));
    }
    (recorded != sent).then(|| format!("{what}: the same pairs in another order"))
}

/// Headers compared by name, case-insensitively; the order of different names does not
/// matter.
fn header_difference(recorded: &[(String, String)], sent: &[(String, String)]) -> Option<String> {
    let sorted = |headers: &[(String, String)]| -> Vec<(String, String)> {
        let mut lower: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        // Stable: the values of one name keep their order.
        lower.sort_by(|a, b| a.0.cmp(&b.0));
        lower
    };
    pairs_difference("header", &sorted(recorded), &sorted(sent))
}

fn body_difference(content_type: &str, recorded: &[u8], sent: &[u8]) -> String {
    let content_type = content_type.to_ascii_lowercase();
    if content_type.contains("json")
        && let (Ok(r), Ok(s)) = (
            serde_json::from_slice::<Value>(recorded),
            serde_json::from_slice::<Value>(sent),
        )
    {
        return json_difference("", &r, &s)
            .unwrap_or_else(|| "body: the same JSON, written differently".into());
    }
    if content_type.contains("x-www-form-urlencoded") {
        let parse = |bytes: &[u8]| -> Vec<(String, String)> {
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
        if let Some(d) = pairs_difference("body field", &parse(recorded), &parse(sent)) {
            return d;
        }
    }
    let at = recorded
        .iter()
        .zip(sent)
        .position(|(r, s)| r != s)
        .unwrap_or(recorded.len().min(sent.len()));
    let around =
        |bytes: &[u8]| String::from_utf8_lossy(&bytes[at..bytes.len().min(at + 40)]).into_owned();
    format!(
        "body at byte {at} (of {} recorded, {} sent): recorded {}, sent {}",
        recorded.len(),
        sent.len(),
        quote(&around(recorded)),
        quote(&around(sent))
    )
}

/// The first difference between two JSON values, named by its JSON pointer.
pub fn json_difference(at: &str, recorded: &Value, sent: &Value) -> Option<String> {
    let name = |at: &str| {
        if at.is_empty() {
            "body".to_owned()
        } else {
            format!("body{at}")
        }
    };
    match (recorded, sent) {
        (Value::Object(r), Value::Object(s)) => {
            for (key, value) in r {
                let here = format!("{at}/{key}");
                match s.get(key) {
                    None => return Some(format!("{}: recorded, not sent", name(&here))),
                    Some(other) => {
                        if let Some(d) = json_difference(&here, value, other) {
                            return Some(d);
                        }
                    }
                }
            }
            s.keys()
                .find(|k| !r.contains_key(*k))
                .map(|k| format!("{}: sent, not recorded", name(&format!("{at}/{k}"))))
        }
        (Value::Array(r), Value::Array(s)) => {
            for (i, (a, b)) in r.iter().zip(s).enumerate() {
                if let Some(d) = json_difference(&format!("{at}/{i}"), a, b) {
                    return Some(d);
                }
            }
            (r.len() != s.len())
                .then(|| format!("{}: {} items recorded, {} sent", name(at), r.len(), s.len()))
        }
        (r, s) if r == s => None,
        (r, s) => Some(differ(&name(at), &r.to_string(), &s.to_string())),
    }
}

/// The first difference between a recorded result and the one the plugin gave. A field that
/// is `null` in the plugin's result and absent from the recording matches it: an option a
/// newer world added, which a cassette recorded before it never had.
pub fn result_difference(recorded: &Value, given: &Value) -> Option<String> {
    json_difference("", recorded, &without_unrecorded_nulls(recorded, given))
}

fn without_unrecorded_nulls(recorded: &Value, given: &Value) -> Value {
    match (recorded, given) {
        (Value::Object(r), Value::Object(g)) => Value::Object(
            g.iter()
                .filter(|(key, value)| !value.is_null() || r.contains_key(*key))
                .map(|(key, value)| {
                    let value = match r.get(key) {
                        Some(recorded) => without_unrecorded_nulls(recorded, value),
                        None => value.clone(),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        (Value::Array(r), Value::Array(g)) => Value::Array(
            g.iter()
                .enumerate()
                .map(|(i, value)| match r.get(i) {
                    Some(recorded) => without_unrecorded_nulls(recorded, value),
                    None => value.clone(),
                })
                .collect(),
        ),
        _ => given.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_kit::cassette::Body;

    #[test]
    fn a_result_field_a_newer_world_added_matches_when_null() {
        let recorded = serde_json::json!({"Ok": {"status": "UnderReview", "list": [{"a": 1}]}});
        let given = serde_json::json!({"Ok": {"status": "UnderReview", "next_step_json": null,
                                              "list": [{"a": 1, "b": null}]}});
        assert_eq!(result_difference(&recorded, &given), None);
        let told = serde_json::json!({"Ok": {"status": "UnderReview", "next_step_json": "{}",
                                             "list": [{"a": 1}]}});
        assert_eq!(
            result_difference(&recorded, &told).as_deref(),
            Some("body/Ok/next_step_json: sent, not recorded")
        );
        // A recorded null is compared as any value.
        let recorded_null = serde_json::json!({"Ok": {"x": null}});
        assert!(result_difference(&recorded_null, &serde_json::json!({"Ok": {"x": 1}})).is_some());
        assert!(result_difference(&recorded_null, &serde_json::json!({"Ok": {}})).is_some());
    }

    fn request(url: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST".into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Body::Text(body.into()),
        }
    }

    #[test]
    fn the_same_request_has_no_difference_whatever_the_header_order() {
        let a = request("https://p/x?a=1", &[("A", "1"), ("B", "2")], "{}");
        let b = request("https://p/x?a=1", &[("b", "2"), ("a", "1")], "{}");
        assert_eq!(difference(&a, &b), None);
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let json = [("Content-Type", "application/json")];
        let base = request(
            "https://p/v1/pay?x=1",
            &json,
            r#"{"amount":{"value":100},"ref":"a"}"#,
        );
        let cases = [
            (
                Request {
                    method: "GET".into(),
                    ..base.clone()
                },
                r#"method: recorded "POST", sent "GET""#,
            ),
            (
                request("https://p/v1/other?x=1", &json, ""),
                r#"url: recorded "https://p/v1/pay", sent "https://p/v1/other""#,
            ),
            (
                request(
                    "https://p/v1/pay?x=2",
                    &json,
                    r#"{"amount":{"value":100},"ref":"a"}"#,
                ),
                r#"url query `x`: recorded "1", sent "2""#,
            ),
            (
                request(
                    "https://p/v1/pay?x=1",
                    &[("Content-Type", "text/plain")],
                    "{}",
                ),
                r#"header `content-type`: recorded "application/json", sent "text/plain""#,
            ),
            (
                request("https://p/v1/pay?x=1", &[], "{}"),
                "header `content-type`: recorded, not sent",
            ),
            (
                request(
                    "https://p/v1/pay?x=1",
                    &json,
                    r#"{"amount":{"value":1000},"ref":"a"}"#,
                ),
                r#"body/amount/value: recorded "100", sent "1000""#,
            ),
            (
                request("https://p/v1/pay?x=1", &json, r#"{"amount":{"value":100}}"#),
                "body/ref: recorded, not sent",
            ),
            (
                request(
                    "https://p/v1/pay?x=1",
                    &json,
                    r#"{"amount":{"value":100},"ref":"a","extra":1}"#,
                ),
                "body/extra: sent, not recorded",
            ),
        ];
        for (sent, expected) in cases {
            assert_eq!(difference(&base, &sent).as_deref(), Some(expected));
        }
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let recorded = request("https://p/gw", &form, "a=1&sign=xyz");
        let sent = request("https://p/gw", &form, "a=1&sign=xyw");
        assert_eq!(
            difference(&recorded, &sent).as_deref(),
            Some(r#"body field `sign`: recorded "xyz", sent "xyw""#)
        );
        let raw = request("https://p/gw", &[], "hello world");
        let other = request("https://p/gw", &[], "hello there");
        assert!(
            difference(&raw, &other)
                .unwrap()
                .starts_with("body at byte 6")
        );
    }
}
