//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>, the scheme Svix uses).
//!
//! A secret is `whsec_` followed by the standard base64 of the key. The signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`; its signature is `v1,` + the standard base64 of
//! HMAC-SHA256 under the key. The `webhook-signature` header is a space-separated list of
//! signatures (several during a secret rotation); a receiver accepts the message when any
//! one of them matches and the timestamp is recent.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a secret's text.
pub const SECRET_PREFIX: &str = "whsec_";
/// The prefix of a version-1 (HMAC-SHA256) signature.
pub const SIGNATURE_PREFIX: &str = "v1,";
/// How far a receiver's clock may be from the sender's, as the reference libraries allow.
pub const DEFAULT_TOLERANCE_S: i64 = 5 * 60;

/// Standard base64 that accepts the secret's key with or without its padding, and with
/// non-zero trailing bits, as the reference libraries (Python's `base64`) do.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a signature could not be made or checked. The messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The secret is not `whsec_` + base64 of a non-empty key.
    #[error("the webhook secret is not valid (expected whsec_ followed by base64)")]
    BadSecret,
    /// No secret was given to sign with.
    #[error("no webhook secret to sign with")]
    NoSecret,
    /// The `webhook-timestamp` header is not a number of seconds.
    #[error("the webhook timestamp is not a number of seconds")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance (too old or in the future).
    #[error("the webhook timestamp is outside the tolerance")]
    StaleTimestamp,
    /// None of the header's `v1,` signatures matches the message.
    #[error("no matching webhook signature")]
    NoMatchingSignature,
}

/// A new random secret: `whsec_` + base64 (padded) of 32 bytes from the OS.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key of a secret (`whsec_<base64>`, or the base64 alone).
fn key_of(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = LENIENT
        .decode(encoded)
        .map_err(|_| SignatureError::BadSecret)?;
    if key.is_empty() {
        return Err(SignatureError::BadSecret);
    }
    Ok(key)
}

/// The MAC of one message, ready to be finalised or verified.
fn mac_of(key: &[u8], msg_id: &str, timestamp: i64, body: &str) -> HmacSha256 {
    // HMAC accepts keys of any length; `key_of` has refused the empty one.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac
}

