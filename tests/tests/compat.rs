//! Compatibility with clients written elsewhere: pusher-js 8 and Laravel Echo 2 (npm)
//! subscribe to public, private and presence channels of a Rondo server, through its
//! `/broadcasting/auth` with a session cookie, and receive what the official `pusher`
//! server library (npm) publishes through the HTTP events API.
//!
//! The script is `tests/compat/compat.mjs`; its packages (`tests/compat/package.json`) are
//! installed by this test with npm into a cache under `target/` (never vendored), once, and
//! again when `package.json` changes. Node.js and npm must be installed (`scripts/test.sh`
//! installs the Debian packages when they are missing); without them, or without the npm
//! registry, this test fails rather than skips.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rondo_tests::channels::{channels_config, log_in_as, start_channels, APP_ID, KEY, SECRET};
use rondo_tests::redis::RedisServer;

/// Installs (or reuses) the npm packages; the directory holding `node_modules` and the
/// script.
fn install() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat");
    std::fs::create_dir_all(&cache).unwrap();
    let manifest = std::fs::read(source.join("package.json")).unwrap();
    let installed = std::fs::read(cache.join("package.json")).ok();
    if installed.as_deref() != Some(manifest.as_slice()) || !cache.join("node_modules").exists() {
        std::fs::write(cache.join("package.json"), &manifest).unwrap();
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&cache)
            .status()
            .expect("npm runs (install Node.js and npm: apt-get install nodejs npm)");
        assert!(
            status.success(),
            "npm install failed in {}",
            cache.display()
        );
    }
    std::fs::copy(source.join("compat.mjs"), cache.join("compat.mjs")).unwrap();
    cache
}

/// pusher-js and Laravel Echo against Rondo, the `pusher` library publishing: every check
/// of the script passes.
#[tokio::test(flavor = "multi_thread")]
async fn pusher_js_echo_and_the_pusher_library_work_unchanged() {
    let dir = tokio::task::spawn_blocking(install).await.unwrap();
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "")).await;
    let ana = log_in_as(&server, "ana").await;
    let bo = log_in_as(&server, "bo").await;
    let cookie = |jar: &rondo_tests::app::Jar| format!("dmsession={}", jar.value.clone().unwrap());
    let mut node = tokio::process::Command::new("node");
    node.arg("compat.mjs")
        .args([
            &server.url(""),
            APP_ID,
            KEY,
            SECRET,
            &cookie(&ana),
            &cookie(&bo),
        ])
        .current_dir(&dir)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), node.output())
        .await
        .expect("the script finishes within 60 s")
        .expect("node runs (install Node.js: apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "compat script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("compat: 15 passed, 0 failed"), "{stdout}");
}
