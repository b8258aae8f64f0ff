//! What the HTTP API (`crate::api`) and the admin screen (`crate::admin`) share, so that
//! neither depends on the other: the application state, the request context (correlation
//! id, event context, client address and abuse limits), the HTTP error type, access tokens,
//! live updates and the headers of server-rendered pages. `crate::routes` mounts both.

pub mod error;
pub mod limits;
pub mod live;
pub mod methods;
pub mod metrics;
pub mod page;
pub mod request;
pub mod state;
pub mod tokens;

pub use request::event_context;
pub use state::{AppState, State};
