//! Webhook signatures, verified over the raw body before anything parses it, in constant time
//! (`Mac::verify_slice`), against every active secret of the store (rotation):
//!
//! - Shopify: `X-Shopify-Hmac-Sha256` (or `Shopify-Hmac-Sha256`) = base64 HMAC-SHA256 of the body.
//! - Standard Webhooks: `webhook-signature: v1,<base64>` (space-separated list) over
//!   `{id}.{timestamp}.{body}`, keyed by the base64 bytes after `whsec_`; 5 minutes either way.
//! - Stripe: `Stripe-Signature: t=…,v1=<hex>[,v1=…]` over `{t}.{body}`, keyed by the secret's
//!   UTF-8 bytes (`whsec_` included); 300 s tolerance.
//!
//! What a delivery costs is bounded before anything is known about its sender: the MAC over the
//! body is computed once per active secret, whatever the header holds; only candidates of a
//! SHA-256 MAC's length count, and at most [`MAX_CANDIDATES`] of them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Timestamps further than this from now are refused (Standard Webhooks and Stripe).
pub const TOLERANCE_S: i64 = 300;

/// The most signatures of one header that are compared (senders list one per active secret,
/// two during a rotation); the rest are ignored.
pub const MAX_CANDIDATES: usize = 8;

/// The length of an HMAC-SHA256.
const MAC_LEN: usize = 32;

/// Why a delivery is refused before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No signature header, or none of the store's secrets made it.
    BadSignature(&'static str),
    /// Signed, but too old or too far in the future.
    StaleTimestamp,
}

