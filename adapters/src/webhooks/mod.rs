//! Webhook deliveries over HTTP: Standard Webhooks signatures and the sender with its
//! address safety rule.
//!
//! - `signature`: secrets (`whsec_…`), signing (`v1,…`, several during a rotation) and
//!   verifying as a receiver does.
//! - `sender`: [`HttpWebhookSender`], the reqwest implementation of the `WebhookSender`
//!   port, and [`AllowedHosts`] (`CAMPUS_WEBHOOK_ALLOWED_HOSTS`).

pub mod sender;
pub mod signature;

pub use sender::{AllowedHosts, HttpWebhookSender, ALLOWED_HOSTS_VAR};
pub use signature::{generate_secret, sign, signature_header, verify, SignatureError};
