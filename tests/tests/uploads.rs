//! `Multipart` uploads over real HTTP: files stream to disk under random names inside
//! `[files] dir/uploads`, every limit answers 413 (or 415 for a type not allowed) and leaves
//! no file behind, client names never become paths, and a client that goes away mid-upload
//! leaves no partial file.

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use rondo::files::Multipart;
use rondo::{App, Config, Json};
use rondo_tests::eventually;
use rondo_tests::files::{content_type, file, multipart, part_head, text, FilesDir, BOUNDARY};
use rondo_tests::http::{request, split_head, TestResponse, TestServer};
use rondo_tests::plain_app::test_config;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// Answers what arrived: the text fields, and for each file its field, display name, type,
/// size, where it was written and its contents. The files are dropped (so removed) after.
async fn upload(form: Multipart) -> Json<Value> {
    let fields: Vec<Value> = form
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name, "value": f.value }))
        .collect();
    let mut files = Vec::new();
    for upload in form.files() {
        let bytes = upload.bytes().await.unwrap_or_default();
        files.push(json!({
            "field": upload.field(),
            "name": upload.file_name(),
            "type": upload.content_type(),
            "size": upload.size(),
            "path": upload.path().display().to_string(),
            "contents": String::from_utf8_lossy(&bytes),
        }));
    }
    Json(json!({ "fields": fields, "files": files }))
}

/// Limits small enough to cross: 1 KiB per file, 4 KiB per request, 2 files, 3 fields of
/// 64 bytes, PNG and plain text only.
fn config(dir: &Path) -> Config {
    let mut config = test_config();
    let files = &mut config.files;
    files.dir = dir.to_owned();
    files.max_file_bytes = 1024;
    files.max_request_bytes = 4096;
    files.max_files = 2;
    files.max_fields = 3;
    files.max_field_bytes = 64;
    files.allowed_types = vec!["image/png".to_owned(), "text/plain".to_owned()];
    config
}

async fn server(dir: &FilesDir) -> TestServer {
    TestServer::start(App::new(config(dir.path())).post("/upload", upload)).await
}

async fn post(server: &TestServer, body: String) -> TestResponse {
    let ct = content_type();
    server
        .send(request(
            "POST",
            "/upload",
            &[("content-type", ct.as_str())],
            body,
        ))
        .await
}

/// The uploads left on disk, once the request's files have had time to be dropped.
async fn settled(dir: &FilesDir) -> Vec<String> {
    // Removal happens when the response's controller future is dropped: right after.
    eventually("uploads removed", Duration::from_secs(5), || async {
        let left = dir.files();
        left.is_empty().then_some(left)
    })
    .await
}

