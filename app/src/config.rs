//! Configuration: every setting is an environment variable and a CLI flag, with defaults
//! that run Campus on a fresh machine with no configuration at all. The commands themselves
//! (and their own arguments, such as the bench's) belong to the CLI (`crate::cli`).

use campus_core::engine::retention::{RetentionWindows, TimeOfDay};
use campus_core::engine::{Priority, RetryPolicy};
use clap::{Args, Parser};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// PostgreSQL URL. Unset: a local server through its Unix-domain socket, else on
    /// localhost:5432 (database `campus`, created if missing), else a private cluster under the
    /// data directory.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Address the API listens on.
    #[arg(
        long,
        env = "CAMPUS_ADDR",
        global = true,
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,

    /// Where `campus daemon` answers `/health/live`, `/health/ready` and `/metrics` (`off`: it
    /// does not listen). `serve` and `api` answer them on the API's address.
    #[arg(long, env = "CAMPUS_DAEMON_ADDR", global = true, default_value = "127.0.0.1:9464", value_parser = parse_daemon_addr)]
    pub daemon_addr: DaemonAddr,

    /// Base URL of links in e-mails. Default: http:// + the listen address.
    #[arg(long, env = "CAMPUS_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// SMTP server as a lettre URL, e.g. smtp://127.0.0.1:2525 or smtps://user:pass@host.
    /// Unset: e-mails are written to the dev mailbox under the data directory.
    #[arg(long, env = "SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of e-mails.
    #[arg(
        long,
        env = "CAMPUS_MAIL_FROM",
        global = true,
        default_value = "Campus <no-reply@campus.localhost>"
    )]
    pub mail_from: String,

    /// Master secret (at least 16 characters), or `kid:secret,kid:secret` to rotate: the
    /// first signs access tokens and seals reset tokens, all verify and unseal; purpose keys
    /// are derived from it. Unset: a key generated once into `<data dir>/master.key` (fine on
    /// one machine; set it in production, where every API and daemon needs the same one).
    #[arg(long, env = "CAMPUS_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Refuse to start without CAMPUS_JWT_SECRET (instead of using a generated key file).
    #[arg(long, env = "CAMPUS_REQUIRE_SECRET", global = true, default_value_t = false, action = clap::ArgAction::Set)]
    pub require_secret: bool,

    /// Password of the demo users seeded into every new institution. Unset: demo users
    /// cannot log in (a published password would let any student act as a demo teacher).
    #[arg(
        long,
        env = "CAMPUS_DEMO_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub demo_password: Option<String>,

    /// Abuse limits, e.g. `login-ip=30/1m,login-account=10/10m,reset-ip=30/1h,
    /// reset-account=3/1h,signup-ip=10/1h` (those are the defaults; name only the ones to
    /// change; `name=off` or just `off` disables).
    #[arg(long, env = "CAMPUS_RATE_LIMITS", global = true, default_value = "", value_parser = crate::web::limits::RateLimits::parse)]
    pub rate_limits: crate::web::limits::RateLimits,

    /// Reverse proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For`
    /// names the client. Unset: the peer address is the client.
    #[arg(long, env = "CAMPUS_TRUSTED_PROXIES", global = true, default_value = "", value_parser = crate::web::limits::parse_proxies)]
    pub trusted_proxies: crate::web::limits::TrustedProxies,

    /// A user gets at most one reset link per this long (further requests are answered the
    /// same way but send nothing).
    #[arg(long, env = "CAMPUS_RESET_COOLDOWN", global = true, default_value = "5m", value_parser = parse_duration)]
    pub reset_cooldown: Duration,

    /// Succeeded tasks and dispatched events older than this move to the archive tables.
    #[arg(long, env = "CAMPUS_RETENTION_FINISHED", global = true, default_value = "1d", value_parser = parse_retention)]
    pub retention_finished: Duration,

    /// Dead and cancelled tasks and dead events older than this move to the archive tables.
    #[arg(long, env = "CAMPUS_RETENTION_DEAD", global = true, default_value = "30d", value_parser = parse_retention)]
    pub retention_dead: Duration,

    /// Local time of day of the daily archive run (on the maintenance leader).
    #[arg(long, env = "CAMPUS_ARCHIVE_AT", global = true, default_value = "00:00", value_parser = parse_time_of_day)]
    pub archive_at: TimeOfDay,

    /// Time zone of CAMPUS_ARCHIVE_AT (IANA name).
    #[arg(long, env = "CAMPUS_ARCHIVE_TZ", global = true, default_value = "UTC", value_parser = parse_zone)]
    pub archive_tz: chrono_tz::Tz,

    /// Longest a query of the admin screen or `/adm` API may run before it is cancelled.
    #[arg(long, env = "CAMPUS_ADMIN_QUERY_TIMEOUT", global = true, default_value = "5s", value_parser = parse_duration)]
    pub admin_query_timeout: Duration,

    /// HTTP connections silent for this long are closed (slow or abandoned clients).
    #[arg(long, env = "CAMPUS_IDLE_TIMEOUT", global = true, default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// HTTP connections one client address may hold open at once (trusted proxies excepted).
    #[arg(
        long,
        env = "CAMPUS_MAX_CONNECTIONS_PER_CLIENT",
        global = true,
        default_value_t = 64
    )]
    pub max_connections_per_client: usize,

    /// Admin list and summary requests one user may have running at once.
    #[arg(
        long,
        env = "CAMPUS_ADMIN_CONCURRENCY",
        global = true,
        default_value_t = 2
    )]
    pub admin_concurrency: usize,

    /// Prometheus metrics (`GET /metrics`): `on` or `off` (nothing is recorded).
    #[arg(long, env = "CAMPUS_METRICS", global = true, default_value = "on", value_parser = parse_switch)]
    pub metrics: bool,

    /// When set, `GET /metrics` requires `Authorization: Bearer <this token>`.
    #[arg(
        long,
        env = "CAMPUS_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// Webhook receivers allowed although their address is not public, or over http:
    /// comma-separated host names or CIDRs (e.g. `localhost,10.0.0.0/8`).
    #[arg(long, env = "CAMPUS_WEBHOOK_ALLOWED_HOSTS", global = true, default_value = "", value_parser = parse_allowed_hosts)]
    pub webhook_allowed_hosts: String,

    /// How long one webhook delivery attempt may take (connect, send, answer).
    #[arg(long, env = "CAMPUS_WEBHOOK_TIMEOUT", global = true, default_value = "15s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// The delay before each retry of a failed webhook delivery (comma-separated; as many
    /// retries as delays, each with ±10 % jitter).
    #[arg(long, env = "CAMPUS_WEBHOOK_RETRY_SCHEDULE", global = true, default_value = "0s,5s,5m,30m,2h,5h,10h,10h", value_parser = parse_schedule)]
    pub webhook_retry_schedule: RetrySchedule,

    /// A webhook subscription whose every delivery failed for this long is disabled (its
    /// institution's Academic users are told).
    #[arg(long, env = "CAMPUS_WEBHOOK_DISABLE_AFTER", global = true, default_value = "5d", value_parser = parse_retention)]
    pub webhook_disable_after: Duration,

    /// After a secret rotation, the old secret keeps signing (beside the new one) this long.
    #[arg(long, env = "CAMPUS_WEBHOOK_ROTATION_OVERLAP", global = true, default_value = "24h", value_parser = parse_retention)]
    pub webhook_rotation_overlap: Duration,

    /// A RabbitMQ broker (`amqp://user:pass@host:5672/%2f`) to publish every event
    /// institutions may receive by webhook to, on the durable topic exchange `campus.events`
    /// with routing key `<institution_id>.<EventType>`. Unset: nothing is published and
    /// nothing connects.
    #[arg(long, env = "CAMPUS_BUS_URL", global = true, hide_env_values = true, value_parser = parse_bus_url)]
    pub bus_url: Option<String>,

    /// With CAMPUS_ADMIN_PASSWORD: start-up makes sure an Adm user with these credentials exists.
    #[arg(long, env = "CAMPUS_ADMIN_EMAIL", global = true)]
    pub admin_email: Option<String>,

    /// Password of the Adm user (see CAMPUS_ADMIN_EMAIL).
    #[arg(
        long,
        env = "CAMPUS_ADMIN_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub admin_password: Option<String>,

    /// Directory for local state: the dev mailbox and, if needed, a private PostgreSQL cluster.
    #[arg(
        long,
        env = "CAMPUS_DATA_DIR",
        global = true,
        default_value = ".campus"
    )]
    pub data_dir: PathBuf,

    /// Tasks a daemon runs at once.
    #[arg(long, env = "CAMPUS_CONCURRENCY", global = true, default_value_t = 16)]
    pub concurrency: usize,

    /// Longest wait between two looks at the tables when no NOTIFY arrives (e.g. 500ms).
    #[arg(long, env = "CAMPUS_POLL_INTERVAL", global = true, default_value = "500ms", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Delay before the first retry of a failed task or event; doubles per attempt, with jitter.
    #[arg(long, env = "CAMPUS_RETRY_BASE", global = true, default_value = "5s", value_parser = parse_duration)]
    pub retry_base: Duration,

    /// Longest delay between retries.
    #[arg(long, env = "CAMPUS_RETRY_CAP", global = true, default_value = "1h", value_parser = parse_duration)]
    pub retry_cap: Duration,

    /// Attempts before a task or event is dead (the first attempt included).
    #[arg(long, env = "CAMPUS_MAX_ATTEMPTS", global = true, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_attempts: u32,

    /// On SIGTERM / Ctrl-C, how long a daemon waits for running tasks before interrupting them.
    #[arg(long, env = "CAMPUS_SHUTDOWN_TIMEOUT", global = true, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Connections of the database pool; the daemon's bookkeeping pool gets half as many,
    /// the admin screen's reads a quarter (at least 2). Size it to what the database can run
    /// at once, not to the request rate: on a 2-core PostgreSQL, 20 instead of 8 doubled the
    /// API's p99 at the same throughput, since the extra backends only queue on the cores and
    /// on each other's row locks (docs/PERFORMANCE.md).
    #[arg(long, env = "CAMPUS_DB_CONNECTIONS", global = true, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub db_connections: u32,

    /// How long a daemon's claim on a task lasts.
    #[arg(long, env = "CAMPUS_LEASE", global = true, default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,

    /// At most this many tasks of one institution run at once in one daemon. Unset: no cap;
    /// each claim still gives every institution with due work its share.
    #[arg(long, env = "CAMPUS_MAX_RUNNING_PER_INSTITUTION", global = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running_per_institution: Option<u32>,

    /// What one priority level is worth in waiting: a `normal` task waits this long behind
    /// `interactive` work that became due after it, a `bulk` task twice as long; after that it
    /// goes first (aging: nothing starves).
    #[arg(long, env = "CAMPUS_PRIORITY_LAG", global = true, default_value = "10s", value_parser = parse_duration)]
    pub priority_lag: Duration,

    /// Task types whose priority differs from their handler's, e.g.
    /// `notify_student_of_grade_note=bulk,seed_demo_data=normal` (interactive, normal or bulk).
    #[arg(long, env = "CAMPUS_TASK_PRIORITIES", global = true, default_value = "", value_parser = parse_priorities)]
    pub task_priorities: TaskPriorities,
}

