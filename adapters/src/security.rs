//! Technical services: system clock, UUIDv7 ids, argon2 password hashing and the reset-token
//! vault (random token, SHA-256 hash for storage, XChaCha20-Poly1305 sealing for the event).

use argon2::password_hash::{
    PasswordHash as PhcHash, PasswordHasher as _, PasswordVerifier as _, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use campus_core::events::SealedSecret;
use campus_core::user::PasswordHash;
use campus_core::values::Password;
use campus_core::Timestamp;
use campus_ports::{Clock, IdGenerator, MintedToken, PasswordHasher, PortError, TokenVault};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(chrono::Utc::now().timestamp_millis())
    }
}

/// Time-ordered UUIDv7 ids.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7Ids;

impl IdGenerator for UuidV7Ids {
    fn new_id(&self) -> u128 {
        uuid::Uuid::now_v7().as_u128()
    }
}

/// argon2id with the crate's default (OWASP-recommended) parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Argon2Hasher;

impl PasswordHasher for Argon2Hasher {
    fn hash(&self, password: &Password) -> Result<PasswordHash, PortError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| PasswordHash(h.to_string()))
            .map_err(|e| PortError::Unavailable(format!("password hashing failed: {e}")))
    }

    fn verify(&self, password: &str, hash: &PasswordHash) -> bool {
        match PhcHash::new(&hash.0) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Mints reset tokens and seals them with a key derived from the server secret.
pub struct SecretVault {
    cipher: XChaCha20Poly1305,
}

impl SecretVault {
    /// Derives the sealing key from `server_secret` (domain-separated SHA-256).
    pub fn new(server_secret: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"campus/token-sealing/v1\0");
        h.update(server_secret.as_bytes());
        let key = h.finalize();
        SecretVault {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }
}

impl TokenVault for SecretVault {
    fn mint(&self) -> MintedToken {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let plain = URL_SAFE_NO_PAD.encode(raw);
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of a short buffer cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        MintedToken {
            hash: self.hash(&plain),
            sealed: SealedSecret(URL_SAFE_NO_PAD.encode(blob)),
            plain,
        }
    }

    fn hash(&self, plain: &str) -> String {
        hex::encode(Sha256::digest(plain.as_bytes()))
    }

    fn unseal(&self, sealed: &SealedSecret) -> Result<String, PortError> {
        let bad = || PortError::Conflict("sealed token was not made with this server's key".into());
        let blob = URL_SAFE_NO_PAD.decode(&sealed.0).map_err(|_| bad())?;
        if blob.len() < 24 {
            return Err(bad());
        }
        let (nonce, ct) = blob.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_round_trip_only_with_the_same_key() {
        let vault = SecretVault::new("one");
        let t = vault.mint();
        assert_eq!(vault.unseal(&t.sealed).unwrap(), t.plain);
        assert_eq!(vault.hash(&t.plain), t.hash);
        assert!(!t.sealed.0.contains(&t.plain));
        assert!(SecretVault::new("two").unseal(&t.sealed).is_err());
        assert_ne!(vault.mint().plain, t.plain);
    }

    #[test]
    fn argon2_verifies_only_the_right_password() {
        let h = Argon2Hasher
            .hash(&Password::parse("correct horse").unwrap())
            .unwrap();
        assert!(Argon2Hasher.verify("correct horse", &h));
        assert!(!Argon2Hasher.verify("wrong horse", &h));
        assert!(!Argon2Hasher.verify("correct horse", &PasswordHash("garbage".into())));
    }
}
