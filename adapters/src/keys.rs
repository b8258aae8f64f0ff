//! The server's keys. One master secret from configuration (`CAMPUS_JWT_SECRET`), or several
//! `kid:secret` pairs to rotate (the first signs and seals, all verify and unseal); purpose
//! keys are derived from each master with HKDF-SHA256, so the key that signs access tokens
//! never seals reset tokens. The database never holds a key: only each master's fingerprint
//! (see `PgStore::check_key_fingerprints`), so that processes started with different secrets
//! refuse to run side by side.

use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Shortest master secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// What a derived key is for; each purpose gets its own key from every master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Signing and verifying access tokens (JWT, HS256).
    AccessTokens,
    /// Sealing reset tokens inside events (XChaCha20-Poly1305).
    TokenSealing,
    /// Sealing webhook signing secrets in the database (XChaCha20-Poly1305).
    WebhookSecrets,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::AccessTokens => b"campus/access-tokens/v1",
            Purpose::TokenSealing => b"campus/token-sealing/v2",
            Purpose::WebhookSecrets => b"campus/webhook-secrets/v1",
        }
    }
}

/// A purpose key and the id of the master it comes from.
pub struct DerivedKey {
    pub kid: String,
    pub bytes: [u8; 32],
}

struct MasterKey {
    kid: String,
    secret: Vec<u8>,
}

/// The configured master keys, newest (signing) first. `Debug` shows key ids only.
#[derive(Clone)]
pub struct KeyRing {
    keys: Arc<Vec<MasterKey>>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

fn valid_kid(kid: &str) -> bool {
    (1..=32).contains(&kid.len())
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

impl KeyRing {
    /// Parses `secret` (one key, its id derived from it) or `kid:secret,kid2:secret2` (the
    /// first signs; the others only verify, while tokens they made expire). Errors name the
    /// problem without echoing any secret.
    pub fn parse(raw: &str) -> Result<KeyRing, String> {
        let entries: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err("CAMPUS_JWT_SECRET is empty".into());
        }
        let mut keys: Vec<MasterKey> = Vec::new();
        for entry in &entries {
            let (kid, secret) = match entry.split_once(':') {
                Some((kid, secret)) if valid_kid(kid) => (Some(kid.to_string()), secret),
                _ if entries.len() == 1 => (None, *entry),
                _ => {
                    return Err(
                        "CAMPUS_JWT_SECRET: a list of keys is written kid:secret,kid:secret \
                         (key ids of 1 to 32 letters, digits, - or _)"
                            .into(),
                    )
                }
            };
            if secret.chars().count() < MIN_SECRET_LEN {
                return Err(format!(
                    "CAMPUS_JWT_SECRET: every secret must have at least {MIN_SECRET_LEN} characters"
                ));
            }
            let secret = secret.as_bytes().to_vec();
            let kid = kid.unwrap_or_else(|| format!("k{}", &fingerprint(&secret)[..8]));
            if keys.iter().any(|k| k.kid == kid) {
                return Err(format!("CAMPUS_JWT_SECRET: the key id {kid} appears twice"));
            }
            keys.push(MasterKey { kid, secret });
        }
        Ok(KeyRing {
            keys: Arc::new(keys),
        })
    }

    /// A new random master key in the form [`KeyRing::parse`] reads (256 random bits).
    pub fn generate() -> String {
        use rand::RngCore;
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        hex::encode(raw)
    }

    /// The id of the key that signs and seals.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// The `purpose` key of every master, the signing one first.
    pub fn derive(&self, purpose: Purpose) -> Vec<DerivedKey> {
        self.keys
            .iter()
            .map(|k| {
                let mut bytes = [0u8; 32];
                Hkdf::<Sha256>::new(Some(b"campus"), &k.secret)
                    .expand(purpose.info(), &mut bytes)
                    .expect("32 bytes is a valid HKDF-SHA256 output length");
                DerivedKey {
                    kid: k.kid.clone(),
                    bytes,
                }
            })
            .collect()
    }

    /// `(kid, fingerprint)` of every master: a one-way value (HKDF with its own label) that
    /// tells keys apart without revealing them.
    pub fn fingerprints(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .map(|k| (k.kid.clone(), fingerprint(&k.secret)))
            .collect()
    }
}

fn fingerprint(secret: &[u8]) -> String {
    let mut out = [0u8; 16];
    Hkdf::<Sha256>::new(Some(b"campus"), secret)
        .expand(b"campus/key-fingerprint/v1", &mut out)
        .expect("16 bytes is a valid HKDF-SHA256 output length");
    hex::encode(out)
}

/// The master key kept in `path` (created with mode 0600 on first use), for setups without
/// `CAMPUS_JWT_SECRET`. Several processes starting at once all end up with the same key.
pub fn load_or_create_key_file(path: &Path) -> Result<String, String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))
    };
    if path.exists() {
        return read(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    crate::files::create_private_once(path, &KeyRing::generate())
        .map_err(|e| format!("cannot create the key file {}: {e}", path.display()))?;
    read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_secret_gets_an_id_derived_from_it() {
        let a = KeyRing::parse("0123456789abcdef0123").unwrap();
        let b = KeyRing::parse("another-secret-of-enough-length").unwrap();
        assert!(a.signing_kid().starts_with('k'));
        assert_ne!(a.signing_kid(), b.signing_kid());
        assert_eq!(
            a.signing_kid(),
            KeyRing::parse("0123456789abcdef0123")
                .unwrap()
                .signing_kid()
        );
    }

    #[test]
    fn lists_name_their_keys_and_the_first_signs() {
        let ring = KeyRing::parse("new:0123456789abcdef0123, old:fedcba9876543210fedc").unwrap();
        assert_eq!(ring.signing_kid(), "new");
        let kids: Vec<_> = ring.fingerprints().into_iter().map(|(k, _)| k).collect();
        assert_eq!(kids, ["new", "old"]);
    }

    #[test]
    fn bad_key_lists_are_refused_without_echoing_secrets() {
        for raw in [
            "",
            "short",
            "a:0123456789abcdef0123,0123456789abcdef0123",
            "a:0123456789abcdef0123,a:fedcba9876543210fedc",
            "a:short,b:0123456789abcdef0123",
        ] {
            let err = KeyRing::parse(raw).unwrap_err();
            assert!(!err.contains("0123456789abcdef"), "{err}");
        }
    }

    #[test]
    fn purposes_get_different_keys_and_none_is_the_secret() {
        let secret = "0123456789abcdef0123456789abcdef";
        let ring = KeyRing::parse(secret).unwrap();
        let jwt = &ring.derive(Purpose::AccessTokens)[0];
        let seal = &ring.derive(Purpose::TokenSealing)[0];
        assert_ne!(jwt.bytes, seal.bytes);
        assert_ne!(&jwt.bytes[..], &secret.as_bytes()[..32]);
        assert_eq!(jwt.kid, ring.signing_kid());
    }

    #[test]
    fn the_key_file_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("campus-keys-{}", uuid::Uuid::new_v4()));
        let path = dir.join("master.key");
        let first = load_or_create_key_file(&path).unwrap();
        assert!(KeyRing::parse(&first).is_ok());
        assert_eq!(load_or_create_key_file(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