/// `CAMPUS_TASK_PRIORITIES`: task type → priority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPriorities(pub Vec<(String, Priority)>);

fn parse_priorities(raw: &str) -> Result<TaskPriorities, String> {
    let mut pairs = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (task_type, priority) = item
            .split_once('=')
            .map(|(t, p)| (t.trim(), p.trim()))
            .filter(|(t, _)| !t.is_empty())
            .ok_or_else(|| format!("CAMPUS_TASK_PRIORITIES: {item:?} is not task_type=priority"))?;
        let priority = Priority::parse(priority).ok_or_else(|| {
            format!(
                "CAMPUS_TASK_PRIORITIES: {priority:?} (for {task_type}) is not interactive, normal or bulk"
            )
        })?;
        pairs.push((task_type.to_string(), priority));
    }
    Ok(TaskPriorities(pairs))
}

impl Settings {
    /// Defaults for embedding in tests: everything as with no configuration (environment
    /// variables still apply, as they do to the binary).
    pub fn defaults() -> Self {
        /// The settings alone, as the `campus` command line reads them.
        #[derive(Parser)]
        struct SettingsOnly {
            #[command(flatten)]
            settings: Settings,
        }
        SettingsOnly::parse_from(["campus"]).settings
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
            .trim_end_matches('/')
            .to_string()
    }

