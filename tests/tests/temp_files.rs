//! Temporary files over real HTTP, on a real `redis-server`: stored from an upload against
//! a byte quota per owner, downloaded only through their signed link (as an attachment,
//! `nosniff`, exact length), and swept from disk by the job queue once expired — including
//! the files of a server that stopped, swept by the one that started after it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use rondo::files::{FilesError, Multipart, TempFiles};
use rondo::jobs::Jobs;
use rondo::signed::{AppKey, SignedUrls};
use rondo::{App, Config, Json, Path as PathArg, Query, SessionManager, State};
use rondo_tests::app::example_config;
use rondo_tests::eventually;
use rondo_tests::files::{content_type, file, multipart, FilesDir};
use rondo_tests::http::{request, TestResponse, TestServer};
use rondo_tests::redis::RedisServer;
use serde::Deserialize;
use serde_json::{json, Value};

const KEY: &str = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[derive(Deserialize)]
struct Keep {
    owner: String,
    ttl: u64,
}

/// Keeps every uploaded file for `ttl` seconds against `owner`; answers each one's id, link
/// and expiry.
async fn keep(
    State(files): State<TempFiles>,
    Query(keep): Query<Keep>,
    form: Multipart,
) -> Result<Json<Vec<Value>>, FilesError> {
    let mut out = Vec::new();
    for upload in form.into_files() {
        let stored = files
            .store(upload, &keep.owner, Duration::from_secs(keep.ttl))
            .await?;
        out.push(json!({
            "id": stored.id,
            "link": files.path(&stored, Duration::from_secs(600))?,
            "expires_at": stored.expires_at,
            "size": stored.size,
        }));
    }
    Ok(Json(out))
}

async fn usage(
    State(files): State<TempFiles>,
    PathArg(owner): PathArg<String>,
) -> Result<String, FilesError> {
    Ok(files.usage(&owner).await?.to_string())
}

/// A config on `redis_port` with `[files] dir = dir`, a 1000-byte quota, a 300 ms sweep
/// interval and the test key.
fn config(redis_port: u16, dir: &Path) -> Config {
    let extra = format!(
        "[app]\nkey = {KEY}\nurl = https://files.example\n[files]\ndir = {}\nowner_quota = 1000\n\
         sweep_interval = 300ms\nallowed_types = text/*\n[jobs]\nclaim_timeout = 1s\n",
        dir.display()
    );
    example_config(redis_port, &extra)
}

/// The app: sessions, jobs (with the sweeper), signed links and temporary files, all on the
/// test Redis and `dir`.
async fn server(redis_port: u16, dir: &Path) -> TestServer {
    let app = App::new(config(redis_port, dir));
    let urls = SignedUrls::from_config(app.config()).expect("a key");
    let sessions = SessionManager::from_config(app.config(), app.redis())
        .await
        .expect("sessions");
    let files = TempFiles::from_config(app.config(), app.redis(), &sessions, &urls)
        .await
        .expect("temporary files");
    let jobs = files
        .with_sweeper(Jobs::builder(app.config(), app.redis(), &sessions))
        .start()
        .await
        .expect("jobs");
    files.schedule_sweeps(&jobs);
    let app = app
        .with(urls)
        .with(sessions)
        .with(jobs)
        .with(files)
        .post("/keep", keep)
        .get("/usage/{owner}", usage);
    TestServer::start(app).await
}

async fn store(
    server: &TestServer,
    owner: &str,
    ttl: u64,
    parts: &[rondo_tests::files::Part],
) -> TestResponse {
    let ct = content_type();
    server
        .send(request(
            "POST",
            &format!("/keep?owner={owner}&ttl={ttl}"),
            &[("content-type", ct.as_str())],
            multipart(parts),
        ))
        .await
}

/// The kept files on disk (names in `temp/`).
fn kept(dir: &FilesDir) -> Vec<String> {
    dir.files()
        .into_iter()
        .filter_map(|f| f.strip_prefix("temp/").map(str::to_owned))
        .collect()
}

