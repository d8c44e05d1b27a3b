// (f) A controller that is not an `async fn`; with `#[debug_handler]`.
use rondo::{debug_handler, App, Path};

#[debug_handler]
fn hello(Path(name): Path<String>) -> String {
    format!("hello, {name}")
}

fn main() {
    let _routes = |app: App| app.get("/hello/{name}", hello);
}
