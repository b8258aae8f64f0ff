//! Wiring: connects the adapters to the ports, and starts the API and the daemon.
//! `start_up` owns what a person meets on the first start (the default Adm user, the banner).

mod start_up;

pub use start_up::{AdmPassword, DEFAULT_ADM_EMAIL};

use crate::api::listener::CappedAcceptor;
use crate::config::Settings;
use crate::engine::{Daemon, DaemonConfig, DaemonHealth, Daily, Registry, Schedule, TaskOptions};
use crate::handlers::webhooks::{SubscribedTypes, WebhookDeps, WebhookPolicy};
use crate::handlers::{self, HandlerDeps};
use crate::services::archive::{ArchiveService, DEFAULT_BATCH};
use crate::services::{
    AcademicService, AccountService, OperationsService, SessionService, WebhookService,
};
use crate::web::limits::Limiter;
use crate::web::live::LiveHub;
use crate::web::tokens::JwtKeys;
use crate::web::{self, AppState};
use campus_adapters::keys::Purpose;
use campus_adapters::keys::{load_or_create_key_file, KeyRing};
use campus_adapters::mail::{DevMailbox, SmtpMailer};
use campus_adapters::memory::MemoryStore;
use campus_adapters::pg::cluster::{self, redact_url, DatabaseSource, ResolvedDatabase};
use campus_adapters::pg::{
    self, notify::NOTIFY_WINDOW, Notifier, PgLeaderLock, PgStore, PgWakeUps,
};
use campus_adapters::security::{Argon2Hasher, SecretVault, SystemClock, UuidV7Ids};
use campus_adapters::webhooks::sender::{AllowedHosts, HttpWebhookSender};
use campus_ports::{
    AcademicRepository, Archive, DaemonRoster, DemoDataRepository, EngineLog, EventStore,
    LeaderLock, Mailer, NotificationRepository, PayloadIndex, QueueGauges, Readiness, SentEmailLog,
    SessionStore, TaskControl, TaskQueue, UserRepository, WakeUps, WebhookStore,
};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Where mail goes, for the start-up banner.
#[derive(Debug, Clone)]
pub enum MailTarget {
    Smtp(String),
    DevMailbox(std::path::PathBuf),
}

/// A wired Campus: everything the API and the daemon need.
pub struct Campus {
    pub settings: Settings,
    pub state: web::State,
    pub handler_deps: HandlerDeps,
    pub mail: MailTarget,
    /// The ports daemons run on.
    pub engine: EnginePorts,
    /// The database, unless Campus runs on the in-memory adapters ([`Campus::in_memory`]).
    pub postgres: Option<Postgres>,
}

/// What a daemon runs on: the event store and task queue for its bookkeeping, the leader lock
/// and the wake-up hints.
#[derive(Clone)]
pub struct EnginePorts {
    pub events: Arc<dyn EventStore>,
    pub tasks: Arc<dyn TaskQueue>,
    pub leader: Arc<dyn LeaderLock>,
    pub wake_ups: Arc<dyn WakeUps>,
    /// For the daily archive run.
    pub archive: Arc<dyn Archive>,
    /// The queues' depth, for the leader's gauges.
    pub gauges: Arc<dyn QueueGauges>,
    /// Where daemons record their heartbeats.
    pub roster: Arc<dyn DaemonRoster>,
    /// The search index of payload texts, which the leader keeps up to date.
    pub payloads: Arc<dyn PayloadIndex>,
}

/// The PostgreSQL side of a Campus on a database.
pub struct Postgres {
    pub database: ResolvedDatabase,
    pub pool: PgPool,
    pub store: PgStore,
    /// The same adapter over the engine's bookkeeping pool (`synchronous_commit = off`, see
    /// `campus_adapters::pg::connect_engine`); daemons use it for dispatch, claims and
    /// completions.
    pub engine_store: PgStore,
}

