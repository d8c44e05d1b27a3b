//! The plain HTTP app of the routing, extractor, limit, responder, timeout and shutdown tests:
//! no sessions, one route per feature, and a config with short timeouts.
//!
//! | Route | Answers |
//! |---|---|
//! | `GET /hello` | `hello world` |
//! | `GET /users/{id}`, `/pairs/{a}/{b}`, `/skus/{sku}/{qty}`, `/echo/{text}` | the parsed `Path` |
//! | `GET /search` | the parsed `Query` (`page`, optional `q`) |
//! | `POST /items` | the `Json` item back, `201` |
//! | `GET /list`, `POST /list` | `items`, `added`: one path, two methods |
//! | `POST /login` | the parsed `Form` (`user`, `age: u8`) |
//! | `POST /len` | the body's length |
//! | `GET /greet` | a registered `State` |
//! | `GET /redirect`, `/result/{ok}`, `/html` | the `Redirect`, `Result` and `Html` responders |
//! | `GET /headers` | how many headers arrived |
//! | `GET /slow`, `/very-slow` | after 500 ms, after 2 s |
//! | `GET /panic` | a panicking controller |

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use rondo::{App, Config, ErrorPage, Form, Html, Json, Path, Query, Redirect, State};
use serde::{Deserialize, Serialize};

use crate::http::TestServer;

/// The read timeout of raw exchanges that expect the server to close the connection.
pub const RAW_WAIT: Duration = Duration::from_secs(3);

/// A configuration with short timeouts, so that timeout tests stay fast.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.http.port = 0;
    config.http.header_read_timeout = Duration::from_millis(300);
    config.http.request_timeout = Duration::from_secs(5);
    config.http.shutdown_timeout = Duration::from_secs(5);
    config
}

#[derive(Debug, Deserialize, Serialize)]
struct Item {
    name: String,
    qty: u32,
}

#[derive(Debug, Deserialize)]
struct Sku {
    sku: String,
    qty: u32,
}

#[derive(Debug, Deserialize)]
struct Login {
    user: String,
    age: u8,
}

#[derive(Debug, Deserialize)]
struct Search {
    page: u32,
    q: Option<String>,
}

/// Registered with `App::state` in [`app`].
#[derive(Debug, Clone)]
struct Greeting(&'static str);

async fn hello() -> &'static str {
    "hello world"
}

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}")
}

async fn pair(Path((a, b)): Path<(String, u32)>) -> String {
    format!("{a}+{b}")
}

async fn sku(Path(s): Path<Sku>) -> String {
    format!("{} x{}", s.sku, s.qty)
}

async fn echo_param(Path(text): Path<String>) -> String {
    format!("[{text}]")
}

async fn search(Query(s): Query<Search>) -> String {
    format!("page {} q {}", s.page, s.q.unwrap_or_default())
}

async fn create_item(Json(item): Json<Item>) -> (StatusCode, Json<Item>) {
    (StatusCode::CREATED, Json(item))
}

async fn login(Form(l): Form<Login>) -> String {
    format!("{} is {}", l.user, l.age)
}

async fn body_len(body: String) -> String {
    format!("{} bytes", body.len())
}

async fn greet(State(g): State<Greeting>) -> String {
    g.0.to_owned()
}

async fn redirect() -> Redirect {
    Redirect::to("/x")
}

async fn result(Path(ok): Path<bool>) -> Result<String, ErrorPage> {
    if ok {
        Ok("fine".to_owned())
    } else {
        Err(ErrorPage::new(StatusCode::CONFLICT, "it went wrong"))
    }
}

async fn html() -> Html<&'static str> {
    Html("<p>hi</p>")
}

async fn list_items() -> &'static str {
    "items"
}

async fn add_item() -> &'static str {
    "added"
}

async fn headers_count(headers: HeaderMap) -> String {
    format!("{} headers", headers.len())
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(500)).await;
    "slow done"
}

async fn very_slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(2)).await;
    "too late"
}

async fn panics() -> &'static str {
    panic!("controller panicked on purpose")
}

/// The app most tests use, on `config`.
pub fn app(config: Config) -> App {
    App::new(config)
        .state(Greeting("hi from state"))
        .get("/hello", hello)
        .get("/users/{id}", user)
        .get("/pairs/{a}/{b}", pair)
        .get("/skus/{sku}/{qty}", sku)
        .get("/echo/{text}", echo_param)
        .get("/search", search)
        .post("/items", create_item)
        .get("/list", list_items)
        .post("/list", add_item)
        .post("/login", login)
        .post("/len", body_len)
        .get("/greet", greet)
        .get("/redirect", redirect)
        .get("/result/{ok}", result)
        .get("/html", html)
        .get("/headers", headers_count)
        .get("/slow", slow)
        .get("/very-slow", very_slow)
        .get("/panic", panics)
}

/// [`app`] on [`test_config`], served on a free port.
pub async fn start() -> TestServer {
    TestServer::start(app(test_config())).await
}
