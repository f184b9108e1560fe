//! Secrets at rest: webhook secrets and credentials are stored encrypted with
//! XChaCha20-Poly1305 under a key from the config (`v1:` + base64 of nonce and ciphertext). The
//! store's name is bound as associated data, so a ciphertext copied to another row does not
//! decrypt.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngExt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a stored secret could not be decrypted (wrong key, or the data was altered)")]
    Undecryptable,
}

#[derive(Clone)]
pub struct Cipher(XChaCha20Poly1305);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    /// From the base64 of 32 random bytes (`ferry serve` prints how to make one).
    pub fn from_base64(key: &str) -> Result<Cipher, CryptoError> {
        let bytes = B64.decode(key.trim()).map_err(|_| CryptoError::BadKey)?;
        XChaCha20Poly1305::new_from_slice(&bytes)
            .map(Cipher)
            .map_err(|_| CryptoError::BadKey)
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> String {
        let key: [u8; 32] = rand::rng().random();
        B64.encode(key)
    }

    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let nonce_bytes: [u8; 24] = rand::rng().random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend(sealed);
        format!("v1:{}", B64.encode(out))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let raw = sealed
            .strip_prefix("v1:")
            .and_then(|b| B64.decode(b).ok())
            .filter(|r| r.len() > 24)
            .ok_or(CryptoError::Undecryptable)?;
        let (nonce, ct) = raw.split_at(24);
        let nonce = XNonce::try_from(nonce).map_err(|_| CryptoError::Undecryptable)?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Undecryptable)
    }
}

/// Equality of two secrets (or their digests) whose time does not depend on where they differ:
/// every byte is looked at whatever the earlier ones were. Different lengths answer at once
/// (a length is not the secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bound_to_its_row() {
        let c = Cipher::from_base64(&Cipher::generate_key()).unwrap_or_else(|e| panic!("{e}"));
        let sealed = c.seal("store-a", b"hush");
        assert!(!sealed.contains("hush"));
        assert_eq!(c.open("store-a", &sealed), Ok(b"hush".to_vec()));
        assert_eq!(c.open("store-b", &sealed), Err(CryptoError::Undecryptable));
        let other = Cipher::from_base64(&Cipher::generate_key()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            other.open("store-a", &sealed),
            Err(CryptoError::Undecryptable)
        );
        assert_ne!(
            c.seal("store-a", b"hush"),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(
            Cipher::from_base64("c2hvcnQ=").err(),
            Some(CryptoError::BadKey)
        );
    }

    #[test]
    fn ct_eq_compares_whole_secrets() {
        assert!(super::ct_eq(b"shpss_abc", b"shpss_abc"));
        assert!(!super::ct_eq(b"shpss_abc", b"shpss_abd"));
        assert!(!super::ct_eq(b"shpss_abc", b"shpss_ab"));
        assert!(super::ct_eq(b"", b""));
    }
}
