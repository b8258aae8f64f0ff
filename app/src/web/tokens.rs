//! Access tokens (JWT, HS256): what they say about their bearer, and the keys that sign and
//! verify them (derived from the master key, named by their `kid` so keys rotate).

use super::error::ApiError;
use campus_adapters::keys::{KeyRing, Purpose};
use campus_core::ids::{InstitutionId, UserId};
use campus_core::user::User;
use campus_core::values::Role;
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a token says about its bearer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: uuid::Uuid,
    pub role: String,
    /// The user's institution (absent for Adm).
    pub inst: Option<uuid::Uuid>,
    /// The user's access version when the token was issued; a password change bumps it,
    /// which revokes the token.
    pub ver: i64,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn user_id(&self) -> UserId {
        UserId(self.sub.as_u128())
    }

    pub fn role(&self) -> Option<Role> {
        Role::parse(&self.role)
    }

    /// Which institutions an operator reaches: all (`None`) for Adm, their own for Academic;
    /// 403 for anyone else.
    pub fn operator_scope(&self) -> Result<Option<InstitutionId>, ApiError> {
        match (self.role(), self.inst) {
            (Some(Role::Adm), _) => Ok(None),
            (Some(Role::Academic), Some(inst)) => Ok(Some(InstitutionId(inst.as_u128()))),
            _ => Err(ApiError::forbidden(
                "this endpoint is for Adm and Academic users",
            )),
        }
    }

    /// The institution of a user with `role`; 403 for anyone else.
    pub fn institution_as(&self, role: Role) -> Result<InstitutionId, ApiError> {
        match (self.role(), self.inst) {
            (Some(r), Some(inst)) if r == role => Ok(InstitutionId(inst.as_u128())),
            _ => Err(ApiError::forbidden(format!(
                "this endpoint is for {} users",
                role.as_str()
            ))),
        }
    }
}

/// Signs tokens with the access-token key of the current master key (its id in the `kid`
/// header) and verifies them with the key their `kid` names.
#[derive(Clone)]
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: Vec<(String, DecodingKey)>,
    pub ttl: Duration,
}

impl JwtKeys {
    pub fn new(keys: &KeyRing, ttl: Duration) -> Self {
        let derived = keys.derive(Purpose::AccessTokens);
        JwtKeys {
            kid: derived[0].kid.clone(),
            encoding: EncodingKey::from_secret(&derived[0].bytes),
            decoding: derived
                .iter()
                .map(|k| (k.kid.clone(), DecodingKey::from_secret(&k.bytes)))
                .collect(),
            ttl,
        }
    }

    /// The id of the key that signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A token for `user` at access version `version`.
    pub fn issue(&self, user: &User, version: i64) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: uuid::Uuid::from_u128(user.id.0),
            role: user.role.as_str().to_string(),
            inst: user.institution_id.map(|i| uuid::Uuid::from_u128(i.0)),
            ver: version,
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(3600),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        encode(&header, &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "cannot sign a token");
            ApiError::unavailable("cannot issue a token")
        })
    }

    /// The claims of a token signed by one of our keys and not expired (the access version is
    /// checked by the caller, against the database).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let kid = decode_header(token).ok()?.kid?;
        let (_, key) = self.decoding.iter().find(|(k, _)| *k == kid)?;
        decode::<Claims>(token, key, &Validation::new(Algorithm::HS256))
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::ids::UserId;
    use campus_core::user::PasswordHash;
    use campus_core::values::{Email, Name};

    fn user() -> User {
        User::restore(
            UserId(7),
            None,
            Role::Adm,
            Name::parse("n", "Ada").unwrap(),
            Email::parse("ada@x.org").unwrap(),
            PasswordHash("h".into()),
        )
    }

    fn keys(raw: &str) -> JwtKeys {
        JwtKeys::new(&KeyRing::parse(raw).unwrap(), Duration::from_secs(60))
    }

    #[test]
    fn tokens_name_their_key_and_survive_a_rotation() {
        let old = keys("old:0123456789abcdef0123");
        let token = old.issue(&user(), 3).unwrap();
        assert_eq!(decode_header(&token).unwrap().kid.as_deref(), Some("old"));
        assert_eq!(old.verify(&token).unwrap().ver, 3);
        let rotated = keys("new:fedcba9876543210fedc,old:0123456789abcdef0123");
        assert!(rotated.verify(&token).is_some());
        let fresh = rotated.issue(&user(), 3).unwrap();
        assert_eq!(decode_header(&fresh).unwrap().kid.as_deref(), Some("new"));
        assert!(old.verify(&fresh).is_none());
        assert!(keys("old:fedcba9876543210fedc").verify(&token).is_none());
    }

    /// Before keys were derived per purpose, the configured secret itself signed tokens:
    /// such a token (or one forged with the secret read from a backup) is refused.
    #[test]
    fn a_token_signed_with_the_raw_secret_is_refused() {
        let secret = "0123456789abcdef0123";
        let k = keys(&format!("k1:{secret}"));
        let claims = Claims {
            sub: uuid::Uuid::from_u128(7),
            role: "adm".into(),
            inst: None,
            ver: 0,
            iat: chrono::Utc::now().timestamp(),
            exp: chrono::Utc::now().timestamp() + 60,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let forged = encode(
            &header,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert!(k.verify(&forged).is_none());
        let no_kid = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert!(k.verify(&no_kid).is_none());
    }
}
