// (d) A future that is not `Send`: an `Rc` held across an `.await`.
use std::rc::Rc;

use rondo::{App, Session};

async fn visits(session: Session) -> String {
    let label = Rc::new("visits");
    let count = session.get::<u32>("visits").await;
    format!("{label}: {count:?}")
}

fn main() {
    let _routes = |app: App| app.get("/visits", visits);
}
