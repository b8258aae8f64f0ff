//! Log output: the one place the tracing subscriber is set up, for the `campus` binary and for
//! the tests' harness.

use tracing_subscriber::EnvFilter;

/// The binary's filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,poem=warn";

/// The tests' filter for `TEST_LOG=1`.
pub const TEST_FILTER: &str = "info,sqlx=warn";

/// The binary's subscriber: the filter in `RUST_LOG` (else [`DEFAULT_FILTER`]), to standard
/// error (standard output is for what a command prints: the banner, a report, the spec).
/// Call once, first thing.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The tests' subscriber, only when `TEST_LOG` is set: `1` means [`TEST_FILTER`], anything
/// else is the filter itself. Output goes through the test harness's capture; calling it
/// again (every test app does) changes nothing.
pub fn init_for_tests() {
    let Ok(filter) = std::env::var("TEST_LOG") else {
        return;
    };
    let filter = if filter == "1" {
        TEST_FILTER.to_string()
    } else {
        filter
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}
