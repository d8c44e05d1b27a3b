//! The example app's command line: `--generate-key` prints a new `[app] key` that the
//! configuration accepts, a different one each time, and nothing else.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rondo::signed::AppKey;
use rondo::Config;
use rondo_tests::process::ChildGuard;

/// Runs `example-app --generate-key` (at most 10 s) and returns what it printed.
fn generate_key() -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-app"))
        .arg("--generate-key")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("example-app runs");
    let mut stdout = child.stdout.take().expect("a piped stdout");
    let mut guard = ChildGuard::new(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = guard.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "--generate-key did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut out = String::new();
    stdout.read_to_string(&mut out).expect("readable output");
    out
}

/// One line, `base64:` and 44 characters, that `[app] key` accepts; two runs differ.
#[test]
fn generate_key_prints_a_key_the_config_accepts() {
    let first = generate_key();
    let line = first.strip_suffix('\n').expect("one line");
    assert!(!line.contains('\n'), "{first:?}");
    assert!(line.starts_with("base64:") && line.len() == 51, "{line}");
    let config = Config::parse_str(
        &format!("[app]\nenv = production\nkey = {line}\n[session]\nstore = memory\n"),
        "generated.ini",
    )
    .expect("the config takes the key");
    assert_eq!(config.app.key, Some(AppKey::parse(line).expect("a key")));
    assert_ne!(generate_key(), first);
}
