// (f) A controller that is not an `async fn`.
use rondo::{App, Path};

fn hello(Path(name): Path<String>) -> String {
    format!("hello, {name}")
}

fn main() {
    let _routes = |app: App| app.get("/hello/{name}", hello);
}
