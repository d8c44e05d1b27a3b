//! The example shop's HTML pages as rendered from its templates: real Redis, real HTTP.
//!
//! What a browser does with these pages is tested in `example-app/tests/browser.rs`; these
//! tests read the markup itself: escaping, the recommendations section, the stylesheet.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo::{ConfigLoader, SessionManager};
use rondo_tests::app::{csrf_token, example_config, start_example, Jar};
use rondo_tests::http::TestServer;
use rondo_tests::redis::RedisServer;

/// Posts the form at `action` on the current page with `fields` (already URL-encoded);
/// returns the page `/` shows afterwards.
async fn submit(jar: &mut Jar, server: &TestServer, action: &str, fields: &str) -> String {
    let page = jar.get(server, "/").await;
    let token = csrf_token(&page.body, action);
    let res = jar
        .post_form(server, action, &format!("_csrf={token}&{fields}"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{action}: {}", res.body);
    jar.get(server, "/").await.body
}

/// The recommendations section says "log in" to a visitor, "being prepared" after log-in,
/// and lists (escaped) what a background writer stored under `recommendations`.
#[tokio::test]
async fn recommendations_render_from_the_session_key() {
    let redis = RedisServer::start().await;
    let server = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    let page = jar.get(&server, "/").await.body;
    assert!(page.contains("<h2 id=\"recommendations-title\">Recommendations</h2>"));
    assert!(page.contains("Log in to get recommendations"), "{page}");

    let page = submit(&mut jar, &server, "/login", "user=ann").await;
    assert!(page.contains("being prepared…"), "{page}");
    assert!(!page.contains("<li>"), "{page}");

    // A writer outside the request path (as the recommendation job will be): its own
    // manager on the same Redis, opening the session by id.
    let config = example_config(redis.port(), "");
    let job = SessionManager::from_config(&config, &rondo::redis::Redis::new(config.redis.clone()))
        .await
        .unwrap();
    let session = job
        .open(jar.value.as_deref().unwrap())
        .await
        .unwrap()
        .expect("the logged-in session exists");
    session
        .put("recommendations", &vec!["TEA-01", "<script>x</script>"])
        .unwrap();
    session.persist().await.unwrap();

    let page = jar.get(&server, "/").await.body;
    assert!(page.contains("<li>TEA-01</li>"), "{page}");
    assert!(
        page.contains("<li>&lt;script&gt;x&lt;&#x2f;script&gt;</li>"),
        "{page}"
    );
    assert!(!page.contains("being prepared"), "{page}");
}

/// Lines show their quantities and the total; the clear form empties the basket page.
#[tokio::test]
async fn basket_page_lists_quantities_and_clears() {
    let redis = RedisServer::start().await;
    let server = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    let page = jar.get(&server, "/").await.body;
    assert!(page.contains("<p id=\"empty\">Your basket is empty.</p>"));
    assert!(!page.contains("action=\"/basket/clear\""), "no clear form");

    submit(&mut jar, &server, "/basket/add", "sku=TEA-01&qty=2").await;
    submit(&mut jar, &server, "/basket/add", "sku=MUG&qty=1").await;
    let page = submit(&mut jar, &server, "/basket/add", "sku=TEA-01&qty=3").await;
    let rows = [
        "<tr><td class=\"sku\">TEA-01</td><td class=\"num qty\">5</td></tr>",
        "<tr><td class=\"sku\">MUG</td><td class=\"num qty\">1</td></tr>",
    ];
    let (first, second) = (page.find(rows[0]), page.find(rows[1]));
    assert!(first.is_some() && second.is_some(), "{page}");
    assert!(first < second, "lines keep the order they were added in");
    assert!(page.contains("<span id=\"total\">6</span>"), "{page}");
    assert!(page.contains("Added 3 × TEA-01."), "{page}");

    let page = submit(&mut jar, &server, "/basket/clear", "").await;
    assert!(page.contains("<p id=\"empty\">Your basket is empty.</p>"));
    assert!(page.contains("Your basket is empty now."), "{page}");
    assert!(!page.contains("id=\"total\""), "{page}");
}

/// A user name with markup is shown escaped, in the bar and in the welcome notice.
#[tokio::test]
async fn user_values_are_escaped() {
    let redis = RedisServer::start().await;
    let server = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    let page = submit(&mut jar, &server, "/login", "user=%3Cb%3EAnn%3C%2Fb%3E").await;
    assert!(
        page.contains("<strong id=\"user\">&lt;b&gt;Ann&lt;&#x2f;b&gt;</strong>"),
        "{page}"
    );
    assert!(page.contains("Welcome, &lt;b&gt;Ann"), "{page}");
    assert!(!page.contains("<b>Ann"), "{page}");
}

/// `/static/shop.css` is the stylesheet the page links, as CSS, cacheable, with no session.
#[tokio::test]
async fn stylesheet_is_served_as_cacheable_css() {
    let redis = RedisServer::start().await;
    let server = start_example(example_config(redis.port(), "")).await;
    let page = server.get("/").await;
    assert!(page
        .body
        .contains("<link rel=\"stylesheet\" href=\"/static/shop.css\">"));
    let css = server.get("/static/shop.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.content_type(), "text/css; charset=utf-8");
    assert_eq!(css.header("cache-control"), Some("public, max-age=86400"));
    assert!(css.header("set-cookie").is_none(), "no session for a file");
    assert!(css.body.contains(".flash {"), "{}", css.body);
}

/// `[example] templates` naming a missing directory stops the start with the path named.
#[tokio::test]
async fn a_missing_templates_directory_stops_the_start() {
    let config = ConfigLoader::new()
        .section("example")
        .parse_str(
            "[session]\nstore = memory\n[example]\ntemplates = /nonexistent/rondo-templates\n",
            "test.ini",
        )
        .unwrap();
    let err = example_app::build(config)
        .await
        .err()
        .expect("the start fails");
    assert!(
        err.to_string().contains("/nonexistent/rondo-templates"),
        "{err}"
    );
}

/// The page's footer names the store that serves the sessions: Redis, or, when `store =
/// auto` finds no `[redis]` pool at all, this process's memory (the app still starts).
#[tokio::test]
async fn the_footer_names_the_store_that_serves() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let page = shop.get("/").await;
    assert!(page.body.contains("sessions in Redis"), "{}", page.body);

    let config = rondo::ConfigLoader::new()
        .section("example")
        .parse_str("[http]\nport = 0\n[session]\nstore = auto\n", "test.ini")
        .unwrap();
    let shop = start_example(config).await;
    let page = shop.get("/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("sessions in this process&#x27;s memory"),
        "{}",
        page.body
    );
}