    /// The UTC offset of `CAMPUS_ARCHIVE_TZ` at an instant, in milliseconds east.
    pub fn zone_offsets(
        &self,
    ) -> std::sync::Arc<dyn Fn(campus_core::Timestamp) -> i64 + Send + Sync> {
        use chrono::{Offset, TimeZone};
        let zone = self.archive_tz;
        std::sync::Arc::new(move |t: campus_core::Timestamp| {
            let utc = chrono::DateTime::from_timestamp_millis(t.0).unwrap_or_default();
            i64::from(
                zone.offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ) * 1000
        })
    }

    pub fn retention(&self) -> RetentionWindows {
        RetentionWindows {
            finished: self.retention_finished,
            dead: self.retention_dead,
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            base: self.retry_base,
            cap: self.retry_cap.max(self.retry_base),
            max_attempts: self.max_attempts,
        }
    }
}

/// Parses durations written like `250ms`, `5s`, `2m`, `1h`, with humantime; several parts
/// (`1h 30m`) and fractions (`1.5s`) work too. Only those four units are accepted, as before
/// (`1d`, `5 days` are refused: rate limits use this syntax too), every number needs one, and
/// values too large for a `Duration` are refused instead of wrapping.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    parse_units(
        raw,
        &["ms", "s", "m", "h"],
        "a duration like 250ms, 5s, 2m or 1h",
    )
}

