//! Starting and running Campus: one [`Application`], built from the settings and run until a
//! shutdown signal, used by the `campus` binary (`serve`, `api`, `daemon`) and by the tests'
//! `TestApp`. The wiring itself (adapters into services) is [`Campus::start`]'s.

use crate::config::Settings;
use crate::engine::Registry;
use crate::Campus;
use std::net::TcpListener;
use std::sync::Arc;
use tokio::sync::watch;

/// What one process runs: the HTTP API, the daemon, or both (`campus serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub daemon: bool,
}

impl Roles {
    /// `campus serve`: the API and the daemon in one process.
    pub const SERVE: Roles = Roles {
        api: true,
        daemon: true,
    };
    /// `campus api`.
    pub const API: Roles = Roles {
        api: true,
        daemon: false,
    };
    /// `campus daemon`.
    pub const DAEMON: Roles = Roles {
        api: false,
        daemon: true,
    };
}

/// A started Campus, not yet serving: its wiring, the API's bound listener and the daemon's
/// handlers.
pub struct Application {
    campus: Arc<Campus>,
    listener: Option<TcpListener>,
    registry: Option<Registry>,
}

impl Application {
    /// Starts Campus with `settings` (database, migrations, keys, services; see
    /// [`Campus::start`]), binds the API's address when `roles.api` (so a busy port is an
    /// error now, not after a signal) and gives the daemon, when `roles.daemon`, the built-in
    /// handlers.
    pub async fn build(settings: Settings, roles: Roles) -> Result<Application, String> {
        let campus = Campus::start(settings).await?;
        let listener = if roles.api {
            let addr = campus.settings.addr;
            Some(TcpListener::bind(addr).map_err(|e| {
                format!("cannot listen on {addr}: {e} (another process uses it? set CAMPUS_ADDR)")
            })?)
        } else {
            None
        };
        let registry = roles.daemon.then(|| campus.default_registry());
        Ok(Application::assemble(campus, listener, registry))
    }

    /// Starts Campus with `settings`, serving the API on `listener` (already bound by the
    /// caller, e.g. on port 0; `settings.addr` should be its address) and running a daemon
    /// with the handlers `registry` builds.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        registry: impl FnOnce(&Campus) -> Registry,
    ) -> Result<Application, String> {
        let campus = Campus::start(settings).await?;
        Ok(Self::with_listener(campus, listener, registry))
    }

    /// Like [`Application::build_with_listener`] on the in-memory adapters
    /// ([`Campus::in_memory`]): no database.
    pub async fn build_in_memory(
        settings: Settings,
        listener: TcpListener,
        registry: impl FnOnce(&Campus) -> Registry,
    ) -> Result<Application, String> {
        let campus = Campus::in_memory(settings).await?;
        Ok(Self::with_listener(campus, listener, registry))
    }

    fn with_listener(
        campus: Campus,
        listener: TcpListener,
        registry: impl FnOnce(&Campus) -> Registry,
    ) -> Application {
        let registry = registry(&campus);
        Application::assemble(campus, Some(listener), Some(registry))
    }

    fn assemble(
        campus: Campus,
        listener: Option<TcpListener>,
        registry: Option<Registry>,
    ) -> Application {
        Application {
            campus: Arc::new(campus),
            listener,
            registry,
        }
    }

    /// The wiring (settings, stores, services), shared with whoever needs it while it runs.
    pub fn campus(&self) -> &Arc<Campus> {
        &self.campus
    }

    /// The port the API listens on (`None` without the API).
    pub fn port(&self) -> Option<u16> {
        self.listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
            .map(|addr| addr.port())
    }

    /// Runs the daemon and serves the API until `shutdown` turns `true`; then lets requests
    /// and running tasks finish (see `Campus::serve_http` and the daemon's shutdown timeout)
    /// and stops the private PostgreSQL cluster if this process started one. Errors: the API
    /// could not serve on its listener.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), String> {
        let Application {
            campus,
            listener,
            registry,
        } = self;
        let probes = match (&listener, campus.settings.daemon_addr.0) {
            (None, Some(addr)) if registry.is_some() => probes(&campus, addr, shutdown.clone()),
            _ => None,
        };
        let daemon =
            registry.map(|registry| tokio::spawn(campus.daemon(registry).run(shutdown.clone())));
        let mut stop = shutdown;
        let served = match listener {
            Some(listener) => campus
                .serve_http(listener, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .map_err(|e| format!("cannot serve on {}: {e}", campus.settings.addr)),
            None => {
                let _ = stop.wait_for(|s| *s).await;
                Ok(())
            }
        };
        if let Some(daemon) = daemon {
            let _ = daemon.await;
        }
        if let Some(probes) = probes {
            let _ = probes.await;
        }
        if let Some(pg) = campus
            .postgres
            .as_ref()
            .and_then(|pg| pg.database.embedded.as_ref())
        {
            pg.stop();
        }
        served
    }
}

/// `campus daemon`'s own listener on `addr` (health and metrics) until `shutdown`. A busy
/// address is a warning, not a failure: several daemons may share a host.
fn probes(
    campus: &Campus,
    addr: std::net::SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let listener = match TcpListener::bind(addr).and_then(|l| {
        l.set_nonblocking(true)?;
        poem::listener::TcpAcceptor::from_std(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "the daemon's health and metrics listener is off (set CAMPUS_DAEMON_ADDR)");
            return None;
        }
    };
    tracing::info!(%addr, "daemon health and metrics at /health/live, /health/ready, /metrics");
    let routes = crate::routes::daemon_routes(campus.state.clone());
    Some(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(e) = poem::Server::new_with_acceptor(listener)
            .run_with_graceful_shutdown(routes, stop, Some(std::time::Duration::from_secs(2)))
            .await
        {
            tracing::warn!(error = %e, "the daemon's health and metrics listener stopped");
        }
    }))
}
