//! `application/x-www-form-urlencoded` helpers, and the "sorted key=value" signing strings
//! that Alipay and WeChat Pay v2 sign.

/// Encodes `pairs` as a form body.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

/// Decodes a form body into its pairs, in order.
pub fn decode(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `k1=v1&k2=v2...` over the pairs sorted by key, skipping empty values and the keys in
/// `exclude` (for example `sign` and `sign_type`). Values are used raw, not URL-encoded.
pub fn signing_string(pairs: &[(String, String)], exclude: &[&str]) -> String {
    let mut kept: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, v)| !v.is_empty() && !exclude.contains(&k.as_str()))
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_escapes() {
        let body = encode([("a", "1 2"), ("b", "x&y=z"), ("c", "中")]);
        assert_eq!(body, "a=1+2&b=x%26y%3Dz&c=%E4%B8%AD");
        assert_eq!(
            decode(body.as_bytes()),
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "x&y=z".into()),
                ("c".into(), "中".into())
            ]
        );
    }

    #[test]
    fn signing_string_sorts_and_skips() {
        let pairs = vec![
            ("sign".to_string(), "xx".to_string()),
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
            ("empty".to_string(), String::new()),
            ("sign_type".to_string(), "RSA2".to_string()),
        ];
        assert_eq!(signing_string(&pairs, &["sign", "sign_type"]), "a=1&b=2");
    }
}
