//! `[example]`: the example app's own settings, read and checked at start-up.

use std::path::PathBuf;
use std::time::Duration;

use rondo::config::Section;
use rondo::ConfigError;

/// Where the page templates are when `[example] templates` does not say: this crate's
/// `templates/` directory.
pub const TEMPLATES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");

/// The keys `[example]` accepts.
const EXAMPLE_KEYS: &[&str] = &["hydrate_delay_ms", "templates"];

/// `[example]` settings (given to jobs as state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleSettings {
    /// `hydrate_delay_ms`: how long the hydration job's "slow work" takes; default 1500.
    pub hydrate_delay: Duration,
    /// `templates`: the page template directory; default [`TEMPLATES_DIR`].
    pub templates: PathBuf,
}

impl Default for ExampleSettings {
    fn default() -> Self {
        Self {
            hydrate_delay: Duration::from_millis(1500),
            templates: PathBuf::from(TEMPLATES_DIR),
        }
    }
}

impl ExampleSettings {
    /// Reads `[example]` (absent: the defaults).
    ///
    /// # Errors
    ///
    /// An unknown key, or a `hydrate_delay_ms` that is not a whole number up to 600000.
    pub fn from_section(section: Option<&Section>) -> Result<Self, ConfigError> {
        let Some(section) = section else {
            return Ok(Self::default());
        };
        if let Some(key) = section.keys().find(|k| !EXAMPLE_KEYS.contains(k)) {
            let message = format!("unknown key; expected one of {}", EXAMPLE_KEYS.join(", "));
            return Err(section.error(key, message));
        }
        let ms: u64 = section.get_or("hydrate_delay_ms", 1500)?;
        if ms > 600_000 {
            let message = format!("expected milliseconds in 0..=600000, got {ms}");
            return Err(section.error("hydrate_delay_ms", message));
        }
        let templates: Option<PathBuf> = section.get("templates")?;
        Ok(Self {
            hydrate_delay: Duration::from_millis(ms),
            templates: templates.unwrap_or_else(|| PathBuf::from(TEMPLATES_DIR)),
        })
    }
}
