// `#[debug_handler]` where it does not apply: each gets an error saying why.
use rondo::{debug_handler, Path};

struct Shop;

impl Shop {
    #[debug_handler]
    async fn method(&self, Path(id): Path<u64>) -> String {
        id.to_string()
    }
}

#[debug_handler]
async fn generic<T: Send>(Path(id): Path<u64>, _marker: Option<T>) -> String {
    id.to_string()
}

#[debug_handler]
async fn borrowed(name: &str) -> String {
    name.to_owned()
}

#[debug_handler(strict)]
async fn with_arguments() -> &'static str {
    "arguments"
}

#[debug_handler]
struct NotAFunction;

fn main() {
    let _ = (Shop, NotAFunction);
}
