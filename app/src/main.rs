//! The `campus` command line: `serve`, `api`, `daemon`, `migrate`, `archive`,
//! `index-payloads`, `status`, `consume`, `openapi` and,
//! with the `bench` feature (on by default), `bench`.

use campus::application::{Application, Roles};
use campus::cli::{Cli, Command};
use campus::config::Settings;
use campus::services::ArchiveService;
use campus::{shutdown_signal, telemetry};
use campus_adapters::pg::{Notifier, PgStore};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = telemetry::init() {
        eprintln!("campus: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("campus: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let roles = match cli.command {
        Command::Openapi { output } => return openapi(output),
        #[cfg(feature = "bench")]
        Command::Bench(args) => return bench(&cli.settings, &args).await,
        Command::Migrate => return migrate(&cli.settings).await,
        Command::Archive(args) => return archive(&cli.settings, &args).await,
        Command::IndexPayloads => return index_payloads(&cli.settings).await,
        Command::Status(args) => return status(&cli.settings, &args).await,
        Command::Consume(args) => return consume(&cli.settings, &args).await,
        Command::Serve => Roles::SERVE,
        Command::Api => Roles::API,
        Command::Daemon => Roles::DAEMON,
    };
    serve(cli.settings, roles).await
}

/// `serve`, `api`, `daemon`: runs until Ctrl-C or SIGTERM.
async fn serve(settings: Settings, roles: Roles) -> Result<(), String> {
    let app = Application::build(settings, roles).await?;
    let campus = app.campus().clone();
    let new_adm_password = if roles.api {
        campus.ensure_default_adm().await?
    } else {
        None
    };
    let handed_over = new_adm_password
        .as_deref()
        .map(|password| campus.hand_over_adm_password(password));
    let shutdown = shutdown_signal();
    if roles.api {
        println!(
            "{}",
            campus.banner(true, roles.daemon, handed_over.as_ref())
        );
    } else {
        println!("{}", campus.banner(false, true, None));
    }
    app.run(shutdown).await
}

/// `consume`: prints the bus's messages of a queue as JSON lines until Ctrl-C or SIGTERM.
async fn consume(settings: &Settings, args: &campus::cli::ConsumeArgs) -> Result<(), String> {
    use campus_adapters::bus::consumer::{consume, Verdict};
    use std::io::Write;
    let url = settings
        .bus_url
        .as_deref()
        .ok_or("campus consume needs CAMPUS_BUS_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f")?;
    eprintln!(
        "campus: consuming queue {} (bindings {}); one JSON line per message, Ctrl-C to stop",
        args.queue,
        args.bindings.join(", ")
    );
    let print = |m: campus_adapters::bus::consumer::Delivered| async move {
        let body: serde_json::Value = serde_json::from_slice(&m.body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&m.body).into()));
        let line = serde_json::json!({
            "message_id": m.message_id,
            "routing_key": m.routing_key,
            "event_type": m.event_type,
            "correlation_id": m.correlation_id,
            "redelivered": m.redelivered,
            "body": body,
        });
        let mut out = std::io::stdout().lock();
        // Acknowledged only once written.
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => Verdict::Ack,
            // Nowhere to print it: it goes to the dead-letter queue rather than loop.
            Err(_) => Verdict::Reject,
        }
    };
    consume(
        url,
        &args.queue,
        &args.bindings,
        args.prefetch,
        shutdown_signal(),
        print,
    )
    .await
    .map_err(|e| e.to_string())
}

