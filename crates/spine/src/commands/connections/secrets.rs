//! Where `spine connection create|update` take secret fields from: a file, `-` or a piped stdin,
//! never argv (`--config-json` is refused when it holds one). The text is wiped after parsing and
//! never echoed, not even in an error.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;
use spine_core::connector::{ConnectorType, get_path};
use zeroize::Zeroizing;

use crate::error::CliError;

#[derive(Args, Debug)]
pub struct SecretArg {
    /// JSON file with the secret fields (e.g. {"auth":{"token":"…"}}); `-` or a piped stdin reads stdin.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
}

/// Secret fields may not come from argv: only their absence is accepted in `--config-json`.
pub fn refuse_argv_secrets(t: ConnectorType, config: &Value) -> Result<(), CliError> {
    if let Some(p) = t.secret_fields().iter().find(|p| get_path(config, p).is_some()) {
        return Err(CliError::usage(format!(
            "{p} is a secret: give it in --secret-file or on stdin, not in --config-json"
        ))
        .hint("e.g. `printf '{\"auth\":{\"token\":\"%s\"}}' \"$TOKEN\" | spine connection create …`"));
    }
    Ok(())
}

/// The secrets document from --secret-file, `-` or a piped stdin; `None` when there is none.
pub fn read_secrets(a: &SecretArg) -> Result<Option<Value>, CliError> {
    let text = Zeroizing::new(match &a.secret_file {
        Some(p) if p.as_os_str() != "-" => std::fs::read_to_string(p)
            .map_err(|e| CliError::failed(format!("reading --secret-file {}: {e}", p.display())))?,
        Some(_) => read_stdin()?,
        None if !std::io::stdin().is_terminal() => read_stdin()?,
        None => String::new(),
    });
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        // Never echo the input: it is secret.
        _ => Err(CliError::usage("the secrets must be one JSON object, e.g. {\"auth\":{\"token\":\"…\"}}")),
    }
}

fn read_stdin() -> Result<String, CliError> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).map_err(|e| CliError::failed(format!("reading stdin: {e}")))?;
    Ok(s)
}

/// Deep-merges `extra` into `base` (objects merge, anything else replaces).
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}
