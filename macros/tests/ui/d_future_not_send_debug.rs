// (d) A future that is not `Send`: an `Rc` held across an `.await`; with `#[debug_handler]`.
use std::rc::Rc;

use rondo::{debug_handler, App, Session};

#[debug_handler]
async fn visits(session: Session) -> String {
    let label = Rc::new("visits");
    let count = session.get::<u32>("visits").await;
    format!("{label}: {count:?}")
}

fn main() {
    let _routes = |app: App| app.get("/visits", visits);
}
