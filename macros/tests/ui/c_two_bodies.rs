// (c) Two body extractors: the body can be read only once.
use rondo::{App, Json};

async fn echo(Json(item): Json<String>, raw: String) -> String {
    format!("{item} {raw}")
}

fn main() {
    let _routes = |app: App| app.post("/echo", echo);
}
