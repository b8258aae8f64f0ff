//! The `campus` command line: `serve`, `api`, `daemon`, `migrate`, `openapi`.

use campus::config::{Cli, Command};
use campus::{shutdown_signal, Campus};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,poem=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("campus: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let (with_api, with_daemon) = match cli.command {
        Command::Openapi { output } => {
            let spec = campus::api::openapi_json();
            return match output {
                Some(path) => std::fs::write(&path, spec + "\n")
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => {
                    println!("{spec}");
                    Ok(())
                }
            };
        }
        Command::Bench(args) => {
            let report = campus::bench::run(&cli.settings, &args).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).map_err(|e| e.to_string())?
                );
            } else {
                println!("{}", campus::bench::table(&report));
            }
            return Ok(());
        }
        Command::Migrate => {
            // Only the schema: no keys are needed (nor checked) to migrate.
            let (database, _) = campus::runtime::migrated_database(&cli.settings, 2).await?;
            println!(
                "Migrations applied to {}.",
                campus_adapters::pg::cluster::redact_url(&database.url)
            );
            if let Some(pg) = &database.embedded {
                pg.stop();
            }
            return Ok(());
        }
        Command::Serve => (true, true),
        Command::Api => (true, false),
        Command::Daemon => (false, true),
    };
    let campus = Campus::start(cli.settings).await?;
    // Bound before anything starts, so a busy port is an error at once, not after a signal.
    let listener = if with_api {
        let addr = campus.settings.addr;
        Some(std::net::TcpListener::bind(addr).map_err(|e| {
            format!("cannot listen on {addr}: {e} (another process uses it? set CAMPUS_ADDR)")
        })?)
    } else {
        None
    };
    let new_adm_password = if with_api {
        campus.ensure_default_adm().await?
    } else {
        None
    };
    let handed_over = new_adm_password
        .as_deref()
        .map(|password| campus.hand_over_adm_password(password));
    let shutdown = shutdown_signal();
    let daemon = with_daemon.then(|| {
        tokio::spawn(
            campus
                .daemon(campus.default_registry())
                .run(shutdown.clone()),
        )
    });
    let result = if let Some(listener) = listener {
        let mut stop = shutdown.clone();
        let server = campus.serve_http(listener, async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        println!("{}", campus.banner(true, with_daemon, handed_over.as_ref()));
        server
            .await
            .map_err(|e| format!("cannot serve on {}: {e}", campus.settings.addr))
    } else {
        println!("{}", campus.banner(false, true, None));
        let mut stop = shutdown.clone();
        let _ = stop.wait_for(|s| *s).await;
        Ok(())
    };
    if let Some(daemon) = daemon {
        let _ = daemon.await;
    }
    if let Some(pg) = &campus.database.embedded {
        pg.stop();
    }
    result
}
