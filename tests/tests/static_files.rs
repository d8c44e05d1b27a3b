//! `rondo::StaticFiles` serving files on a real server on `127.0.0.1:0`, from a directory
//! each test creates ([`rondo_tests::static_dir`]): content types, validators and
//! conditional requests, byte ranges, precompressed variants, `HEAD` and `index.html`.
//! The ways out of the directory are in `static_files_confinement.rs`.
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo::StaticFiles;
use rondo_tests::http::{raw_header, split_head};
use rondo_tests::plain_app::RAW_WAIT;
use rondo_tests::static_dir::{get, serve, ALPHABET, MTIME_HTTP};

/// A file answers 200 with its bytes, the content type of its extension, the exact
/// `Content-Length`, `Last-Modified` from its modification time, a strong `ETag` that is
/// stable until the file changes, `Accept-Ranges` and the configured `Cache-Control`.
#[tokio::test]
async fn a_file_is_served_with_its_validators() {
    let (server, dir) = serve(|d| StaticFiles::new(d).cache_control("public, max-age=60")).await;
    let res = get(&server, "/static/css/site.css", &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, "body { color: red }\n");
    assert_eq!(res.content_type(), "text/css");
    assert_eq!(res.header("content-length"), Some("20"));
    assert_eq!(res.header("last-modified"), Some(MTIME_HTTP));
    assert_eq!(res.header("accept-ranges"), Some("bytes"));
    assert_eq!(res.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(
        res.header("vary"),
        None,
        "no variants without precompression"
    );
    let etag = res.header("etag").unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    assert_eq!(
        get(&server, "/static/css/site.css", &[])
            .await
            .header("etag"),
        Some(&*etag)
    );

    dir.write("public/css/site.css", "body { color: blue }\n");
    let changed = get(&server, "/static/css/site.css", &[]).await;
    assert_eq!(changed.body, "body { color: blue }\n");
    assert_ne!(
        changed.header("etag"),
        Some(&*etag),
        "a new version, a new tag"
    );
}

/// Content types follow the extension; an unknown one is `application/octet-stream`. Names
/// with spaces and `%` are served by their decoded name.
#[tokio::test]
async fn content_types_by_extension() {
    let (server, dir) = serve(StaticFiles::new).await;
    for (name, body) in [
        ("app.js", "js"),
        ("data.json", "{}"),
        ("logo.svg", "<svg/>"),
        ("a file.bin", "bin"),
        ("100%.txt", "percent"),
    ] {
        dir.write(&format!("public/{name}"), body);
    }
    for (path, content_type, body) in [
        ("/static/app.js", "text/javascript", "js"),
        ("/static/data.json", "application/json", "{}"),
        ("/static/logo.svg", "image/svg+xml", "<svg/>"),
        ("/static/index.html", "text/html", "<h1>home</h1>"),
        ("/static/a%20file.bin", "application/octet-stream", "bin"),
        ("/static/100%25.txt", "text/plain", "percent"),
    ] {
        let res = get(&server, path, &[]).await;
        assert_eq!(
            (res.status, res.body.as_str()),
            (StatusCode::OK, body),
            "{path}"
        );
        assert_eq!(res.content_type(), content_type, "{path}");
    }
}

/// `If-None-Match` with the current tag (or `*`) and `If-Modified-Since` at or after the
/// modification time answer 304 with the validators, `Cache-Control` and no body; an old
/// tag or an earlier date answer 200. `If-None-Match` wins over `If-Modified-Since`.
#[tokio::test]
async fn conditional_get_answers_304() {
    let (server, _dir) = serve(|d| StaticFiles::new(d).cache_control("no-cache")).await;
    let path = "/static/alphabet.txt";
    let etag = get(&server, path, &[])
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let weak = format!("W/{etag}");
    for headers in [
        vec![("if-none-match", etag.as_str())],
        vec![("if-none-match", "*")],
        vec![("if-none-match", weak.as_str())],
        vec![("if-none-match", &format!("\"other\", {etag}"))],
        vec![("if-modified-since", MTIME_HTTP)],
        vec![("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")],
    ] {
        let res = get(&server, path, &headers).await;
        assert_eq!(res.status, StatusCode::NOT_MODIFIED, "{headers:?}");
        assert_eq!(res.body, "", "{headers:?}");
        assert_eq!(res.header("etag"), Some(etag.as_str()));
        assert_eq!(res.header("last-modified"), Some(MTIME_HTTP));
        assert_eq!(res.header("cache-control"), Some("no-cache"));
    }
    for headers in [
        vec![("if-none-match", "\"other\"")],
        vec![("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")],
        vec![
            ("if-none-match", "\"other\""),
            ("if-modified-since", MTIME_HTTP),
        ],
    ] {
        let res = get(&server, path, &headers).await;
        assert_eq!(
            (res.status, res.body.as_str()),
            (StatusCode::OK, ALPHABET),
            "{headers:?}"
        );
    }
}

/// `If-Match` without the current tag and `If-Unmodified-Since` before the modification
/// time answer 412 as an error page; with the current tag, or a later date, the file.
#[tokio::test]
async fn failed_preconditions_answer_412() {
    let (server, _dir) = serve(StaticFiles::new).await;
    let path = "/static/alphabet.txt";
    let etag = get(&server, path, &[])
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    for headers in [
        vec![("if-match", "\"other\"")],
        vec![("if-match", &format!("W/{etag}"))],
        vec![("if-unmodified-since", "Tue, 14 Nov 2023 22:13:19 GMT")],
    ] {
        let res = get(&server, path, &headers).await;
        assert_eq!(res.status, StatusCode::PRECONDITION_FAILED, "{headers:?}");
        let expected = serde_json::json!({"error": "precondition failed", "status": 412});
        assert_eq!(res.json(), expected);
    }
    for headers in [
        vec![("if-match", etag.as_str())],
        vec![("if-match", "*")],
        vec![("if-unmodified-since", MTIME_HTTP)],
    ] {
        let res = get(&server, path, &headers).await;
        assert_eq!(
            (res.status, res.body.as_str()),
            (StatusCode::OK, ALPHABET),
            "{headers:?}"
        );
    }
}

/// A satisfiable range answers 206 with exactly those bytes, `Content-Range` and
/// `Content-Length`; one past the end, or several at once, 416 with `bytes */26`.
#[tokio::test]
async fn byte_ranges() {
    let (server, _dir) = serve(StaticFiles::new).await;
    let path = "/static/alphabet.txt";
    for (range, body, content_range) in [
        ("bytes=2-5", "cdef", "bytes 2-5/26"),
        ("bytes=20-", "uvwxyz", "bytes 20-25/26"),
        ("bytes=-3", "xyz", "bytes 23-25/26"),
        ("bytes=0-0", "a", "bytes 0-0/26"),
        ("bytes=24-100", "yz", "bytes 24-25/26"),
    ] {
        let res = get(&server, path, &[("range", range)]).await;
        assert_eq!(res.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(res.body, body, "{range}");
        assert_eq!(res.header("content-range"), Some(content_range), "{range}");
        assert_eq!(res.header("content-length"), Some(&*body.len().to_string()));
        assert_eq!(res.content_type(), "text/plain", "{range}");
    }
    for range in ["bytes=26-", "bytes=30-40", "bytes=0-1,5-6", "bytes=z-"] {
        let res = get(&server, path, &[("range", range)]).await;
        assert_eq!(res.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(res.header("content-range"), Some("bytes */26"), "{range}");
        let expected = serde_json::json!({"error": "range not satisfiable", "status": 416});
        assert_eq!(res.json(), expected, "{range}");
    }
}

/// `If-Range` with the current tag or date keeps the range (206); with another version's
/// tag, a weak tag or another date, the whole file answers (200).
#[tokio::test]
async fn if_range_gives_the_whole_file_for_another_version() {
    let (server, _dir) = serve(StaticFiles::new).await;
    let path = "/static/alphabet.txt";
    let etag = get(&server, path, &[])
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    for if_range in [etag.as_str(), MTIME_HTTP] {
        let res = get(
            &server,
            path,
            &[("range", "bytes=0-2"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(
            (res.status, res.body.as_str()),
            (StatusCode::PARTIAL_CONTENT, "abc")
        );
    }
    let weak = format!("W/{etag}");
    for if_range in ["\"old\"", weak.as_str(), "Mon, 13 Nov 2023 10:00:00 GMT"] {
        let res = get(
            &server,
            path,
            &[("range", "bytes=0-2"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(
            (res.status, res.body.as_str()),
            (StatusCode::OK, ALPHABET),
            "{if_range}"
        );
        assert_eq!(res.header("content-range"), None);
        // A range the file cannot satisfy is ignored too, rather than refused.
        let res = get(
            &server,
            path,
            &[("range", "bytes=90-"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{if_range}");
    }
}

/// With precompression on, `file.br` or `file.gz` is served when the client accepts it (Brotli
/// first, q=0 refusing), with `Content-Encoding`, the original file's content type and
/// `Vary: Accept-Encoding`; otherwise the plain file, still with `Vary`.
#[tokio::test]
async fn precompressed_variants_follow_accept_encoding() {
    let (server, dir) = serve(|d| StaticFiles::new(d).precompressed(true)).await;
    dir.write("public/app.js", "plain js");
    dir.write("public/app.js.br", "brotli js");
    dir.write("public/app.js.gz", "gzip js");
    dir.write("public/only-gz.css", "plain css");
    dir.write("public/only-gz.css.gz", "gzip css");
    for (path, accept, body, encoding) in [
        ("/static/app.js", Some("br"), "brotli js", Some("br")),
        ("/static/app.js", Some("gzip"), "gzip js", Some("gzip")),
        (
            "/static/app.js",
            Some("gzip, deflate, br"),
            "brotli js",
            Some("br"),
        ),
        (
            "/static/app.js",
            Some("br;q=0, gzip"),
            "gzip js",
            Some("gzip"),
        ),
        ("/static/app.js", Some("identity"), "plain js", None),
        ("/static/app.js", None, "plain js", None),
        ("/static/only-gz.css", Some("br"), "plain css", None),
        (
            "/static/only-gz.css",
            Some("br, gzip"),
            "gzip css",
            Some("gzip"),
        ),
    ] {
        let headers: Vec<_> = accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let res = get(&server, path, &headers).await;
        assert_eq!(
            (res.status, res.body.as_str()),
            (StatusCode::OK, body),
            "{accept:?}"
        );
        assert_eq!(
            res.header("content-encoding"),
            encoding,
            "{path} {accept:?}"
        );
        assert_eq!(
            res.header("vary"),
            Some("accept-encoding"),
            "{path} {accept:?}"
        );
        assert_eq!(res.header("content-length"), Some(&*body.len().to_string()));
        let expected_type = if path.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert_eq!(res.content_type(), expected_type, "{path} {accept:?}");
    }
    // A 304 stands for the varying answer, so it varies too.
    let etag = get(&server, "/static/app.js", &[("accept-encoding", "br")]).await;
    let etag = etag.header("etag").unwrap().to_owned();
    let headers = [("accept-encoding", "br"), ("if-none-match", etag.as_str())];
    let res = get(&server, "/static/app.js", &headers).await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    assert_eq!(res.header("vary"), Some("accept-encoding"));
}

/// Without precompression, the variants are never chosen and nothing varies.
#[tokio::test]
async fn precompressed_variants_are_off_by_default() {
    let (server, dir) = serve(StaticFiles::new).await;
    dir.write("public/app.js", "plain js");
    dir.write("public/app.js.br", "brotli js");
    let res = get(
        &server,
        "/static/app.js",
        &[("accept-encoding", "br, gzip")],
    )
    .await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "plain js")
    );
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(res.header("vary"), None);
}

/// `HEAD` answers the headers of `GET`, `Content-Length` included, and no body bytes.
#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let (server, _dir) = serve(StaticFiles::new).await;
    let raw = b"HEAD /static/alphabet.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let answer = server.raw_exchange(raw, RAW_WAIT).await;
    let (head, body) = split_head(&answer.text);
    assert_eq!(answer.status(), Some(200), "{head}");
    assert_eq!(raw_header(head, "content-length"), Some("26"));
    assert_eq!(raw_header(head, "content-type"), Some("text/plain"));
    assert_eq!(raw_header(head, "last-modified"), Some(MTIME_HTTP));
    assert!(raw_header(head, "etag").is_some(), "{head}");
    assert_eq!(body, "");
}

/// A directory with a slash serves its `index.html`; without one it is redirected to the
/// slash (query kept); one without `index.html` is a 404, never a listing; a route without
/// a parameter serves the directory's own `index.html`.
#[tokio::test]
async fn directories_serve_their_index() {
    let (server, _dir) = serve(StaticFiles::new).await;
    let res = get(&server, "/static/docs/", &[]).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "<h1>docs</h1>")
    );
    assert_eq!(res.content_type(), "text/html");
    let res = get(&server, "/static/docs", &[]).await;
    assert_eq!(res.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(res.header("location"), Some("/static/docs/"));
    let res = get(&server, "/static/docs?lang=en", &[]).await;
    assert_eq!(res.header("location"), Some("/static/docs/?lang=en"));
    // Without `index.html` the redirect still happens (the engine checks only that the
    // path is a directory), and its target is a 404.
    let res = get(&server, "/static/empty", &[]).await;
    assert_eq!(res.header("location"), Some("/static/empty/"));
    for path in ["/static/empty/", "/static/alphabet.txt/", "/static/nope"] {
        let res = get(&server, path, &[("accept", "text/html")]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            res.body.contains("<h1>404 Not Found</h1>"),
            "{path}: {}",
            res.body
        );
    }
    let res = get(&server, "/", &[]).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "<h1>home</h1>")
    );
}
