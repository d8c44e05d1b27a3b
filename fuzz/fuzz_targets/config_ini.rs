//! `config.ini` parsing: any text gives a `Config` or a `ConfigError` naming the file, never
//! a panic; an error's line, when it has one, is a line of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::ConfigLoader;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loader = ConfigLoader::new().section("app_extra");
    match loader.parse_str(text, "fuzz.ini") {
        Ok(config) => {
            // A valid config also names its pools consistently.
            for (name, pool) in &config.redis {
                assert_eq!(name, &pool.name);
            }
        }
        Err(err) => {
            assert_eq!(err.file(), "fuzz.ini");
            if let Some(line) = err.line() {
                let lines = text.split('\n').count();
                assert!(line >= 1 && line <= lines, "line {line} of {lines}: {err}");
            }
            assert!(!err.to_string().is_empty());
        }
    }
});