/// Text fields and files arrive whole; each file was written to `uploads/<random>.part`
/// inside the directory, and is gone once the request is over.
#[tokio::test]
async fn an_upload_streams_to_disk_and_is_removed_after_the_request() {
    let dir = FilesDir::new();
    let server = server(&dir).await;
    let body = multipart(&[
        text("title", "holiday"),
        file("doc", "notes.txt", "text/plain", &"n".repeat(700)),
        text("tag", "é ü"),
        file("pic", "tiny.png", "image/png", "PNG"),
    ]);
    let response = post(&server, body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let json = response.json();
    assert_eq!(
        json["fields"],
        json!([{ "name": "title", "value": "holiday" }, { "name": "tag", "value": "é ü" }])
    );
    let files = json["files"].as_array().cloned().unwrap_or_default();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["name"], "notes.txt");
    assert_eq!(files[0]["type"], "text/plain");
    assert_eq!(files[0]["size"], 700);
    assert_eq!(files[0]["contents"], "n".repeat(700));
    assert_eq!(files[1]["field"], "pic");
    assert_eq!(files[1]["contents"], "PNG");
    for f in &files {
        let path = Path::new(f["path"].as_str().unwrap_or_default());
        assert_eq!(path.parent(), Some(dir.path().join("uploads").as_path()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(name.len() == 27 && name.ends_with(".part"), "{name}");
    }
    assert_eq!(settled(&dir).await, Vec::<String>::new());
}

/// A file over `max_file_bytes` is 413 and nothing stays on disk, also when a file before
/// it was fine.
#[tokio::test]
async fn a_file_over_its_limit_is_413_and_leaves_nothing() {
    let dir = FilesDir::new();
    let server = server(&dir).await;
    let body = multipart(&[
        file("a", "ok.txt", "text/plain", "fine"),
        file("b", "big.txt", "text/plain", &"x".repeat(1025)),
    ]);
    let response = post(&server, body).await;
    assert_eq!(
        response.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        response.body
    );
    assert!(
        response
            .body
            .contains("file is larger than the limit of 1024"),
        "{}",
        response.body
    );
    settled(&dir).await;
    let exact = post(
        &server,
        multipart(&[file("a", "max.txt", "text/plain", &"x".repeat(1024))]),
    )
    .await;
    assert_eq!(exact.status, StatusCode::OK, "{}", exact.body);
}

/// A body over `max_request_bytes` is 413: at once when its `Content-Length` says so, and
/// when it is chunked (no length) as soon as the limit is crossed; nothing stays on disk.
#[tokio::test]
async fn a_request_over_its_limit_is_413_declared_or_chunked() {
    let dir = FilesDir::new();
    let server = server(&dir).await;
    // Declared: five 900-byte files (each under the file limit) is over 4 KiB.
    let parts: Vec<_> = (0..5)
        .map(|i| file(&format!("f{i}"), "a.txt", "text/plain", &"y".repeat(900)))
        .collect();
    let body = multipart(&parts);
    assert!(body.len() > 4096);
    let response = post(&server, body.clone()).await;
    assert_eq!(
        response.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        response.body
    );
    assert!(
        response.body.contains("request is larger"),
        "{}",
        response.body
    );

    // Chunked: the same body in 512-byte chunks, with no length; only 2 files are allowed,
    // so the files limit must not be what refuses it: use text-free parts of 900 bytes in
    // two files and a long epilogue of chunks.
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nhost: t\r\ncontent-type: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        content_type()
    )
    .into_bytes();
    let two = multipart(&[
        file("a", "a.txt", "text/plain", &"z".repeat(900)),
        file("b", "b.txt", "text/plain", &"z".repeat(900)),
    ]);
    let padded = format!("{}{}", "p".repeat(3000), two); // a long preamble is part of the body
    for chunk in padded.as_bytes().chunks(512) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let exchange = server.raw_exchange(&raw, Duration::from_secs(3)).await;
    assert_eq!(exchange.status(), Some(413), "{}", exchange.text);
    assert!(
        split_head(&exchange.text).1.contains("request is larger"),
        "{}",
        exchange.text
    );
    settled(&dir).await;
}

/// A file part whose declared type is not allowed is 415 and nothing is written; too many
/// files or fields, or a field too long, is 413; a body that is not multipart is 415 and a
/// broken one 400.
#[tokio::test]
async fn types_counts_and_shapes_are_checked() {
    let dir = FilesDir::new();
    let server = server(&dir).await;
    let html = post(
        &server,
        multipart(&[file("a", "x.html", "text/html", "<script>")]),
    )
    .await;
    assert_eq!(
        html.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        html.body
    );
    assert!(
        html.body.contains("text/html are not accepted"),
        "{}",
        html.body
    );
    let three: Vec<_> = (0..3)
        .map(|i| file(&format!("f{i}"), "a.txt", "text/plain", "x"))
        .collect();
    let many = post(&server, multipart(&three)).await;
    assert_eq!(many.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", many.body);
    assert!(many.body.contains("too many files"), "{}", many.body);
    let fields: Vec<_> = (0..4).map(|i| text(&format!("t{i}"), "v")).collect();
    let many = post(&server, multipart(&fields)).await;
    assert_eq!(many.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", many.body);
    let long = post(&server, multipart(&[text("t", &"v".repeat(65))])).await;
    assert_eq!(long.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", long.body);
    assert!(long.body.contains("field is larger"), "{}", long.body);
    let json = server.post_json("/upload", "{}").await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = post(
        &server,
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end"),
    )
    .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.body);
    // An empty file input (no file chosen) is skipped, whatever its type.
    let empty = post(
        &server,
        multipart(&[file("a", "", "application/octet-stream", "")]),
    )
    .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(empty.json()["files"], json!([]));
    settled(&dir).await;
}

/// File names that try to leave the directory are only display names: each file is written
/// under a random name in `uploads/`, nothing appears where the names point, and the display
/// name is the last segment without control characters.
#[tokio::test]
async fn traversal_names_are_stored_under_random_names() {
    let dir = FilesDir::new();
    let server = server(&dir).await;
    let marker = format!("rondo-escape-{}", std::process::id());
    let depth = "../".repeat(dir.path().components().count() + 2);
    let names = [
        format!("{depth}tmp/{marker}.txt"),
        format!("..\\\\..\\\\{marker}.txt"),
        "/etc/passwd".to_owned(),
    ];
    let parts: Vec<_> = names[..2]
        .iter()
        .map(|n| file("f", n, "text/plain", "escape attempt"))
        .collect();
    let response = post(&server, multipart(&parts)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let third = post(
        &server,
        multipart(&[file("f", &names[2], "text/plain", "root")]),
    )
    .await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.body);
    let mut shown = Vec::new();
    for json in [response.json(), third.json()] {
        for f in json["files"].as_array().cloned().unwrap_or_default() {
            let path = Path::new(f["path"].as_str().unwrap_or_default()).to_owned();
            assert_eq!(
                path.parent(),
                Some(dir.path().join("uploads").as_path()),
                "{path:?}"
            );
            shown.push(f["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        shown,
        [
            format!("{marker}.txt"),
            format!("{marker}.txt"),
            "passwd".to_owned()
        ]
    );
    assert!(!Path::new(&format!("/tmp/{marker}.txt")).exists());
    assert!(!dir.path().join(format!("{marker}.txt")).exists());
    settled(&dir).await;
}

/// A client that sends half of a file and goes away leaves no partial file: the upload is
/// on disk while it arrives, and removed when the connection drops.
#[tokio::test]
async fn a_client_that_aborts_leaves_no_partial_file() {
    let dir = FilesDir::new();
    let server = server(&dir).await;
    let head = part_head(&file("f", "half.txt", "text/plain", ""));
    let sent = format!("{head}{}", "h".repeat(600));
    let raw = format!(
        "POST /upload HTTP/1.1\r\nhost: t\r\ncontent-type: {}\r\ncontent-length: 4000\r\n\r\n{sent}",
        content_type()
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connects");
    stream.write_all(raw.as_bytes()).await.expect("writes");
    let partial = eventually(
        "the partial upload on disk",
        Duration::from_secs(5),
        || async {
            let files = dir.files();
            files.iter().any(|f| f.ends_with(".part")).then_some(files)
        },
    )
    .await;
    assert_eq!(partial.len(), 1, "{partial:?}");
    drop(stream);
    settled(&dir).await;
}
