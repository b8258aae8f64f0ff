//! Log output: the one place the tracing subscriber is set up, for the `campus` binary and for
//! the tests' harness. `CAMPUS_LOG_FORMAT` chooses `text` (the default; colour only on a
//! terminal) or `json` (one object per line, with the fields of the enclosing spans: a
//! request's or a task's correlation id).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The binary's filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,poem=warn";

/// The tests' filter for `TEST_LOG=1`.
pub const TEST_FILTER: &str = "info,sqlx=warn";

/// The binary's subscriber: the filter in `RUST_LOG` (else [`DEFAULT_FILTER`]), to standard
/// error (standard output is for what a command prints: the banner, a report, the spec).
/// Call once, first thing.
pub fn init() -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log_format(std::env::var("CAMPUS_LOG_FORMAT").ok().as_deref())? {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    Ok(())
}

/// `CAMPUS_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `text` (also when unset) or `json`.
pub fn log_format(raw: Option<&str>) -> Result<LogFormat, String> {
    match raw.map(|r| r.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(format!(
            "CAMPUS_LOG_FORMAT: {other:?} is neither `text` nor `json` (e.g. CAMPUS_LOG_FORMAT=json)"
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_is_text_unless_json_is_asked_for() {
        assert_eq!(log_format(None), Ok(LogFormat::Text));
        assert_eq!(log_format(Some("JSON")), Ok(LogFormat::Json));
        assert_eq!(log_format(Some("text")), Ok(LogFormat::Text));
        let refused = log_format(Some("xml")).unwrap_err();
        assert!(refused.contains("CAMPUS_LOG_FORMAT") && refused.contains("json"));
    }
}
