// Correct controllers compile, with and without `#[debug_handler]`.
use rondo::http::{HeaderMap, StatusCode};
use rondo::{
    debug_handler, App, Bytes, CsrfForm, ErrorPage, Form, Json, Path, Query, Redirect, Request,
    Session, State,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Search {
    q: String,
}

#[derive(Clone)]
struct Greeting(&'static str);

async fn plain() -> &'static str {
    "hello"
}

#[debug_handler]
async fn no_arguments() {}

#[debug_handler]
async fn head_extractors(
    session: Session,
    Path(id): Path<u64>,
    Query(search): Query<Search>,
    State(greeting): State<Greeting>,
    headers: HeaderMap,
) -> Result<String, ErrorPage> {
    let _ = (session, headers);
    Ok(format!("{} {id} {}", greeting.0, search.q))
}

#[debug_handler]
async fn json_last(
    session: Session,
    Json(value): Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    let _ = session.get::<u32>("visits").await;
    Json(value)
}

#[debug_handler]
async fn form_last(Form(search): Form<Search>) -> (StatusCode, String) {
    (StatusCode::CREATED, search.q)
}

#[debug_handler]
async fn request_last(Path(name): Path<String>, request: Request) -> String {
    let _ = request;
    name
}

#[debug_handler]
async fn head_extractor_last(State(greeting): State<Greeting>) -> impl rondo::Responder {
    greeting.0
}

#[debug_handler]
async fn csrf_form_last(session: Session, CsrfForm(search): CsrfForm<Search>) -> Redirect {
    let _ = session;
    Redirect::to(&format!("/search?q={}", search.q))
}

#[debug_handler]
async fn bytes_last(mut body: Bytes) -> Vec<u8> {
    body.truncate(16);
    body.to_vec()
}

fn main() {
    let _routes = |app: App| {
        app.get("/", plain)
            .get("/empty", no_arguments)
            .get("/items/{id}", head_extractors)
            .post("/json", json_last)
            .post("/form", form_last)
            .post("/raw/{name}", request_last)
            .get("/greeting", head_extractor_last)
            .post("/search", csrf_form_last)
            .post("/bytes", bytes_last)
    };
}