/// `CAMPUS_WEBHOOK_RETRY_SCHEDULE`: the delays before each retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

/// Comma-separated durations (`0s,5s,5m`); at least one.
pub fn parse_schedule(raw: &str) -> Result<RetrySchedule, String> {
    let delays = raw
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            parse_units(
                d,
                &["ms", "s", "m", "h"],
                "a duration like 0s, 5s, 5m or 2h",
            )
            .map_err(|e| format!("CAMPUS_WEBHOOK_RETRY_SCHEDULE: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if delays.is_empty() {
        return Err("CAMPUS_WEBHOOK_RETRY_SCHEDULE: give at least one delay, like 0s,5s,5m".into());
    }
    Ok(RetrySchedule(delays))
}

/// `CAMPUS_WEBHOOK_ALLOWED_HOSTS`, checked here and parsed where the sender is built.
pub fn parse_bus_url(raw: &str) -> Result<String, String> {
    if raw.starts_with("amqp://") || raw.starts_with("amqps://") {
        Ok(raw.to_string())
    } else {
        Err("give an AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f".into())
    }
}

fn parse_allowed_hosts(raw: &str) -> Result<String, String> {
    campus_adapters::webhooks::sender::AllowedHosts::parse(raw)
        .map(|_| raw.to_string())
        .map_err(|e| format!("CAMPUS_WEBHOOK_ALLOWED_HOSTS: {e}"))
}

/// Retention windows: like [`parse_duration`], with days too (`1d`, `30d`, `1d 12h`).
pub fn parse_retention(raw: &str) -> Result<Duration, String> {
    parse_units(
        raw,
        &["ms", "s", "m", "h", "d"],
        "a duration like 12h, 1d or 30d",
    )
}

fn parse_units(raw: &str, allowed: &[&str], example: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let units: Vec<&str> = raw
        .split(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
        .filter(|unit| !unit.is_empty())
        .collect();
    if units.is_empty() || units.iter().any(|unit| !allowed.contains(unit)) {
        return Err(format!(
            "{raw:?} is not {example} (units: {})",
            allowed.join(", ")
        ));
    }
    humantime::parse_duration(raw).map_err(|e| format!("{raw:?} is not {example}: {e}"))
}

/// `CAMPUS_ARCHIVE_AT`: `HH:MM` on a 24-hour clock.
pub fn parse_time_of_day(raw: &str) -> Result<TimeOfDay, String> {
    TimeOfDay::parse(raw).ok_or_else(|| {
        format!("CAMPUS_ARCHIVE_AT: {raw:?} is not a time of day like 00:00 or 23:30")
    })
}

/// `CAMPUS_ARCHIVE_TZ`: an IANA time zone.
/// `CAMPUS_DAEMON_ADDR`: an address, or `off` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonAddr(pub Option<SocketAddr>);

/// An address, or `off`.
pub fn parse_daemon_addr(raw: &str) -> Result<DaemonAddr, String> {
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(DaemonAddr(None));
    }
    raw.trim()
        .parse()
        .map(|a| DaemonAddr(Some(a)))
        .map_err(|_| format!("{raw:?} is neither an address such as 127.0.0.1:9464 nor `off`"))
}

/// `on` or `off` (also `true`/`false`, `1`/`0`).
pub fn parse_switch(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{raw:?} is neither `on` nor `off`")),
    }
}