/// A stored file downloads through its link with the exact bytes and length, as a
/// `nosniff` attachment under its (sanitized) name; changed, expired-signature or unsigned
/// requests are 403; its bytes sit in `temp/<expires>-<id>` and its record in Redis expires
/// with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_file_downloads_only_through_its_signed_link() {
    let redis = RedisServer::start().await;
    let dir = FilesDir::new();
    let server = server(redis.port(), dir.path()).await;
    let contents = "line one\nline two\n";
    let response = store(
        &server,
        "ann",
        3600,
        &[file("f", "../secret/report.txt", "text/plain", contents)],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let stored = &response.json()[0];
    let id = stored["id"].as_str().unwrap_or_default().to_owned();
    let link = stored["link"].as_str().unwrap_or_default().to_owned();
    assert!(link.starts_with(&format!("/files/{id}?expires=")), "{link}");

    let download = server.get(&link).await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.body);
    assert_eq!(download.body, contents);
    assert_eq!(download.header("content-length"), Some("18"));
    assert_eq!(download.header("content-type"), Some("text/plain"));
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename=\"report.txt\"; filename*=UTF-8''report.txt")
    );
    assert_eq!(download.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(download.header("cache-control"), Some("private, no-store"));
    assert_eq!(download.header("referrer-policy"), Some("no-referrer"));

    let unsigned = server.get(&format!("/files/{id}")).await;
    assert_eq!(unsigned.status, StatusCode::FORBIDDEN);
    let other = link.replacen(&id[..4], "AAAA", 1);
    assert_eq!(server.get(&other).await.status, StatusCode::FORBIDDEN);
    let urls = SignedUrls::new(AppKey::parse(KEY).expect("key"), "");
    let stale = urls
        .sign_until(&format!("/files/{id}"), rondo::signed::unix_now() - 1)
        .expect("signable");
    let refused = server.get(&stale).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("expired"), "{}", refused.body);
    let missing = urls
        .sign("/files/AAAAAAAAAAAAAAAAAAAAAA", Duration::from_secs(60))
        .expect("signable");
    assert_eq!(server.get(&missing).await.status, StatusCode::NOT_FOUND);

    let on_disk = kept(&dir);
    let expires = stored["expires_at"].as_u64().unwrap_or_default();
    assert_eq!(on_disk, [format!("{expires}-{id}")]);
    assert!(
        dir.files().iter().all(|f| f.starts_with("temp/")),
        "{:?}",
        dir.files()
    );
    let ttl = redis.ttl_ms(&format!("t:files:{{{id}}}")).await;
    assert!((3_590_000..=3_600_000).contains(&ttl), "{ttl}");
    let metrics = server.get("/metrics").await.body;
    assert!(metrics.contains("rondo_files_stored_total 1"), "{metrics}");
    assert!(
        metrics.contains("rondo_files_stored_bytes_total 18"),
        "{metrics}"
    );
}

/// An owner holds at most `owner_quota` bytes: a file that would pass it is 413 and is not
/// kept; another owner is not affected; a deleted or expired file frees its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_is_per_owner() {
    let redis = RedisServer::start().await;
    let dir = FilesDir::new();
    let server = server(redis.port(), dir.path()).await;
    let six = "6".repeat(600);
    assert_eq!(
        store(
            &server,
            "room-a",
            3600,
            &[file("f", "a.txt", "text/plain", &six)]
        )
        .await
        .status,
        StatusCode::OK
    );
    // Two seconds: at least one full second before it expires, whatever the clock's phase.
    assert_eq!(
        store(
            &server,
            "room-a",
            2,
            &[file("f", "b.txt", "text/plain", &"3".repeat(300))]
        )
        .await
        .status,
        StatusCode::OK
    );
    let over = store(
        &server,
        "room-a",
        3600,
        &[file("f", "c.txt", "text/plain", &"1".repeat(101))],
    )
    .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", over.body);
    assert!(
        over.body.contains("quota of 1000 bytes (900 in use)"),
        "{}",
        over.body
    );
    assert_eq!(kept(&dir).len(), 2);
    assert_eq!(
        store(
            &server,
            "room-b",
            3600,
            &[file("f", "d.txt", "text/plain", &six)]
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(server.get("/usage/room-a").await.body, "900");
    assert_eq!(server.get("/usage/room-b").await.body, "600");
    // The two-second file expires, and its bytes stop counting.
    eventually(
        "the short file to stop counting",
        Duration::from_secs(5),
        || async { (server.get("/usage/room-a").await.body == "600").then_some(()) },
    )
    .await;
    let fits = store(
        &server,
        "room-a",
        3600,
        &[file("f", "c.txt", "text/plain", &"1".repeat(400))],
    )
    .await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.body);
    let metrics = server.get("/metrics").await.body;
    assert!(
        metrics.contains("rondo_files_quota_refused_total 1"),
        "{metrics}"
    );
}

