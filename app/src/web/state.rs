//! The application state every endpoint of the API and every page of the admin screen reach:
//! the use-case services, the live-update hub, the token keys and the abuse limits.

use super::limits::Limiter;
use super::live::LiveHub;
use super::tokens::JwtKeys;
use crate::services::{AcademicService, AccountService, OperationsService, SessionService};
use std::sync::Arc;

/// What every endpoint and page can reach.
pub struct AppState {
    pub accounts: AccountService,
    pub academic: AcademicService,
    pub operations: OperationsService,
    /// Browser sessions of the admin screen.
    pub sessions: SessionService,
    /// Live updates of the admin screen.
    pub live: LiveHub,
    /// Whether cookies carry `Secure` (the public URL is https).
    pub secure_cookies: bool,
    pub jwt: JwtKeys,
    /// Abuse limits and the client address.
    pub limiter: Limiter,
    /// The readiness check of `/health/ready`.
    pub readiness: Arc<dyn campus_ports::Readiness>,
    /// Institutions' webhook subscriptions.
    pub webhooks: crate::services::WebhookService,
    /// The health of the daemon this process runs, if it runs one (also part of readiness).
    pub daemon: crate::engine::DaemonHealth,
    /// `CAMPUS_METRICS_TOKEN`: the bearer token `GET /metrics` requires, if any.
    pub metrics_token: Option<String>,
}

pub type State = Arc<AppState>;
