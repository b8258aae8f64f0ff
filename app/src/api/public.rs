//! Public endpoints: create an institution, log in, reset a password.

use crate::web::error::ApiError;
use crate::web::limits::Limit;
use crate::web::{event_context, State};
use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Institutions and accounts (no authentication).
    Public,
    /// An Academic user manages their institution.
    Academic,
    /// A Teacher grades students of their classes.
    Teacher,
    /// A Student reads their notifications.
    Student,
    /// Operators (Adm everywhere, Academic in their institution) reprocess events and tasks.
    Adm,
    /// Health checks.
    Ops,
}

#[derive(Object)]
pub struct AcademicUserRequest {
    pub name: String,
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
}

#[derive(Object)]
pub struct CreateInstitutionRequest {
    pub name: String,
    /// The institution's first Academic user.
    pub academic: AcademicUserRequest,
}

#[derive(Object)]
pub struct CreateInstitutionResponse {
    pub institution_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
}

#[derive(ApiResponse)]
pub enum InstitutionCreated {
    /// Created; `InstitutionCreated` was recorded (demo data follows asynchronously).
    #[oai(status = 201)]
    Created(Json<CreateInstitutionResponse>),
}

#[derive(Object)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Object)]
pub struct LoginResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

#[derive(Object)]
pub struct ResetPasswordTokenRequest {
    pub email: String,
}

#[derive(Object)]
pub struct ResetPasswordRequest {
    /// The token from the e-mailed link.
    pub token: String,
    /// The new password, 8 to 128 characters.
    pub password: String,
}

#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted. If the e-mail belongs to a user, a reset link is on its way.
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

pub struct PublicApi;

#[OpenApi(tag = "ApiTags::Public")]
impl PublicApi {
    /// Create an institution with its first Academic user
    #[oai(
        path = "/institutions",
        method = "post",
        operation_id = "createInstitution"
    )]
    async fn create_institution(
        &self,
        state: Data<&State>,
        req: &Request,
        body: Json<CreateInstitutionRequest>,
    ) -> Result<InstitutionCreated, ApiError> {
        state
            .limiter
            .check(Limit::SignupIp, &state.limiter.client(req))?;
        let b = body.0;
        let (institution, user) = state
            .accounts
            .create_institution(
                &b.name,
                &b.academic.name,
                &b.academic.email,
                &b.academic.password,
                &event_context(req),
            )
            .await?;
        Ok(InstitutionCreated::Created(Json(
            CreateInstitutionResponse {
                institution_id: uuid::Uuid::from_u128(institution.0),
                user_id: uuid::Uuid::from_u128(user.0),
            },
        )))
    }

    /// Log in and receive a bearer token
    #[oai(path = "/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&State>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Result<Json<LoginResponse>, ApiError> {
        state
            .limiter
            .check_both(req, Limit::LoginIp, Limit::LoginAccount, &body.email)?;
        let user = state.accounts.login(&body.email, &body.password).await?;
        let version = state.accounts.access_version(&user).await?;
        Ok(Json(LoginResponse {
            access_token: state.jwt.issue(&user, version)?,
            token_type: "Bearer".into(),
            expires_in: state.jwt.ttl.as_secs(),
        }))
    }

    /// Ask for a password reset link by e-mail
    ///
    /// Always 202 for a well-formed address: the answer never reveals whether it belongs to a
    /// user. For a user, a single-use token valid for one hour is created and
    /// `ResetPasswordTokenCreated` is recorded; a task e-mails the link. A user gets at most
    /// one link per `CAMPUS_RESET_COOLDOWN` (5 minutes by default); requests within it are
    /// answered the same way and send nothing.
    #[oai(
        path = "/auth/reset-password-token",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn reset_password_token(
        &self,
        state: Data<&State>,
        req: &Request,
        body: Json<ResetPasswordTokenRequest>,
    ) -> Result<Accepted, ApiError> {
        state
            .limiter
            .check_both(req, Limit::ResetIp, Limit::ResetAccount, &body.email)?;
        state
            .accounts
            .request_password_reset(&body.email, &event_context(req))
            .await?;
        Ok(Accepted::Accepted)
    }

    /// Set a new password with a reset token
    #[oai(
        path = "/auth/reset-password",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset_password(
        &self,
        state: Data<&State>,
        req: &Request,
        body: Json<ResetPasswordRequest>,
    ) -> Result<NoContent, ApiError> {
        state
            .accounts
            .reset_password(&body.token, &body.password, &event_context(req))
            .await?;
        Ok(NoContent::NoContent)
    }
}