/// Files that expire are removed from disk by the sweep job, also those a server stored
/// before it stopped: a new server on the same Redis and directory sweeps them, with a
/// file whose record is gone and an upload a crash left behind; the file that has not
/// expired stays, and its link still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_files_are_swept_also_after_a_restart() {
    let redis = RedisServer::start().await;
    let dir = FilesDir::new();
    let first = server(redis.port(), dir.path()).await;
    let short = store(
        &first,
        "ann",
        1,
        &[
            file("a", "a.txt", "text/plain", "expires soon"),
            file("b", "b.txt", "text/plain", "this one too"),
        ],
    )
    .await;
    assert_eq!(short.status, StatusCode::OK, "{}", short.body);
    let long = store(
        &first,
        "ann",
        3600,
        &[file("c", "c.txt", "text/plain", "stays")],
    )
    .await;
    let long = long.json()[0].clone();
    let short_link = short.json()[0]["link"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(kept(&dir).len(), 3);
    first.shutdown().await.expect("the first server stops");

    // What a crash leaves: a kept file without a record, an upload nobody holds.
    let old = SystemTime::now() - Duration::from_secs(3600);
    let orphan = dir.path().join(format!(
        "temp/{}-BBBBBBBBBBBBBBBBBBBBBB",
        rondo::signed::unix_now() + 3600
    ));
    let abandoned = dir.path().join("uploads/CCCCCCCCCCCCCCCCCCCCCC.part");
    for path in [&orphan, &abandoned] {
        std::fs::write(path, "left behind").expect("written");
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("opened");
        file.set_modified(old).expect("settable");
    }
    let foreign = dir.path().join("temp/README");
    std::fs::write(&foreign, "not ours").expect("written");

    let second = server(redis.port(), dir.path()).await;
    let left = eventually("the sweep", Duration::from_secs(10), || async {
        let files = dir.files();
        (files.len() == 2).then_some(files)
    })
    .await;
    let long_id = long["id"].as_str().unwrap_or_default();
    assert_eq!(
        left,
        [
            format!("temp/{}-{long_id}", long["expires_at"]),
            "temp/README".to_owned()
        ]
    );
    // Its link ended with it; a fresh link to it finds nothing.
    let ended = second.get(&short_link).await;
    assert_eq!(ended.status, StatusCode::FORBIDDEN, "{}", ended.body);
    assert!(ended.body.contains("expired"), "{}", ended.body);
    let short_id = short.json()[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let urls = SignedUrls::new(AppKey::parse(KEY).expect("key"), "");
    let fresh = urls
        .sign(&format!("/files/{short_id}"), Duration::from_secs(60))
        .expect("signable");
    let gone = second.get(&fresh).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    let stays = second.get(long["link"].as_str().unwrap_or_default()).await;
    assert_eq!(
        (stays.status, stays.body.as_str()),
        (StatusCode::OK, "stays")
    );
    let metrics = second.get("/metrics").await.body;
    assert!(metrics.contains("rondo_files_swept_total 4"), "{metrics}");
}
