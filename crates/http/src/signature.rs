//! Webhook signatures, verified over the raw body before anything parses it, in constant time
//! (`Mac::verify_slice`), against every active secret of the store (rotation):
//!
//! - Shopify: `X-Shopify-Hmac-Sha256` (or `Shopify-Hmac-Sha256`) = base64 HMAC-SHA256 of the body.
//! - Standard Webhooks: `webhook-signature: v1,<base64>` (space-separated list) over
//!   `{id}.{timestamp}.{body}`, keyed by the base64 bytes after `whsec_`; 5 minutes either way.
//! - Stripe: `Stripe-Signature: t=…,v1=<hex>[,v1=…]` over `{t}.{body}`, keyed by the secret's
//!   UTF-8 bytes (`whsec_` included); 300 s tolerance.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Timestamps further than this from now are refused (Standard Webhooks and Stripe).
pub const TOLERANCE_S: i64 = 300;

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

/// True when `sig` is the HMAC-SHA256 of `parts` under `key` (constant-time compare).
fn verifies(key: &[u8], parts: &[&[u8]], sig: &[u8]) -> bool {
    let mut m = mac(key);
    for p in parts {
        m.update(p);
    }
    m.verify_slice(sig).is_ok()
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
    if secrets
        .iter()
        .any(|s| verifies(s.as_bytes(), &[body], &sig))
    {
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
    let candidates: Vec<Vec<u8>> = sigs
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| B64.decode(s).ok())
        .collect();
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|s| B64.decode(s.strip_prefix("whsec_").unwrap_or(s)).ok())
        .collect();
    let signed = [id.as_bytes(), b".", ts.trim().as_bytes(), b".", body];
    let ok = keys
        .iter()
        .any(|k| candidates.iter().any(|c| verifies(k, &signed, c)));
    if !ok {
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
    let mut v1: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => v1.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let t = t.ok_or(Rejection::BadSignature("Stripe-Signature has no timestamp"))?;
    let ts: i64 = t
        .parse()
        .map_err(|_| Rejection::BadSignature("Stripe-Signature timestamp is not a number"))?;
    let signed = [t.as_bytes(), b".", body];
    let ok = secrets
        .iter()
        .any(|s| v1.iter().any(|c| verifies(s.as_bytes(), &signed, c)));
    if !ok {
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
}