pub fn parse_zone(raw: &str) -> Result<chrono_tz::Tz, String> {
    raw.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!("CAMPUS_ARCHIVE_TZ: {raw:?} is not an IANA time zone like UTC, Europe/Lisbon or America/Sao_Paulo")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn huge_durations_are_refused_not_wrapped() {
        // 2^64 / 3600 hours and more used to overflow the multiplication.
        let huge = format!("{}h", u64::MAX / 3600 + 1);
        let refused = parse_duration(&huge).expect_err("too large for a Duration");
        assert!(refused.contains("too large"), "{refused}");
        assert_eq!(
            parse_duration("5124095576030431h").unwrap(),
            Duration::from_secs(5_124_095_576_030_431 * 3600)
        );
    }

    #[test]
    fn humantime_forms_are_accepted() {
        assert_eq!(
            parse_duration(" 1h 30m ").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for other_unit in ["1d", "2days", "1w", "0", "5 days", "3M"] {
            assert!(parse_duration(other_unit).is_err(), "{other_unit}");
        }
    }

    #[test]
    fn retention_windows_take_days() {
        assert_eq!(parse_retention("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_retention("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_retention("1d 12h").unwrap(),
            Duration::from_secs(129_600)
        );
        for bad in ["30", "1w", "forever", "-1d"] {
            let refused = parse_retention(bad).expect_err(bad);
            assert!(refused.contains("like 12h, 1d or 30d"), "{refused}");
        }
        let s = Settings::defaults();
        assert_eq!(s.retention(), RetentionWindows::default());
    }

    #[test]
    fn the_archive_schedule_names_its_variables_when_refused() {
        assert_eq!(parse_time_of_day("23:30").unwrap().to_string(), "23:30");
        let bad_time = parse_time_of_day("25:00").unwrap_err();
        assert!(bad_time.starts_with("CAMPUS_ARCHIVE_AT:") && bad_time.contains("00:00"));
        assert_eq!(
            parse_priorities(" seed_demo_data = normal,x=bulk ,")
                .unwrap()
                .0,
            [
                ("seed_demo_data".to_string(), Priority::Normal),
                ("x".to_string(), Priority::Bulk)
            ]
        );
        assert_eq!(parse_priorities("").unwrap().0, []);
        let bad_priority = parse_priorities("x=urgent").unwrap_err();
        assert!(
            bad_priority.contains("interactive, normal or bulk"),
            "{bad_priority}"
        );
        assert!(parse_priorities("=bulk")
            .unwrap_err()
            .contains("task_type=priority"));
        assert_eq!(
            parse_zone("America/Sao_Paulo").unwrap(),
            chrono_tz::America::Sao_Paulo
        );
        let bad_zone = parse_zone("Mars/Olympus").unwrap_err();
        assert!(bad_zone.starts_with("CAMPUS_ARCHIVE_TZ:") && bad_zone.contains("Europe/Lisbon"));
        let s = Settings::defaults();
        assert_eq!(
            (s.archive_at, s.archive_tz),
            (TimeOfDay::MIDNIGHT, chrono_tz::UTC)
        );
        // The zone's offsets, as the schedule reads them: Lisbon is UTC+1 in summer.
        let offset = s.zone_offsets();
        assert_eq!(offset(campus_core::Timestamp(1_750_000_000_000)), 0);
        let lisbon = Settings {
            archive_tz: chrono_tz::Europe::Lisbon,
            ..Settings::defaults()
        };
        assert_eq!(
            (lisbon.zone_offsets())(campus_core::Timestamp(1_750_000_000_000)),
            3_600_000
        );
    }

    #[test]
    fn defaults_need_no_configuration() {
        let s = Settings::defaults();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url(), "http://127.0.0.1:8080");
        assert_eq!(s.retry_policy().max_attempts, 5);
    }
}
