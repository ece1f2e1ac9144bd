//! `X-Hub-Signature: sha256=<hex>`: HMAC-SHA256 of the raw request body
//! with the webhook secret, as Bitbucket Cloud and Data Center both send
//! it. The comparison is hmac's `verify_slice` (constant time).

use hmac::{Hmac, Mac};
use sdp_bus::Secret;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature header: set the webhook's secret in Bitbucket")]
    Missing,
    #[error("X-Hub-Signature is not `sha256=<hex>`")]
    Malformed,
    #[error("X-Hub-Signature does not match the body: the webhook's secret differs")]
    Mismatch,
}

fn mac(secret: &Secret) -> HmacSha256 {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as Mac>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

/// Checks `header` (the `X-Hub-Signature` value, if any) against `body`.
pub fn verify(secret: &Secret, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let (algorithm, hex_digest) = header.split_once('=').ok_or(SignatureError::Malformed)?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(SignatureError::Malformed);
    }
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Bitbucket would send for `body` (for tests and tools).
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_matches_only_its_body_and_secret() {
        let secret = Secret::new("s3cret");
        let body = br#"{"push":{}}"#;
        let header = sign(&secret, body);
        assert!(header.starts_with("sha256="));
        assert_eq!(verify(&secret, Some(&header), body), Ok(()));
        assert_eq!(
            verify(
                &secret,
                Some(&header.to_uppercase().replace("SHA256=", "sha256=")),
                body
            ),
            Ok(()),
            "hex in either case"
        );
        assert_eq!(
            verify(&secret, Some(&header), br#"{"push":{} }"#),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&Secret::new("other"), Some(&header), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(&secret, None, body), Err(SignatureError::Missing));
        for bad in ["", "sha256", "sha1=abcd", "sha256=xyz", "sha256=abc"] {
            assert_eq!(
                verify(&secret, Some(bad), body),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A prefix of the right digest is not the digest.
        assert_eq!(
            verify(&secret, Some(&header[..header.len() - 2]), body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn matches_a_known_hmac_sha256() {
        // RFC 4231, test case 2.
        let secret = Secret::new("Jefe");
        assert_eq!(
            sign(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
