//! Technical services: system clock, UUIDv7 ids, argon2 password hashing and the reset-token
//! vault (random token, SHA-256 hash for storage, XChaCha20-Poly1305 sealing for the event).

use crate::keys::{KeyRing, Purpose};
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
use std::sync::Arc;
use tokio::sync::Semaphore;

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

/// argon2id with the crate's default (OWASP-recommended) parameters, on tokio's blocking
/// pool: at most one hashing per core runs at once and a bounded number wait; beyond that
/// the answer is `Busy` at once, so a burst of log-ins cannot stall the async workers (health
/// checks, the admin screen, a daemon in the same process) nor queue without end.
#[derive(Clone)]
pub struct Argon2Hasher {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

impl Argon2Hasher {
    /// `parallel` hashings at once, `waiting` more queued.
    pub fn new(parallel: usize, waiting: usize) -> Self {
        Argon2Hasher {
            running: Arc::new(Semaphore::new(parallel.max(1))),
            admitted: Arc::new(Semaphore::new(parallel.max(1) + waiting)),
        }
    }

    /// One hashing per core, sixteen per core waiting.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Argon2Hasher::new(cores, cores * 16)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PortError> {
        let busy = || PortError::Busy("too many password checks at once".into());
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            work()
        })
        .await
        .map_err(|e| PortError::Unavailable(format!("password hashing stopped: {e}")))
    }
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, PortError> {
        let password = password.expose().to_string();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| PasswordHash(h.to_string()))
                .map_err(|e| PortError::Unavailable(format!("password hashing failed: {e}")))
        })
        .await?
    }

    /// A hash that does not parse (an account without a password yet) costs the same work as
    /// a real one, so timing does not tell such accounts from others.
    async fn verify(&self, password: &str, hash: &PasswordHash) -> Result<bool, PortError> {
        let usable = PhcHash::new(&hash.0).is_ok();
        let phc = if usable {
            hash.0.clone()
        } else {
            DUMMY_HASH.to_string()
        };
        let password = password.to_string();
        self.run(move || {
            let matches = PhcHash::new(&phc).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            });
            usable && matches
        })
        .await
    }
}

/// A valid argon2id hash (default parameters) of a random password nobody knows.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2l2ZP0cGx4mJ2cHoqkSXrNt0yT3QzLKIqNbvuCHUvJs";

/// Mints reset tokens and seals them with the token-sealing key of the server's key ring;
/// a sealed token names the key that sealed it (`<kid>.<base64>`), so it opens while that
/// key is still listed after a rotation.
pub struct SecretVault {
    /// Sealing keys, the current one first.
    ciphers: Vec<(String, XChaCha20Poly1305)>,
}

impl SecretVault {
    /// The vault of reset tokens.
    pub fn new(keys: &KeyRing) -> Self {
        Self::for_purpose(keys, Purpose::TokenSealing)
    }

    /// A vault whose keys are derived for `purpose` (e.g. webhook secrets), so that one
    /// kind of sealed secret never opens with another's key.
    pub fn for_purpose(keys: &KeyRing, purpose: Purpose) -> Self {
        SecretVault {
            ciphers: keys
                .derive(purpose)
                .into_iter()
                .map(|k| (k.kid, XChaCha20Poly1305::new((&k.bytes).into())))
                .collect(),
        }
    }
}

impl TokenVault for SecretVault {
    fn mint(&self) -> MintedToken {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let plain = URL_SAFE_NO_PAD.encode(raw);
        MintedToken {
            hash: self.hash(&plain),
            sealed: self.seal(&plain),
            plain,
        }
    }

    fn seal(&self, plain: &str) -> SealedSecret {
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let (kid, cipher) = &self.ciphers[0];
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of a short buffer cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        SealedSecret(format!("{kid}.{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    fn hash(&self, plain: &str) -> String {
        hex::encode(Sha256::digest(plain.as_bytes()))
    }

    fn unseal(&self, sealed: &SealedSecret) -> Result<String, PortError> {
        let bad = || PortError::Conflict("sealed token was not made with this server's key".into());
        let (kid, blob) = sealed.0.split_once('.').ok_or_else(bad)?;
        let cipher = self
            .ciphers
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                PortError::Conflict(format!(
                    "sealed token was made with the key {kid}, which this server does not have"
                ))
            })?;
        let blob = URL_SAFE_NO_PAD.decode(blob).map_err(|_| bad())?;
        if blob.len() < 24 {
            return Err(bad());
        }
        let (nonce, ct) = blob.split_at(24);
        let plain = cipher
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
        let ring = |raw| KeyRing::parse(raw).unwrap();
        let vault = SecretVault::new(&ring("one:0123456789abcdef0123"));
        let t = vault.mint();
        assert_eq!(vault.unseal(&t.sealed).unwrap(), t.plain);
        assert_eq!(vault.hash(&t.plain), t.hash);
        assert!(!t.sealed.0.contains(&t.plain));
        assert!(t.sealed.0.starts_with("one."));
        assert_ne!(vault.mint().plain, t.plain);
        // Another secret under the same key id cannot open it; a rotated ring still can.
        let other = SecretVault::new(&ring("one:fedcba9876543210fedc"));
        assert!(other.unseal(&t.sealed).is_err());
        let rotated = SecretVault::new(&ring("two:fedcba9876543210fedc,one:0123456789abcdef0123"));
        assert_eq!(rotated.unseal(&t.sealed).unwrap(), t.plain);
        assert!(rotated.mint().sealed.0.starts_with("two."));
        let err = SecretVault::new(&ring("three:fedcba9876543210fedc"))
            .unseal(&t.sealed)
            .unwrap_err();
        assert!(err.to_string().contains("key one"), "{err}");
    }

    #[tokio::test]
    async fn argon2_verifies_only_the_right_password() {
        let hasher = Argon2Hasher::for_this_machine();
        let h = hasher
            .hash(&Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(hasher.verify("correct horse", &h).await.unwrap());
        assert!(!hasher.verify("wrong horse", &h).await.unwrap());
        let garbage = PasswordHash("garbage".into());
        assert!(!hasher.verify("correct horse", &garbage).await.unwrap());
    }

    /// On a single-threaded runtime, a hashing that ran on the runtime's own thread would
    /// finish before any other task got a turn.
    #[tokio::test(flavor = "current_thread")]
    async fn hashing_leaves_the_async_workers_free() {
        let hasher = Argon2Hasher::new(1, 0);
        let turns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = tokio::spawn({
            let (turns, done) = (turns.clone(), done.clone());
            async move {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    turns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            }
        });
        tokio::task::yield_now().await;
        let before = turns.load(std::sync::atomic::Ordering::SeqCst);
        hasher
            .hash(&Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        ticker.await.unwrap();
        assert!(
            turns.load(std::sync::atomic::Ordering::SeqCst) > before + 1,
            "other tasks ran while the password was hashed"
        );
    }

    #[tokio::test]
    async fn hashings_beyond_the_queue_are_refused_at_once() {
        let hasher = Argon2Hasher::new(1, 1);
        let hash = hasher
            .hash(&Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        let attempts: Vec<_> = (0..6)
            .map(|_| {
                let (hasher, hash) = (hasher.clone(), hash.clone());
                tokio::spawn(async move { hasher.verify("correct horse", &hash).await })
            })
            .collect();
        let mut busy = 0;
        let mut verified = 0;
        for a in attempts {
            match a.await.unwrap() {
                Ok(true) => verified += 1,
                Err(PortError::Busy(_)) => busy += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!((1..=2).contains(&verified), "verified {verified}");
        assert_eq!(busy + verified, 6);
    }
}