/// `openapi`: prints the document, or writes it to `output`.
fn openapi(output: Option<PathBuf>) -> Result<(), String> {
    let spec = campus::api::openapi_json();
    match output {
        Some(path) => std::fs::write(&path, spec + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => {
            println!("{spec}");
            Ok(())
        }
    }
}

/// `migrate`: only the schema; no keys are needed (nor checked) to migrate.
async fn migrate(settings: &Settings) -> Result<(), String> {
    let (database, _) = campus::runtime::migrated_database(settings, 2).await?;
    println!(
        "Migrations applied to {}.",
        campus_adapters::pg::cluster::redact_url(&database.url)
    );
    if let Some(pg) = &database.embedded {
        pg.stop();
    }
    Ok(())
}

/// `status`: the report once, or every 2 s with `--watch` until Ctrl-C.
async fn status(settings: &Settings, args: &campus::cli::StatusArgs) -> Result<(), String> {
    use std::io::IsTerminal;
    let (database, pool) = campus::runtime::migrated_database(settings, 2).await?;
    let store = PgStore::new(pool, Notifier::disabled());
    let terminal = std::io::stdout().is_terminal();
    let outcome = loop {
        let report = match campus::status::StatusReport::read(&store, &store, &store).await {
            Ok(r) => r,
            Err(e) => break Err(e),
        };
        if args.json {
            println!("{}", report.json());
        } else {
            if args.watch && terminal {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", report.table(terminal));
        }
        if !args.watch {
            break Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            _ = tokio::signal::ctrl_c() => break Ok(()),
        }
    };
    if let Some(pg) = &database.embedded {
        pg.stop();
    }
    outcome
}

/// A progress line on standard error: rewritten in place on a terminal, at most once a
/// second otherwise.
struct Progress {
    verb: &'static str,
    terminal: bool,
    last: Option<std::time::Instant>,
}

impl Progress {
    fn new(verb: &'static str) -> Progress {
        use std::io::IsTerminal;
        Progress {
            verb,
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, line: &str) {
        use std::io::Write;
        if self.terminal {
            eprint!("\r{}: {line}\x1b[K", self.verb);
            let _ = std::io::stderr().flush();
        } else if self
            .last
            .is_none_or(|l| l.elapsed() >= std::time::Duration::from_secs(1))
        {
            eprintln!("{}: {line}", self.verb);
            self.last = Some(std::time::Instant::now());
        }
    }

    fn done(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// `archive`: moves what the retention windows allow now, with a progress line and a summary.
async fn archive(settings: &Settings, args: &campus::cli::ArchiveArgs) -> Result<(), String> {
    let (database, pool) = campus::runtime::migrated_database(settings, 2).await?;
    let service = ArchiveService {
        archive: Arc::new(PgStore::new(pool, Notifier::disabled())),
        windows: settings.retention(),
        batch: args.batch,
    };
    let days = |d: std::time::Duration| match d.as_secs() {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ => humantime::format_duration(d).to_string(),
    };
    let windows = format!(
        "finished more than {} ago, dead or cancelled more than {} ago",
        days(settings.retention_finished),
        days(settings.retention_dead)
    );
    let outcome = if args.dry_run {
        service.dry_run().await.map(|n| {
            println!(
                "Would archive {} tasks and {} events ({windows}).",
                n.tasks, n.events
            );
        })
    } else {
        let mut progress = Progress::new("archiving");
        let now = campus_core::Timestamp(chrono::Utc::now().timestamp_millis());
        let done = service.run(now, |p| progress.show(&p.line())).await;
        progress.done();
        done.map(|p| {
            println!(
                "Archived {} tasks and {} events ({windows}) in {:.1} s, {:.0} rows/s.",
                p.moved.tasks,
                p.moved.events,
                p.elapsed.as_secs_f64(),
                p.rate()
            );
            println!(
                "Purged {} spent reset tokens, {} expired sessions and {} sent-e-mail records.",
                p.purged.reset_tokens, p.purged.sessions, p.purged.sent_emails
            );
            if let Some(took) = p.reclaimed_in {
                println!(
                    "Vacuumed the live tables (VACUUM ANALYZE) in {:.1} s.",
                    took.as_secs_f64()
                );
            }
        })
    };
    if let Some(pg) = &database.embedded {
        pg.stop();
    }
    outcome.map_err(|e| e.to_string())
}

/// `index-payloads`: indexes the payload texts not indexed yet, in passes, with a progress
/// line and a summary. It stops once a pass indexes nothing: rows committed after that are
/// left to the daemon.
async fn index_payloads(settings: &Settings) -> Result<(), String> {
    use campus_ports::PayloadIndex;
    const PASS: u32 = 10_000;
    let (database, pool) = campus::runtime::migrated_database(settings, 2).await?;
    let store = PgStore::new(pool, Notifier::disabled());
    let started = std::time::Instant::now();
    let mut progress = Progress::new("indexing");
    let (mut tasks, mut events) = (0u64, 0u64);
    let outcome = loop {
        match store.index_payloads(PASS, 0).await {
            Ok(done) => {
                tasks += done.tasks;
                events += done.events;
                progress.show(&format!("{tasks} tasks, {events} events"));
                if done.tasks == 0 && done.events == 0 {
                    break Ok(());
                }
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    progress.done();
    let outcome = match outcome {
        Ok(()) if tasks + events > 0 => {
            println!("Vacuuming the lists of rows to index and analyzing the texts…");
            let tidied = async {
                store.compact().await?;
                store.analyze_texts().await
            };
            tidied.await.map_err(|e| e.to_string())
        }
        other => other,
    };
    if outcome.is_ok() {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "Indexed the payload texts of {tasks} tasks and {events} events in {secs:.1} s, {:.0} rows/s.",
            (tasks + events) as f64 / secs.max(0.001)
        );
    }
    if let Some(pg) = &database.embedded {
        pg.stop();
    }
    outcome
}

/// `bench`: runs every phase and prints the report (a table, or one JSON object).
#[cfg(feature = "bench")]
async fn bench(settings: &Settings, args: &campus::cli::BenchArgs) -> Result<(), String> {
    let report = campus::bench::run(settings, args).await?;
    if args.json {
        let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        println!("{}", campus::bench::table(&report));
    }
    Ok(())
}
