//! The HTML pages.

use rondo::Html;

/// `GET /`: the shop's front page.
pub async fn home() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>Rondo shop</title></head>\n<body><h1>Rondo shop</h1>",
        "<p>Your basket is empty.</p></body></html>\n"
    ))
}
