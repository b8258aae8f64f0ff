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
        Ok(Some(version)) if version == claims.ver => {
            if let Some(user) = req.extensions().get::<crate::web::metrics::RequestUser>() {
                user.set(claims.sub);
            }
            Some(claims)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check an access token's version");
            None
        }
    }
}

impl BearerAuth {
    /// The event context of what this user's request records: its correlation id, and the
    /// user as the actor.
    pub fn context(&self, req: &Request) -> campus_ports::EventContext {
        campus_ports::EventContext {
            actor_id: Some(self.0.user_id()),
            ..crate::web::request::event_context(req)
        }
    }
}
