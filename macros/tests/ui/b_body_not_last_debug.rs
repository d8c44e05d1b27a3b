// (b) A body extractor before another argument; with `#[debug_handler]`.
use rondo::{debug_handler, App, Json, Session, SessionError};

#[debug_handler]
async fn add_item(
    Json(item): Json<String>,
    session: Session,
) -> Result<&'static str, SessionError> {
    session.put("item", &item)?;
    Ok("added")
}

fn main() {
    let _routes = |app: App| app.post("/basket", add_item);
}