/// The header values a verification needs (names are matched case-insensitively by the caller).
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for axum::http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        axum::http::HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` only fails for fixed-size-key MACs.
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// True when one of `candidates` is the HMAC-SHA256 of `parts` under one of `keys`. The MAC is
/// computed once per key (the body is read once per key, never per candidate); each
/// comparison is constant-time (`verify_slice` on a copy of the finished state).
fn any_verifies<K: AsRef<[u8]>>(keys: &[K], parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
    if candidates.is_empty() {
        return false;
    }
    let mut ok = false;
    for key in keys {
        let mut m = mac(key.as_ref());
        for p in parts {
            m.update(p);
        }
        for c in candidates {
            // No early return: every key and candidate is tried, so timing says nothing.
            ok |= m.clone().verify_slice(c).is_ok();
        }
    }
    ok
}

/// The first [`MAX_CANDIDATES`] signatures that decode to a MAC's length.
fn candidates<'a>(
    raw: impl Iterator<Item = &'a str>,
    decode: impl Fn(&str) -> Option<Vec<u8>>,
) -> Vec<Vec<u8>> {
    raw.filter_map(|s| decode(s.trim()))
        .filter(|c| c.len() == MAC_LEN)
        .take(MAX_CANDIDATES)
        .collect()
}

/// Shopify: any secret whose HMAC of the body matches the header.
pub fn shopify(headers: &dyn Headers, body: &[u8], secrets: &[String]) -> Result<(), Rejection> {
    let header = headers
        .get("x-shopify-hmac-sha256")
        .or_else(|| headers.get("shopify-hmac-sha256"))
        .ok_or(Rejection::BadSignature("missing X-Shopify-Hmac-Sha256"))?;
    let sig = B64
        .decode(header.trim())
        .map_err(|_| Rejection::BadSignature("the signature is not base64"))?;
    if sig.len() != MAC_LEN {
        return Err(Rejection::BadSignature("the signature does not match"));
    }
    if any_verifies(secrets, &[body], &[sig]) {
        Ok(())
    } else {
        Err(Rejection::BadSignature("the signature does not match"))
    }
}

/// Standard Webhooks v1 (symmetric).
pub fn standard(
    headers: &dyn Headers,
    body: &[u8],
    secrets: &[String],
    now_s: i64,
) -> Result<(), Rejection> {
    let id = headers
        .get("webhook-id")
        .ok_or(Rejection::BadSignature("missing webhook-id"))?;
    let ts = headers
        .get("webhook-timestamp")
        .ok_or(Rejection::BadSignature("missing webhook-timestamp"))?;
    let sigs = headers
        .get("webhook-signature")
        .ok_or(Rejection::BadSignature("missing webhook-signature"))?;
    let t: i64 = ts
        .trim()
        .parse()
        .map_err(|_| Rejection::BadSignature("webhook-timestamp is not a number"))?;
    let candidates = candidates(
        sigs.split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,")),
        |s| B64.decode(s).ok(),
    );
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|s| B64.decode(s.strip_prefix("whsec_").unwrap_or(s)).ok())
        .collect();
    let signed = [id.as_bytes(), b".", ts.trim().as_bytes(), b".", body];
    if !any_verifies(&keys, &signed, &candidates) {
        return Err(Rejection::BadSignature("the signature does not match"));
    }
    // Checked after the signature, so an unsigned request learns nothing about the clock.
    if (now_s - t).abs() > TOLERANCE_S {
        return Err(Rejection::StaleTimestamp);
    }
    Ok(())
}

/// Stripe's `Stripe-Signature`.
pub fn stripe(
    headers: &dyn Headers,
    body: &[u8],
    secrets: &[String],
    now_s: i64,
) -> Result<(), Rejection> {
    let header = headers
        .get("stripe-signature")
        .ok_or(Rejection::BadSignature("missing Stripe-Signature"))?;
    let mut t: Option<&str> = None;
    for part in header.split(',') {
        if let Some(("t", v)) = part.trim().split_once('=') {
            t = Some(v);
        }
    }
    let v1 = candidates(
        header
            .split(',')
            .filter_map(|p| p.trim().strip_prefix("v1=")),
        |s| hex::decode(s).ok(),
    );
    let t = t.ok_or(Rejection::BadSignature("Stripe-Signature has no timestamp"))?;
    let ts: i64 = t
        .parse()
        .map_err(|_| Rejection::BadSignature("Stripe-Signature timestamp is not a number"))?;
    let signed = [t.as_bytes(), b".", body];
    if !any_verifies(secrets, &signed, &v1) {
        return Err(Rejection::BadSignature("the signature does not match"));
    }
    if (now_s - ts).abs() > TOLERANCE_S {
        return Err(Rejection::StaleTimestamp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct H(HashMap<&'static str, String>);
    impl Headers for H {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(String::as_str)
        }
    }
    fn h(pairs: &[(&'static str, &str)]) -> H {
        H(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
    }

    #[test]
    fn shopify_vector_and_rotation() {
        let body = br#"{"id":1}"#;
        let sig = "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=";
        let secrets = vec!["old-secret".to_owned(), "hush".to_owned()];
        assert_eq!(
            shopify(&h(&[("x-shopify-hmac-sha256", sig)]), body, &secrets),
            Ok(())
        );
        assert_eq!(
            shopify(&h(&[("shopify-hmac-sha256", sig)]), body, &secrets),
            Ok(()),
            "new header spelling"
        );
        assert!(
            shopify(
                &h(&[("x-shopify-hmac-sha256", sig)]),
                br#"{"id":2}"#,
                &secrets
            )
            .is_err()
        );
        assert!(
            shopify(
                &h(&[("x-shopify-hmac-sha256", sig)]),
                body,
                &["other".into()]
            )
            .is_err()
        );
        assert!(shopify(&h(&[]), body, &secrets).is_err());
    }

    #[test]
    fn standard_webhooks_vector_and_tolerance() {
        let secret = vec!["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_owned()];
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let headers = h(&[
            ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
            ("webhook-timestamp", "1649367553"),
            (
                "webhook-signature",
                "v1,bad v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
        ]);
        assert_eq!(standard(&headers, body, &secret, 1_649_367_553), Ok(()));
        assert_eq!(
            standard(&headers, body, &secret, 1_649_367_553 + 299),
            Ok(())
        );
        assert_eq!(
            standard(&headers, body, &secret, 1_649_367_553 + 301),
            Err(Rejection::StaleTimestamp)
        );
        assert_eq!(
            standard(&headers, body, &secret, 1_649_367_553 - 301),
            Err(Rejection::StaleTimestamp),
            "future too"
        );
        assert!(standard(&headers, b"{}", &secret, 1_649_367_553).is_err());
    }

    #[test]
    fn stripe_vector_and_tolerance() {
        let secret = vec!["whsec_test_secret".to_owned()];
        let body = br#"{"id":"evt_1"}"#;
        let header = "t=1700000000,v0=ignored,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a";
        let headers = h(&[("stripe-signature", header)]);
        assert_eq!(stripe(&headers, body, &secret, 1_700_000_100), Ok(()));
        assert_eq!(
            stripe(&headers, body, &secret, 1_700_000_301),
            Err(Rejection::StaleTimestamp)
        );
        assert!(stripe(&headers, br#"{"id":"evt_2"}"#, &secret, 1_700_000_000).is_err());
    }

    #[test]
    fn only_eight_candidates_of_a_macs_length_are_compared() {
        let body = br#"{"id":1}"#;
        let key = B64.encode(b"0123456789abcdef0123456789abcdef");
        let secrets = vec![format!("whsec_{key}")];
        let good = {
            let mut m = mac(b"0123456789abcdef0123456789abcdef");
            m.update(b"msg_1.1700000000.");
            m.update(body);
            B64.encode(m.finalize().into_bytes())
        };
        let check = |sigs: &str| {
            standard(
                &h(&[
                    ("webhook-id", "msg_1"),
                    ("webhook-timestamp", "1700000000"),
                    ("webhook-signature", sigs),
                ]),
                body,
                &secrets,
                1_700_000_000,
            )
        };
        assert_eq!(check(&format!("v1,{good}")), Ok(()));
        // Thousands of empty or short candidates are not MACs: none is computed for them.
        let flood = "v1, ".repeat(5_000);
        assert!(check(&flood).is_err());
        assert_eq!(
            candidates(flood.split_whitespace(), |s| B64.decode(s).ok()).len(),
            0
        );
        // Eight wrong ones of the right length first: the good one after them is not read.
        let wrong = B64.encode([7u8; 32]);
        let eight = format!("v1,{wrong} ").repeat(8);
        assert!(check(&format!("{eight}v1,{good}")).is_err());
        let seven = format!("v1,{wrong} ").repeat(7);
        assert_eq!(check(&format!("{seven}v1,{good}")), Ok(()));
    }
}
