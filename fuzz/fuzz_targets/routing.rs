//! Routing and extraction: an arbitrary request (method, target, headers, body) sent to an
//! app with path, query, JSON, form, text, header, session and CSRF-form arguments gets an
//! answer that is never a 5xx, and the app keeps answering.
//!
//! Input: the first line is `METHOD TARGET`, the next lines `name: value` headers up to an
//! empty line, the rest is the body.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use rondo::Service;
use rondo::http::HeaderMap;
use rondo::session::store::MemoryStore;
use rondo::{App, Body, Config, CsrfForm, Form, Json, Path, Query, Session, SessionManager};
use serde::Deserialize;

#[derive(Deserialize)]
struct Item {
    sku: String,
    qty: u32,
}

#[derive(Deserialize)]
struct Search {
    q: String,
    page: Option<u16>,
}

async fn pair(Path((name, n)): Path<(String, u32)>) -> String {
    format!("{name}{n}")
}

async fn search(Query(s): Query<Search>) -> String {
    format!("{}{:?}", s.q, s.page)
}

async fn item(Json(item): Json<Item>) -> String {
    format!("{}{}", item.sku, item.qty)
}

async fn form(Form(item): Form<Item>) -> String {
    item.sku
}

async fn text(body: String) -> String {
    body.len().to_string()
}

async fn headers(headers: HeaderMap) -> String {
    headers.len().to_string()
}

/// Reads only: a fuzz input must not grow the memory store without bound.
async fn user(session: Session) -> Result<String, rondo::SessionError> {
    Ok(session.get::<String>("user").await?.unwrap_or_default())
}

async fn csrf(CsrfForm(item): CsrfForm<Item>) -> String {
    item.sku
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: Service,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ini = "[http]\nmax_body_bytes = 4k\nbody_read_timeout = 1s\n\
                   [session]\nstore = memory\nmax_actors = 64\nactor_idle_timeout = 50ms\n";
        let config = Config::parse_str(ini, "fuzz.ini").expect("valid config");
        let sessions = SessionManager::new(MemoryStore::new(), &config, "");
        let app = App::new(config)
            .with(sessions.clone())
            .get("/", || async { "home" })
            .get("/pair/{name}/{n}", pair)
            .get("/search", search)
            .post("/items", item)
            .post("/form", form)
            .put("/text", text)
            .get("/headers", headers)
            .get("/user", user)
            .post("/csrf", csrf)
            .get("/files/{*rest}", |Path(rest): Path<String>| async move { rest });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let (app, _hooks) = app.into_service();
        Fixture { runtime, app }
    })
}

fn request(data: &[u8]) -> Option<http::Request<Body>> {
    let mut lines = data.split(|b| *b == b'\n');
    let first = lines.next()?;
    let space = first.iter().position(|b| *b == b' ')?;
    let method = Method::from_bytes(&first[..space]).ok()?;
    let mut builder = http::Request::builder()
        .method(method)
        .uri(&first[space + 1..]);
    let mut consumed = first.len() + 1;
    for line in lines.by_ref() {
        consumed += line.len() + 1;
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|b| *b == b':')?;
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
        builder = builder.header(name, value);
    }
    let body = data.get(consumed..).unwrap_or_default().to_vec();
    builder.body(Body::full(body)).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = request(data) else {
        return;
    };
    let fixture = fixture();
    let status = fixture.runtime.block_on(async {
        let response = fixture.app.handle(req).await;
        response.status()
    });
    assert!(
        !status.is_server_error(),
        "{status} for {:?}",
        String::from_utf8_lossy(data)
    );
    assert_ne!(status, StatusCode::SWITCHING_PROTOCOLS);
});
