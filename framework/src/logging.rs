//! Logging on by default: a `tracing` subscriber that honours `[app] log_level` (or
//! `RUST_LOG`, which overrides it) and `[app] log_format` (`text` or `json`), writing to
//! standard output (colours only on a terminal).
//!
//! [`serve`](crate::serve) installs it unless the application installed a subscriber of its
//! own first, so the "listening" line, the request log (4xx at `info`, 5xx at `warn`), the
//! cause of every 500 and every job failure are visible without a line of set-up. An app
//! that wants its logs from the first moment (the session store's start-up messages come
//! before `serve`) calls [`init`] right after loading its configuration.
//!
//! Loading a configuration can find settings that are allowed but probably not meant
//! ([`Config::warnings`](crate::Config::warnings)); they are logged once logging starts,
//! since they come before any log could show them.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Config, LogFormat};

/// Whether the configuration's warnings were logged already (once per process).
static WARNED: AtomicBool = AtomicBool::new(false);

/// Installs the default subscriber for `config`, unless a global subscriber is set already;
/// then logs the configuration's warnings (once). Returns whether it installed one.
///
/// # Examples
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = rondo::Config::load("config.ini")?;
/// rondo::logging::init(&config);
/// # Ok(()) }
/// ```
pub fn init(config: &Config) -> bool {
    let installed = install(config);
    warn_once(config);
    installed
}

/// What [`crate::serve`] does: [`init`] when no subscriber exists, else only the warnings.
pub(crate) fn ensure(config: &Config) {
    if !tracing::dispatcher::has_been_set() {
        install(config);
    }
    warn_once(config);
}

fn warn_once(config: &Config) {
    if config.warnings.is_empty() || WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
}

#[cfg(feature = "logging")]
fn install(config: &Config) -> bool {
    use tracing_subscriber::EnvFilter;
    if tracing::dispatcher::has_been_set() {
        return false;
    }
    let level = &config.app.log_level;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match config.app.log_format {
        LogFormat::Json => builder.json().try_init().is_ok(),
        LogFormat::Text => builder.try_init().is_ok(),
    }
}

#[cfg(not(feature = "logging"))]
fn install(_config: &Config) -> bool {
    false
}
