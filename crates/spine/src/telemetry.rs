//! Logging: JSON lines (or pretty on a terminal) to stderr; stdout is kept for command output.
//! Request spans carry request_id and tenant_id (see spine-api's middleware).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogSettings;

/// Installs the global subscriber. `writer` is stderr in production; tests pass a buffer.
pub fn init<W>(settings: &LogSettings, writer: W) -> Result<(), String>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.level).map_err(|e| format!("log.level {:?}: {e}", settings.level))?;
    let json = match settings.format.as_str() {
        "json" => true,
        "pretty" => false,
        "auto" => !std::io::stderr().is_terminal(),
        other => return Err(format!("log.format {other:?}: use auto, json or pretty")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.compact().try_init()
    };
    result.map_err(|e| e.to_string())
}