/// The signature of one message under one secret: `v1,` + base64(HMAC-SHA256).
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, SignatureError> {
    let key = key_of(secret)?;
    let tag = mac_of(&key, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    Ok(format!("{SIGNATURE_PREFIX}{}", STANDARD.encode(tag)))
}

/// The `webhook-signature` header: one signature per secret, space-separated (the current
/// and the previous secret during a rotation).
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let signatures = secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

/// Checks a delivery as a receiver does: the timestamp lies within `tolerance_s` seconds
/// of `now_unix`, and one of the header's `v1,` signatures is the message's under `secret`
/// (compared in constant time). Signatures of other versions are ignored.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &str,
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let key = key_of(secret)?;
    let timestamp: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if timestamp.abs_diff(now_unix) > tolerance_s.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    let mac = mac_of(&key, msg_id, timestamp, body);
    let matches = signature_header
        .split_ascii_whitespace()
        .filter_map(|candidate| candidate.strip_prefix(SIGNATURE_PREFIX))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|tag| mac.clone().verify_slice(&tag).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published test vectors of the reference implementation,
    // github.com/standard-webhooks/standard-webhooks (commit b2fa7b8):
    // - `libraries/javascript/src/webhook.test.ts` ("sign function works") and
    //   `libraries/python/tests/test_webhooks.py` (`test_sign_function`);
    // - `libraries/rust/src/lib.rs` (`test_sign`).
    const JS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const JS_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const JS_TIMESTAMP: i64 = 1614265330;
    const JS_PAYLOAD: &str = r#"{"test": 2432232314}"#;
    const JS_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const RS_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const RS_MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const RS_TIMESTAMP: i64 = 1649367553;
    const RS_PAYLOAD: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const RS_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn verify_now(
        secret: &str,
        ts: i64,
        header: &str,
        body: &str,
        now: i64,
    ) -> Result<(), SignatureError> {
        verify(
            secret,
            JS_MSG_ID,
            &ts.to_string(),
            header,
            body,
            now,
            DEFAULT_TOLERANCE_S,
        )
    }

    #[test]
    fn reproduces_the_published_vectors() {
        assert_eq!(
            sign(JS_SECRET, JS_MSG_ID, JS_TIMESTAMP, JS_PAYLOAD).unwrap(),
            JS_SIGNATURE
        );
        assert_eq!(
            sign(RS_SECRET, RS_MSG_ID, RS_TIMESTAMP, RS_PAYLOAD).unwrap(),
            RS_SIGNATURE
        );
    }

    #[test]
    fn the_prefix_of_the_secret_is_optional() {
        let bare = JS_SECRET.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(
            sign(bare, JS_MSG_ID, JS_TIMESTAMP, JS_PAYLOAD).unwrap(),
            JS_SIGNATURE
        );
    }

    #[test]
    fn verifies_the_published_vectors() {
        verify(
            JS_SECRET,
            JS_MSG_ID,
            &JS_TIMESTAMP.to_string(),
            JS_SIGNATURE,
            JS_PAYLOAD,
            JS_TIMESTAMP + 10,
            DEFAULT_TOLERANCE_S,
        )
        .unwrap();
        verify(
            RS_SECRET,
            RS_MSG_ID,
            &RS_TIMESTAMP.to_string(),
            RS_SIGNATURE,
            RS_PAYLOAD,
            RS_TIMESTAMP - 10,
            DEFAULT_TOLERANCE_S,
        )
        .unwrap();
    }

    #[test]
    fn refuses_a_tampered_body_a_wrong_secret_or_signature() {
        let now = JS_TIMESTAMP;
        assert_eq!(
            verify_now(JS_SECRET, now, JS_SIGNATURE, r#"{"test": 2432232315}"#, now),
            Err(SignatureError::NoMatchingSignature)
        );
        let other = generate_secret();
        assert_eq!(
            verify_now(&other, now, JS_SIGNATURE, JS_PAYLOAD, now),
            Err(SignatureError::NoMatchingSignature)
        );
        // The reference Python tests' "invalid signature": one character changed.
        let altered = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        for header in [
            altered,
            "v1,",
            "v1,not base64!",
            "",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ] {
            assert_eq!(
                verify_now(JS_SECRET, now, header, JS_PAYLOAD, now),
                Err(SignatureError::NoMatchingSignature),
                "{header}"
            );
        }
        // The timestamp is part of the signed content.
        assert_eq!(
            verify_now(JS_SECRET, now + 1, JS_SIGNATURE, JS_PAYLOAD, now),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn refuses_a_timestamp_outside_the_tolerance() {
        let ts = JS_TIMESTAMP;
        let at = |now: i64| verify_now(JS_SECRET, ts, JS_SIGNATURE, JS_PAYLOAD, now);
        assert_eq!(at(ts + DEFAULT_TOLERANCE_S), Ok(()));
        assert_eq!(at(ts - DEFAULT_TOLERANCE_S), Ok(()));
        assert_eq!(
            at(ts + DEFAULT_TOLERANCE_S + 1),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            at(ts - DEFAULT_TOLERANCE_S - 1),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify(
                JS_SECRET,
                JS_MSG_ID,
                "hello",
                JS_SIGNATURE,
                JS_PAYLOAD,
                ts,
                300
            ),
            Err(SignatureError::BadTimestamp)
        );
        // Extreme values neither overflow nor pass.
        assert_eq!(
            verify(
                JS_SECRET,
                JS_MSG_ID,
                &i64::MIN.to_string(),
                JS_SIGNATURE,
                JS_PAYLOAD,
                i64::MAX,
                300
            ),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn a_rotation_header_verifies_with_each_secret() {
        let (old, new) = (generate_secret(), generate_secret());
        let header = signature_header(&[&new, &old], "msg_1", 1_700_000_000, "{}").unwrap();
        assert_eq!(header.split(' ').count(), 2);
        for secret in [&new, &old] {
            verify(
                secret,
                "msg_1",
                "1700000000",
                &header,
                "{}",
                1_700_000_000,
                300,
            )
            .unwrap();
        }
        let third = generate_secret();
        assert_eq!(
            verify(
                &third,
                "msg_1",
                "1700000000",
                &header,
                "{}",
                1_700_000_000,
                300
            ),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            signature_header(&[], "msg_1", 1, "{}"),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn generated_secrets_are_32_random_bytes() {
        let secret = generate_secret();
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(encoded.len(), 44);
        assert!(encoded.ends_with('='));
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), 32);
        assert_ne!(secret, generate_secret());
    }

    #[test]
    fn refuses_bad_secrets_without_revealing_them() {
        for secret in ["whsec_", "", "whsec_not*base64", "whsec_%%%%"] {
            let err = sign(secret, "msg", 1, "{}").unwrap_err();
            assert_eq!(err, SignatureError::BadSecret);
            if secret.len() > SECRET_PREFIX.len() {
                assert!(!err.to_string().contains(&secret[SECRET_PREFIX.len()..]));
            }
        }
        // With or without the key's base64 padding (as the reference libraries accept).
        let padded = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS=";
        let unpadded = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS";
        assert!(sign(padded, "m", 1, "").is_ok());
        assert!(sign(unpadded, "m", 1, "").is_ok());
    }
}
