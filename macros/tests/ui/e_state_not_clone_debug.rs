// (e) `State<T>` whose `T` is not `Clone`; with `#[debug_handler]`.
use std::sync::atomic::{AtomicU64, Ordering};

use rondo::{debug_handler, App, State};

struct Hits {
    count: AtomicU64,
}

#[debug_handler]
async fn hits(State(hits): State<Hits>) -> String {
    hits.count.fetch_add(1, Ordering::Relaxed).to_string()
}

fn main() {
    let _routes = |app: App| app.get("/hits", hits);
}
