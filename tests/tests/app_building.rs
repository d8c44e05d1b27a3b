//! Building an app as an axum user would: groups of routes nested under a prefix or merged,
//! middleware on a group, a fallback; the mistakes refused before the server listens; and
//! requests sent in-process with a cookie jar (`rondo::testing::TestClient`).

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo::middleware::from_fn;
use rondo::session::store::MemoryStore;
use rondo::testing::TestClient;
use rondo::{App, Config, Path, Routes, Session, SessionError, SessionManager, State};
use rondo_tests::app::example_config;
use rondo_tests::redis::RedisServer;

/// A middleware that appends `tag` to the `x-trail` header of the response, so a test can
/// read which middleware ran, outermost first.
fn trail(tag: &'static str) -> impl rondo::Middleware {
    from_fn(move |req, next| async move {
        let mut response = next.run(req).await;
        let before = response
            .headers()
            .get("x-trail")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let value = match before {
            Some(before) => format!("{tag},{before}"),
            None => tag.to_owned(),
        };
        response
            .headers_mut()
            .insert("x-trail", value.parse().unwrap());
        response
    })
}

async fn user(Path(id): Path<u32>) -> String {
    format!("user {id}")
}

/// A group nested under `/admin` answers at `/admin` and `/admin/users/{id}` inside its own
/// middleware and the app's (app outermost); a merged group answers at its own paths; paths
/// outside every group still answer 404 and the groups' middleware does not run for them.
#[tokio::test]
async fn nested_and_merged_groups_route_with_their_middleware() {
    let admin = Routes::new()
        .get("/", || async { "admin home" })
        .get("/users/{id}", user)
        .middleware(trail("admin"));
    let api = Routes::new()
        .get("/health", || async { "ok" })
        .middleware(trail("api"));
    let app = App::new(Config::default())
        .middleware(trail("app"))
        .get("/", || async { "home" })
        .nest("/admin", admin)
        .merge(api);
    let client = TestClient::new(app);

    let res = client.get("/admin").send().await;
    assert_eq!(
        (res.status, res.text()),
        (StatusCode::OK, "admin home".into())
    );
    assert_eq!(res.header("x-trail"), Some("app,admin"));
    let res = client.get("/admin/users/7").send().await;
    assert_eq!(res.text(), "user 7");
    assert_eq!(res.header("x-trail"), Some("app,admin"));
    let res = client.get("/health").send().await;
    assert_eq!(
        (res.text().as_str(), res.header("x-trail")),
        ("ok", Some("app,api"))
    );
    let res = client.get("/").send().await;
    assert_eq!(
        (res.text().as_str(), res.header("x-trail")),
        ("home", Some("app"))
    );
    let res = client.get("/admin/nope").send().await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.header("x-trail"), Some("app"));
}

/// Groups nest in groups: the inner group's routes run inside both groups' middleware.
#[tokio::test]
async fn groups_nest_in_groups() {
    let reports = Routes::new()
        .get("/{year}", |Path(year): Path<u16>| async move {
            format!("report {year}")
        })
        .middleware(trail("reports"));
    let admin = Routes::new()
        .nest("/reports", reports)
        .middleware(trail("admin"));
    let client = TestClient::new(App::new(Config::default()).nest("/admin", admin));
    let res = client.get("/admin/reports/2026").send().await;
    assert_eq!(res.text(), "report 2026");
    assert_eq!(res.header("x-trail"), Some("admin,reports"));
}

/// A fallback answers every path no route has, inside the app's middleware; a path a route
/// has with another method still answers 405.
#[tokio::test]
async fn a_fallback_answers_unmatched_paths() {
    let app = App::new(Config::default())
        .middleware(trail("app"))
        .post("/items", || async { "created" })
        .fallback(|uri: http::Uri| async move {
            (StatusCode::NOT_FOUND, format!("nothing at {}", uri.path()))
        });
    let client = TestClient::new(app);
    let res = client.get("/missing/page").send().await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.text(), "nothing at /missing/page");
    assert_eq!(res.header("x-trail"), Some("app"));
    let res = client.get("/items").send().await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// Route patterns that would never match are refused when they are added, saying what to
