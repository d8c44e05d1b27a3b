// (g) Return types that are not responders; with `#[debug_handler]`.
use std::error::Error;

use rondo::{debug_handler, App, Path};

#[debug_handler]
async fn find(Path(id): Path<u64>) -> Option<String> {
    (id == 1).then(|| "one".to_owned())
}

#[debug_handler]
async fn describe() -> serde_json::Value {
    serde_json::json!({ "name": "rondo" })
}

#[debug_handler]
async fn read_motd() -> Result<String, std::io::Error> {
    std::fs::read_to_string("/etc/motd")
}

#[debug_handler]
async fn parse(Path(text): Path<String>) -> Result<String, Box<dyn Error>> {
    Ok(text.parse::<u64>()?.to_string())
}

fn main() {
    let _routes = |app: App| {
        app.get("/items/{id}", find)
            .get("/about", describe)
            .get("/motd", read_motd)
            .get("/parse/{text}", parse)
    };
}
