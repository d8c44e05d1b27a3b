// (e) `State<T>` whose `T` is not `Clone`.
use std::sync::atomic::{AtomicU64, Ordering};

use rondo::{App, State};

struct Hits {
    count: AtomicU64,
}

async fn hits(State(hits): State<Hits>) -> String {
    hits.count.fetch_add(1, Ordering::Relaxed).to_string()
}

fn main() {
    let _routes = |app: App| app.get("/hits", hits);
}