/// write instead; so are prefixes that cannot be nested under.
#[test]
fn patterns_that_never_match_are_refused() {
    let app = || App::new(Config::default());
    let err = app().try_route(http::Method::GET, "about", || async { "" });
    let err = err.err().unwrap().to_string();
    assert!(err.contains(r#"expected "/about""#), "{err}");
    let err = app().try_route(http::Method::GET, "/old/:id", || async { "" });
    let err = err.err().unwrap().to_string();
    assert!(err.contains("a parameter is written {id}"), "{err}");
    let err = app().try_route(http::Method::GET, "/files/*rest", || async { "" });
    let err = err.err().unwrap().to_string();
    assert!(err.contains("the rest of the path {*rest}"), "{err}");
    // In a group, a pattern without its `/` is refused, not glued to the prefix.
    let group = Routes::new().get("users", || async { "" });
    let err = app().try_nest("/admin", group).err().unwrap().to_string();
    assert_eq!(
        err,
        r#"invalid route: "users": a route pattern starts with /; expected "/users""#
    );
    let err = app()
        .try_nest("/admin/", Routes::new())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not end with one"), "{err}");
    let caught = std::panic::catch_unwind(|| app().get("/old/:id", || async { "" }));
    assert!(
        caught.is_err(),
        "App::get panics on a pattern that cannot match"
    );
}

#[derive(Clone)]
struct Greeting(&'static str);

async fn greet(State(greeting): State<Greeting>) -> &'static str {
    greeting.0
}

async fn count(session: Session) -> Result<String, SessionError> {
    let n = session
        .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(n.to_string())
}

/// A route whose arguments need state never registered (a `State<T>`, or a session without
/// a session manager) stops the start, naming the route and the type; `serve` returns that
/// error before it listens, and a `main` printing it with `Debug` shows the same sentence.
#[tokio::test]
async fn a_route_needing_unregistered_state_does_not_start() {
    let app = || {
        App::new(Config::default())
            .get("/greet", greet)
            .post("/count", count)
    };
    let err = app().check().unwrap_err().to_string();
    assert_eq!(
        err,
        "the app cannot start: GET /greet asks for State<app_building::Greeting>, which was \
         never registered (App::state, or App::with for a component that provides it); \
         POST /count takes a Session (or CsrfForm), but no SessionManager was installed \
         (App::with(sessions))"
    );
    assert_eq!(format!("{:?}", app().check().unwrap_err()), err);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = rondo::serve(listener, app(), std::future::ready(())).await;
    let err = served.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("GET /greet"), "{err}");
    let inner = err.into_inner().unwrap();
    assert!(
        inner.downcast_ref::<rondo::StartError>().is_some(),
        "{inner}"
    );
    // Registered, it starts.
    let sessions = SessionManager::new(MemoryStore::new(), &Config::default(), "");
    assert!(app().state(Greeting("hi")).with(sessions).check().is_ok());
}

/// A port that is taken is refused by `bind` with the address and the settings it came
/// from, and the operating system's error kind kept.
#[tokio::test]
async fn binding_a_taken_port_names_the_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut config = Config::default();
    config.http.port = port;
    let err = rondo::bind(&config.http).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot listen on 127.0.0.1:{port} ([http] host, port): "
        )),
        "{text}"
    );
    // The same sentence inside io::Error's Debug, unquoted.
    assert!(
        format!("{err:?}").contains("error: cannot listen on 127.0.0.1:"),
        "{err:?}"
    );
}

/// In-process requests carry the session through the client's cookie jar, on the memory
/// store and on Redis: counts go up, a new client starts over, and the session's commit
/// after each response is in Redis.
#[tokio::test]
async fn in_process_requests_carry_the_session() {
    let memory = SessionManager::new(MemoryStore::new(), &Config::default(), "");
    let client = TestClient::new(
        App::new(Config::default())
            .with(memory)
            .get("/count", count),
    );
    for expected in ["1", "2", "3"] {
        assert_eq!(client.get("/count").send().await.text(), expected);
    }
    assert!(client.cookie("dmsession").is_some());
    client.clear_cookies();
    assert_eq!(client.get("/count").send().await.text(), "1");
    client.shutdown().await;

    let redis = RedisServer::start().await;
    let app = App::new(example_config(redis.port(), ""));
    let sessions = SessionManager::from_config(app.config(), app.redis())
        .await
        .unwrap();
    let client = TestClient::new(app.with(sessions).get("/count", count));
    assert_eq!(client.get("/count").send().await.text(), "1");
    assert_eq!(client.get("/count").send().await.text(), "2");
    client.shutdown().await;
    let keys = redis.keys("t:session:*").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
}