/// The adapters one Campus runs on: one set for requests, one for the operators' reads
/// (PostgreSQL gives them a pool with a statement timeout) and the daemons' ports.
struct Adapters<S> {
    api: S,
    admin: S,
    engine: EnginePorts,
}

/// The built-in handlers with the configured priorities. A route from an event nobody
/// records, to a task type nobody runs, or a priority for an unknown type stops the start.
fn built_in_registry(settings: &Settings, deps: &HandlerDeps) -> Result<Registry, String> {
    let registry = handlers::register(Registry::new(settings.max_attempts), deps)
        .prioritize(&settings.task_priorities.0)
        .map_err(|e| format!("CAMPUS_TASK_PRIORITIES: {e}"))?;
    registry
        .validate()
        .map_err(|e| format!("the handler registry is inconsistent: {e}"))?;
    Ok(registry)
}

impl Campus {
    /// Resolves and migrates the database, loads the shared secret, builds the services and
    /// makes sure the configured Adm user exists.
    pub async fn start(settings: Settings) -> Result<Campus, String> {
        let (database, pool) = migrated_database(&settings, settings.db_connections).await?;
        let notifier = Notifier::spawn(pool.clone(), NOTIFY_WINDOW);
        let store =
            PgStore::new(pool.clone(), notifier.clone()).with_priority_lag(settings.priority_lag);
        let engine_pool = pg::connect_engine(&database.url, (settings.db_connections / 2).max(1))
            .await
            .map_err(|e| e.to_string())?;
        let admin_pool = pg::connect_admin(
            &database.url,
            (settings.db_connections / 4).max(2),
            settings.admin_query_timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        let engine_store =
            PgStore::new(engine_pool, notifier.clone()).with_priority_lag(settings.priority_lag);
        let keys = master_keys(&settings, &database)?;
        store
            .check_key_fingerprints(&keys.fingerprints())
            .await
            .map_err(|e| e.to_string())?;
        let engine = Arc::new(engine_store.clone());
        let adapters = Adapters {
            api: store.clone(),
            admin: PgStore::new(admin_pool, notifier).with_priority_lag(settings.priority_lag),
            engine: EnginePorts {
                events: engine.clone(),
                tasks: engine.clone(),
                archive: engine.clone(),
                gauges: engine.clone(),
                payloads: engine.clone(),
                roster: engine,
                // A dedicated connection for the lock, LISTEN for the hints.
                leader: Arc::new(PgLeaderLock::new(engine_store.pool().clone())),
                wake_ups: Arc::new(PgWakeUps::new(pool.clone())),
            },
        };
        if settings.metrics {
            let admin = adapters.admin.pool().clone();
            let pools = [
                ("api", pool.clone()),
                ("engine", engine_store.pool().clone()),
                ("admin", admin),
            ];
            tokio::spawn(pool_gauges(pools));
        }
        let postgres = Postgres {
            database,
            pool,
            store,
            engine_store,
        };
        Self::assemble(settings, &keys, adapters, Some(postgres)).await
    }

    /// Campus on the in-memory adapters: nothing is kept once the process ends, and nothing
    /// but the mail settings leaves it (tests, demos). Keys come from `CAMPUS_JWT_SECRET` or
    /// are generated for this process.
    pub async fn in_memory(settings: Settings) -> Result<Campus, String> {
        let store = MemoryStore::with_system_clock();
        let keys = match &settings.jwt_secret {
            Some(raw) => KeyRing::parse(raw)?,
            None => KeyRing::parse(&KeyRing::generate())?,
        };
        let shared = Arc::new(store.clone());
        let adapters = Adapters {
            api: store.clone(),
            admin: store,
            engine: EnginePorts {
                events: shared.clone(),
                tasks: shared.clone(),
                archive: shared.clone(),
                gauges: shared.clone(),
                payloads: shared.clone(),
                roster: shared.clone(),
                leader: shared.clone(),
                wake_ups: shared,
            },
        };
        Self::assemble(settings, &keys, adapters, None).await
    }

    /// Builds the mailer, the services and the application state over `adapters` (`S`
    /// provides every port: PostgreSQL's `PgStore`, the in-memory `MemoryStore`), makes sure
    /// the configured Adm user exists and checks the handler registry.
    async fn assemble<S>(
        settings: Settings,
        keys: &KeyRing,
        adapters: Adapters<S>,
        postgres: Option<Postgres>,
    ) -> Result<Campus, String>
    where
        S: UserRepository
            + AcademicRepository
            + NotificationRepository
            + DemoDataRepository
            + SentEmailLog
            + SessionStore
            + EventStore
            + TaskQueue
            + EngineLog
            + TaskControl
            + Readiness
            + WebhookStore
            + 'static,
    {
        if settings.metrics {
            crate::metrics::install();
        }
        let (mailer, mail) = mailer(&settings)?;
        let Adapters { api, admin, engine } = adapters;
        let shared = Arc::new(api);
        let vault = Arc::new(SecretVault::new(keys));
        let hasher = Arc::new(Argon2Hasher::for_this_machine());
        let accounts = AccountService {
            users: shared.clone(),
            hasher: hasher.clone(),
            vault: vault.clone(),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7Ids),
            reset_cooldown: settings.reset_cooldown,
        };
        let academic = AcademicService {
            users: shared.clone(),
            academic: shared.clone(),
            notifications: shared.clone(),
            ids: Arc::new(UuidV7Ids),
        };
        ensure_configured_adm(&accounts, &settings).await?;
        let webhooks = WebhookDeps {
            store: shared.clone(),
            sender: Arc::new(HttpWebhookSender::new(
                settings.webhook_timeout,
                AllowedHosts::parse(&settings.webhook_allowed_hosts)?,
            )),
            vault: Arc::new(SecretVault::for_purpose(keys, Purpose::WebhookSecrets)),
            tasks: shared.clone(),
            clock: Arc::new(SystemClock),
            policy: WebhookPolicy {
                retry_schedule: settings.webhook_retry_schedule.0.clone(),
                rotation_overlap: settings.webhook_rotation_overlap,
                timeout: settings.webhook_timeout,
                disable_after: settings.webhook_disable_after,
            },
            subscribed: SubscribedTypes::default(),
            users: shared.clone(),
            notifications: shared.clone(),
            ids: Arc::new(UuidV7Ids),
        };
        // Loaded before any daemon plans an event, then kept fresh.
        webhooks.subscribed.refresh(webhooks.store.as_ref()).await;
        webhooks.subscribed.keep_fresh(webhooks.store.clone());
        let handler_deps = HandlerDeps {
            users: shared.clone(),
            academic: shared.clone(),
            notifications: shared.clone(),
            demo: shared.clone(),
            sent_emails: shared.clone(),
            mailer,
            vault: vault.clone(),
            hasher,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7Ids),
            public_url: settings.public_url(),
            demo_password: settings.demo_password.clone(),
            webhooks: webhooks.clone(),
            bus: event_bus(&settings)?,
        };
        // A route from an event nobody records, or to a task type nobody runs, stops the start.
        let registry = built_in_registry(&settings, &handler_deps)?;
        let task_types: Arc<Vec<(String, TaskOptions)>> = Arc::new(registry.task_types());
        let sessions = SessionService {
            accounts: accounts.clone(),
            sessions: shared.clone(),
            vault,
            clock: Arc::new(SystemClock),
        };
        let admin = Arc::new(admin);
        let state = Arc::new(AppState {
            sessions,
            live: LiveHub::new(engine.wake_ups.clone()),
            secure_cookies: settings.public_url().starts_with("https://"),
            accounts,
            academic,
            operations: OperationsService {
                events: admin.clone(),
                tasks: admin.clone(),
                log: admin,
                controls: shared.clone(),
                task_types,
            },
            jwt: JwtKeys::new(keys, Duration::from_secs(3600)),
            limiter: limiter(&settings),
            readiness: shared,
            webhooks: WebhookService { deps: webhooks },
            daemon: DaemonHealth::default(),
            metrics_token: settings.metrics_token.clone(),
        });
        Ok(Campus {
            settings,
            state,
            handler_deps,
            mail,
            engine,
            postgres,
        })
    }

    /// The built-in handlers (the three seed flows), as validated by [`Campus::start`].
    pub fn default_registry(&self) -> Registry {
        built_in_registry(&self.settings, &self.handler_deps)
            .expect("the same registry was validated when Campus started")
    }

    /// A daemon with `registry` on the engine's ports, tuned by the settings.
    pub fn daemon(&self, registry: Registry) -> Daemon {
        // Not the leader until the maintenance loop wins the lock: the gauge exists from the
        // first scrape of `/metrics`, before the first round trip to the database.
        metrics::gauge!(crate::metrics::LEADER).set(0.0);
        let EnginePorts {
            events,
            tasks,
            leader,
            wake_ups,
            archive,
            gauges,
            roster,
            payloads,
        } = self.engine.clone();
        let archive = Daily {
            job: Arc::new(ArchiveService {
                archive,
                windows: self.settings.retention(),
                batch: DEFAULT_BATCH,
            }),
            schedule: Schedule {
                at: self.settings.archive_at,
                offset_ms: self.settings.zone_offsets(),
                clock: Arc::new(SystemClock),
            },
        };
        Daemon {
            events,
            tasks,
            leader,
            wake_ups,
            registry: Arc::new(registry),
            config: DaemonConfig {
                concurrency: self.settings.concurrency.max(1),
                poll_interval: self.settings.poll_interval,
                lease: self.settings.lease,
                shutdown_timeout: self.settings.shutdown_timeout,
                retry: self.settings.retry_policy(),
                max_running_per_institution: self.settings.max_running_per_institution,
                ..DaemonConfig::default()
            },
            daily: vec![archive],
            gauges: self.settings.metrics.then_some(gauges),
            payloads: Some(payloads),
            roster,
            health: self.state.daemon.clone(),
        }
    }

    /// The HTTP application.
    pub fn http(&self) -> impl poem::Endpoint {
        crate::routes::routes(self.state.clone())
    }

    /// Serves the API on `listener` until `shutdown` completes (then lets requests finish for
    /// up to 10 s), closing idle connections after `CAMPUS_IDLE_TIMEOUT` and capping each
    /// client's open connections (see `api::listener`).
    pub fn serve_http(
        &self,
        listener: std::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        let state = self.state.clone();
        let app = self.http();
        let (idle, per_client, proxies) = (
            self.settings.idle_timeout,
            self.settings.max_connections_per_client,
            self.settings.trusted_proxies.clone(),
        );
        async move {
            listener.set_nonblocking(true)?;
            let acceptor = CappedAcceptor::new(
                poem::listener::TcpAcceptor::from_std(listener)?,
                per_client,
                idle,
                proxies,
            );
            poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    app,
                    async move {
                        shutdown.await;
                        state.live.stop();
                    },
                    Some(Duration::from_secs(10)),
                )
                .await
        }
    }
}

