// (a) An argument that is not an extractor: a path parameter taken as a bare `u64`.
use rondo::{App, Session};

async fn show_item(session: Session, id: u64) -> String {
    let _ = session;
    format!("item {id}")
}

fn main() {
    let _routes = |app: App| app.get("/items/{id}", show_item);
}
