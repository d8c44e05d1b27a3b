//! `rondo::StaticFiles` keeping to its directory, on a real server on `127.0.0.1:0` and on
//! the raw wire (no client normalising the path first): `..` plain and encoded,
//! backslashes, absolute paths, NUL, dotfiles, symlinks leaving the directory, and a
//! directory that is missing at start-up.
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo::{App, StaticFiles};
use rondo_tests::http::TestServer;
use rondo_tests::plain_app::{test_config, RAW_WAIT};
use rondo_tests::static_dir::{get, serve, TempDir, ALPHABET};

/// Every way of naming a file outside the directory answers 404, on the raw wire (no client
/// normalising the path first), and never with the file's contents: `..` plain, encoded
/// (`%2e%2e`, `%2f`), with backslashes plain or encoded, absolute paths, NUL, and dotfiles.
#[tokio::test]
async fn traversal_is_refused() {
    let (server, dir) = serve(StaticFiles::new).await;
    dir.write("public/.env", "SECRET=1");
    let absolute = dir.0.join("secret.txt").display().to_string();
    let targets = [
        "/static/../secret.txt".to_owned(),
        "/static/css/../../secret.txt".to_owned(),
        "/static/%2e%2e/secret.txt".to_owned(),
        "/static/%2E%2E%2Fsecret.txt".to_owned(),
        "/static/..%2fsecret.txt".to_owned(),
        "/static/..\\secret.txt".to_owned(),
        "/static/..%5Csecret.txt".to_owned(),
        "/static/css%5C..%5C..%5Csecret.txt".to_owned(),
        format!("/static/{absolute}"),
        format!("/static/{}", absolute.replace('/', "%2F")),
        "/static/alphabet.txt%00.css".to_owned(),
        "/static/.env".to_owned(),
        "/static/%2eenv".to_owned(),
        "/static/./alphabet.txt".to_owned(),
    ];
    for target in &targets {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let answer = server.raw_exchange(raw.as_bytes(), RAW_WAIT).await;
        assert_eq!(answer.status(), Some(404), "{target}: {}", answer.text);
        assert!(!answer.text.contains("TOP SECRET"), "{target}");
        assert!(!answer.text.contains("SECRET=1"), "{target}");
    }
}

/// Symlinks are followed while their target stays inside the directory; a link to a file
/// or a directory outside answers 404, as if it were not there.
#[cfg(unix)]
#[tokio::test]
async fn symlinks_leaving_the_directory_are_refused() {
    use std::os::unix::fs::symlink;
    let (server, dir) = serve(StaticFiles::new).await;
    dir.write("outside/page.txt", "outside page");
    let public = dir.public();
    symlink(public.join("alphabet.txt"), public.join("letters.txt")).unwrap();
    symlink("css", public.join("styles")).unwrap();
    symlink(dir.0.join("secret.txt"), public.join("secret.txt")).unwrap();
    symlink(dir.0.join("outside"), public.join("outside")).unwrap();
    symlink("../secret.txt", public.join("relative.txt")).unwrap();

    let inside = get(&server, "/static/letters.txt", &[]).await;
    assert_eq!(
        (inside.status, inside.body.as_str()),
        (StatusCode::OK, ALPHABET)
    );
    let inside_dir = get(&server, "/static/styles/site.css", &[]).await;
    assert_eq!(inside_dir.status, StatusCode::OK);
    for path in [
        "/static/secret.txt",
        "/static/outside/page.txt",
        "/static/relative.txt",
    ] {
        let res = get(&server, path, &[]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            res.json(),
            serde_json::json!({"error": "not found", "status": 404})
        );
    }
}

/// A directory missing when the server starts answers 404 (it is logged, not fatal) until
/// it exists; then its files are served.
#[tokio::test]
async fn a_missing_directory_answers_404_until_it_exists() {
    let dir = TempDir::new();
    let later = dir.0.join("later");
    let app = App::new(test_config()).get("/static/{*path}", StaticFiles::new(&later));
    let server = TestServer::start(app).await;
    let res = get(&server, "/static/a.txt", &[]).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    dir.write("later/a.txt", "arrived");
    let res = get(&server, "/static/a.txt", &[]).await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "arrived"));
}

/// Dotfiles are refused by default and served when allowed (`.well-known/`), while `..`
/// stays refused either way.
#[tokio::test]
async fn dotfiles_are_opt_in() {
    let (server, dir) = serve(|d| StaticFiles::new(d).dotfiles(true)).await;
    dir.write("public/.well-known/security.txt", "Contact: x");
    let res = get(&server, "/static/.well-known/security.txt", &[]).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "Contact: x")
    );
    let raw = b"GET /static/%2e%2e/secret.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let answer = server.raw_exchange(raw, RAW_WAIT).await;
    assert_eq!(answer.status(), Some(404));
    assert!(!answer.text.contains("TOP SECRET"));
}
