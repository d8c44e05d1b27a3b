//! The README as a newcomer meets it. Its Rust examples are compiled (and run, unless
//! `no_run`) as this crate's doc tests (`Readme` in `src/lib.rs`); these tests check what
//! the compiler cannot: that every crate an example names is in the README's `Cargo.toml`
//! lines, that no code block would be mistaken for Rust, and that the quick start is still
//! two commands.

use std::collections::BTreeSet;

const README: &str = include_str!("../../README.md");

/// The fenced code blocks: (info string, body).
fn blocks() -> Vec<(&'static str, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(&str, String)> = None;
    for line in README.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim(), String::new())),
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "the README ends inside a code block");
    blocks
}

/// The crates a piece of Rust names by path (`tokio::main`, `serde_json::json!`,
/// `use serde::Serialize`): lowercase identifiers before `::` that are not themselves after
/// `::` or `.`, less the language's own.
fn crates_named(code: &str) -> BTreeSet<String> {
    const BUILT_IN: [&str; 6] = ["std", "core", "alloc", "crate", "self", "super"];
    let bytes = code.as_bytes();
    let mut found = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = bytes[i].is_ascii_lowercase()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts_word {
            i += 1;
            continue;
        }
        let end = (i..bytes.len())
            .find(|&j| !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_'))
            .unwrap_or(bytes.len());
        // `a::b` names no crate at `b`, nor does a method's turbofish (`.json::<T>()`).
        let inside_path = (i >= 2 && &code[i - 2..i] == "::") || (i >= 1 && bytes[i - 1] == b'.');
        let path = code[end..].starts_with("::") && !code[end..].starts_with("::<");
        if path && !inside_path && !BUILT_IN.contains(&&code[i..end]) {
            found.insert(code[i..end].to_owned());
        }
        i = end;
    }
    if code.contains("derive(") && (code.contains("Serialize") || code.contains("Deserialize")) {
        found.insert("serde".to_owned());
    }
    found
}

/// Every crate the README's Rust examples name is one of its `[dependencies]` lines, so a
/// newcomer who copies those lines can build every example.
#[test]
fn every_crate_the_examples_name_is_in_the_cargo_toml_lines() {
    let blocks = blocks();
    let toml: Vec<&String> = blocks
        .iter()
        .filter(|(info, body)| *info == "toml" && body.contains("[dependencies]"))
        .map(|(_, body)| body)
        .collect();
    assert_eq!(toml.len(), 1, "one [dependencies] block in the README");
    let listed: BTreeSet<String> = toml[0]
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name.trim().replace('-', "_"))
        .filter(|name| !name.is_empty() && !name.starts_with('['))
        .collect();
    assert!(listed.contains("rondo"), "{listed:?}");
    let rust: Vec<&String> = blocks
        .iter()
        .filter(|(info, _)| info.split(',').next() == Some("rust"))
        .map(|(_, body)| body)
        .collect();
    assert!(
        rust.len() >= 5,
        "the README's Rust examples: {}",
        rust.len()
    );
    for code in rust {
        let missing: Vec<String> = crates_named(code)
            .into_iter()
            .filter(|name| !listed.contains(name))
            .collect();
        assert!(
            missing.is_empty(),
            "the README's [dependencies] lack {missing:?}, named by:\n{code}"
        );
    }
}

/// The parser above finds what it should: crates at the start of a path, not modules
/// inside one, nor the standard library.
#[test]
fn crate_names_are_found_at_the_start_of_paths() {
    let code = "use rondo::jobs::Job;\nuse std::time::Duration;\n#[tokio::main]\n\
                fn f() { tracing::warn!(\"x\"); let v = serde_json::json!({});\n\
                res.json::<T>(); String::new(); }\n\
                #[derive(Serialize)] struct S;";
    let found: Vec<String> = crates_named(code).into_iter().collect();
    assert_eq!(
        found,
        ["rondo", "serde", "serde_json", "tokio", "tracing"].map(String::from)
    );
}

/// Every code block says its language: rustdoc would compile a bare one as Rust.
#[test]
fn every_code_block_names_its_language() {
    let bare: Vec<String> = blocks()
        .into_iter()
        .filter(|(info, _)| info.is_empty())
        .map(|(_, body)| body.lines().next().unwrap_or_default().to_owned())
        .collect();
    assert!(bare.is_empty(), "code blocks without a language: {bare:?}");
}

/// The quick start is two commands: the example app and the whole test suite.
#[test]
fn the_quick_start_is_two_commands() {
    let start = README.find("## Quick start").expect("a quick start");
    let section = &README[start..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    let sh = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block in the quick start");
    let commands: Vec<&str> = sh
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -p example-app", "scripts/test.sh"]
    );
}
