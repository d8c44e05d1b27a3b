// (c) Two body extractors: the body can be read only once; with `#[debug_handler]`.
use rondo::{debug_handler, App, Json};

#[debug_handler]
async fn echo(Json(item): Json<String>, raw: String) -> String {
    format!("{item} {raw}")
}

fn main() {
    let _routes = |app: App| app.post("/echo", echo);
}
