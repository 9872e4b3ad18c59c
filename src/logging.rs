//! The binary's log subscriber: `RUST_LOG` filtering, text or JSON lines on stderr.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// How log events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, with the span context (a call's `call_id`, `session`).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `spans`.
    Json,
}

/// Parses `text` or `json`.
pub fn parse_format(s: &str) -> Result<LogFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "unknown log format {other:?} (expected text or json)"
        )),
    }
}

/// What decides which events are written.
enum Filter {
    /// A plain level (`info`, `warn`, ...): one comparison per call site, nothing
    /// per span. The call span is entered twice per call and 20 ms, on every reactor
    /// thread; `EnvFilter` takes a lock shared by all threads on each enter and exit.
    Level(LevelFilter),
    /// Per-target directives (`media_core=debug,info`): what they select costs a
    /// shared read lock per span enter and exit.
    Directives(Box<EnvFilter>),
}

/// The filter `RUST_LOG` asks for (default `info`); an invalid one is an error naming it.
fn filter_from_env() -> anyhow::Result<Filter> {
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(Filter::Level(LevelFilter::INFO));
    }
    if let Ok(level) = spec.parse::<LevelFilter>() {
        return Ok(Filter::Level(level));
    }
    EnvFilter::try_new(spec)
        .map(|f| Filter::Directives(Box::new(f)))
        .map_err(|e| anyhow::anyhow!("RUST_LOG={spec:?} is not a valid filter: {e}"))
}

/// Installs the subscriber: the filter from `RUST_LOG` (default `info`); an invalid
/// `RUST_LOG` is an error naming it.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    let installed = match (format, filter_from_env()?) {
        (LogFormat::Text, Filter::Level(l)) => builder.with_max_level(l).try_init(),
        (LogFormat::Text, Filter::Directives(f)) => builder.with_env_filter(*f).try_init(),
        (LogFormat::Json, Filter::Level(l)) => builder
            .with_max_level(l)
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        (LogFormat::Json, Filter::Directives(f)) => builder
            .with_env_filter(*f)
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