/// With `CAMPUS_ADMIN_EMAIL` and `CAMPUS_ADMIN_PASSWORD`: that Adm user exists.
async fn ensure_configured_adm(
    accounts: &AccountService,
    settings: &Settings,
) -> Result<(), String> {
    if let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) {
        accounts
            .ensure_adm(email, password)
            .await
            .map_err(|e| format!("cannot set up the Adm user: {e}"))?;
    }
    Ok(())
}

/// The abuse limits the settings ask for.
fn limiter(settings: &Settings) -> Limiter {
    Limiter::new(
        &settings.rate_limits,
        settings.trusted_proxies.clone(),
        settings.admin_concurrency,
    )
}

/// SMTP when `SMTP_URL` is set, else the dev mailbox under the data directory.
fn mailer(settings: &Settings) -> Result<(Arc<dyn Mailer>, MailTarget), String> {
    Ok(match &settings.smtp_url {
        Some(url) => (
            Arc::new(SmtpMailer::new(url, &settings.mail_from)?),
            MailTarget::Smtp(redact_url(url)),
        ),
        None => {
            let dir = settings.data_dir.join("mailbox");
            (
                Arc::new(DevMailbox::new(&dir, &settings.mail_from)?),
                MailTarget::DevMailbox(dir),
            )
        }
    })
}

