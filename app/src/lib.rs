//! The Campus application: HTTP API (`api`), admin screen (`admin`), what both share
//! (`web`) and the router over them (`routes`), daemon runtime, handlers of the seed flows,
//! configuration, wiring (`runtime`), start-up (`application`) and logs (`telemetry`). The
//! `campus` binary (`main.rs`, commands in `cli`) is a thin CLI over this.

pub mod admin;
pub mod api;
pub mod application;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cli;
pub mod config;
pub mod engine;
pub mod handlers;
pub mod metrics;
pub mod routes;
pub mod runtime;
pub mod services;
pub mod status;
pub mod telemetry;
pub mod web;

pub use application::Application;
pub use runtime::Campus;

/// Resolves to `true` on Ctrl-C or SIGTERM: the shutdown signal of every long-running command.
pub fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}
