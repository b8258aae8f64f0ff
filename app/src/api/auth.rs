//! The API's bearer authentication: a valid access token (see [`crate::web::tokens`]) whose
//! access version the user still has.

use crate::web::tokens::{Claims, JwtKeys};
use crate::web::State;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

/// `Authorization: Bearer <access_token>` from `POST /auth/login`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Claims);

/// A valid signature, and the access version the user still has (a password change since
/// the token was issued revokes it).
async fn check_bearer(req: &Request, bearer: Bearer) -> Option<Claims> {
    let claims = req.data::<JwtKeys>()?.verify(&bearer.token)?;
    let state = req.data::<State>()?;
    match state.accounts.users.access_version(claims.user_id()).await {
        Ok(Some(version)) if version == claims.ver => Some(claims),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check an access token's version");
            None
        }
    }
}