/// Resolves the database (see `campus_adapters::pg::cluster::resolve`), opens a pool of `connections` on it
/// (some opened at once: `pg::connect_warm`) and applies the pending migrations.
pub async fn migrated_database(
    settings: &Settings,
    connections: u32,
) -> Result<(ResolvedDatabase, PgPool), String> {
    let database = cluster::resolve(settings.database_url.as_deref(), &settings.data_dir)
        .await
        .map_err(|e| e.to_string())?;
    let pool = pg::connect_warm(&database.url, connections)
        .await
        .map_err(|e| e.to_string())?;
    pg::migrate(&pool).await.map_err(|e| e.to_string())?;
    Ok((database, pool))
}

/// The master keys: `CAMPUS_JWT_SECRET`, else the key file under the data directory, which
/// is fine for the local defaults but warned about loudly (or refused, with
/// `CAMPUS_REQUIRE_SECRET`) once Campus runs against a configured database.
fn master_keys(settings: &Settings, database: &ResolvedDatabase) -> Result<KeyRing, String> {
    if let Some(raw) = &settings.jwt_secret {
        return KeyRing::parse(raw);
    }
    if settings.require_secret {
        return Err(
            "CAMPUS_REQUIRE_SECRET is set but CAMPUS_JWT_SECRET is not: set CAMPUS_JWT_SECRET \
             to a random secret of at least 16 characters (e.g. `openssl rand -hex 32`), the \
             same for every API and daemon"
                .into(),
        );
    }
    let path = settings.data_dir.join("master.key");
    if matches!(database.source, DatabaseSource::Configured) {
        tracing::warn!(
            key_file = %path.display(),
            "CAMPUS_JWT_SECRET is not set: access tokens and reset links are protected by a key \
             generated into the key file. Every API and daemon on this database needs the same \
             key; set CAMPUS_JWT_SECRET in production (and CAMPUS_REQUIRE_SECRET=true to make \
             its absence an error)"
        );
    }
    KeyRing::parse(&load_or_create_key_file(&path)?)
}

/// Every few seconds, the connections of each pool in use and idle (`campus_db_pool_connections`),
/// for as long as the pools are open.
async fn pool_gauges<const N: usize>(pools: [(&'static str, sqlx::PgPool); N]) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        if pools.iter().all(|(_, p)| p.is_closed()) {
            return;
        }
        for (name, p) in &pools {
            let idle = p.num_idle() as f64;
            let open = f64::from(p.size());
            let gauge = |state: &'static str| metrics::gauge!(crate::metrics::POOL_CONNECTIONS, "pool" => *name, "state" => state);
            gauge("idle").set(idle);
            gauge("in_use").set((open - idle).max(0.0));
        }
    }
}

/// The bus of `CAMPUS_BUS_URL`, if set: nothing connects until the first publish.
fn event_bus(settings: &Settings) -> Result<Option<Arc<dyn campus_ports::EventBus>>, String> {
    let Some(url) = &settings.bus_url else {
        return Ok(None);
    };
    let bus = campus_adapters::bus::rabbitmq::RabbitBus::new(url)
        .map_err(|e| format!("CAMPUS_BUS_URL: {e}"))?;
    tracing::info!(endpoint = %bus.endpoint(), "events are published to the bus");
    Ok(Some(Arc::new(bus)))
}
