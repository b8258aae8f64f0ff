//! Bearer tokens (JWT, HS256) and the role checks of the API.

use super::error::{ApiError, ErrorBody};
use campus_core::ids::{InstitutionId, UserId};
use campus_core::user::User;
use campus_core::values::Role;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;
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

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl,
        }
    }

    pub fn issue(&self, user: &User) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: uuid::Uuid::from_u128(user.id.0),
            role: user.role.as_str().to_string(),
            inst: user.institution_id.map(|i| uuid::Uuid::from_u128(i.0)),
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(3600),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "cannot sign a token");
            ApiError::Unavailable(ErrorBody::new("unavailable", "cannot issue a token"))
        })
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        decode::<Claims>(token, &self.decoding, &Validation::new(Algorithm::HS256))
            .ok()
            .map(|d| d.claims)
    }
}

/// `Authorization: Bearer <access_token>` from `POST /auth/login`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Claims);

async fn check_bearer(req: &Request, bearer: Bearer) -> Option<Claims> {
    req.data::<JwtKeys>()?.verify(&bearer.token)
}
