//! Links with a quota and a start time: one suite run against the memory store and the
//! Redis store (a private `redis-server`), then over real HTTP on two app servers sharing
//! one Redis (fifty participants, five places), a link that opens two seconds later, every
//! refusal's status and reason, the metrics, and the Redis store on a Redis Cluster.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use rondo::config::{RedisMode, RedisPoolConfig};
use rondo::links::{
    LinkError, LinkStore, Links, MemoryLinks, NewLink, Redeemed, RedisLinks, Refusal,
};
use rondo::redis::RedisPool;
use rondo::signed::unix_now as now;
use rondo::{App, Json, Path, SessionManager, State};
use rondo_tests::app::example_config;
use rondo_tests::http::{request, TestResponse, TestServer};
use rondo_tests::redis::RedisServer;
use rondo_tests::redis_ha::RedisCluster;
use serde::Deserialize;
use serde_json::{json, Value};

/// A store under test, and the server it needs (if any) kept alive alongside.
struct Backend {
    store: Arc<dyn LinkStore>,
    _server: Option<RedisServer>,
}

async fn memory_backend() -> Backend {
    Backend {
        store: Arc::new(MemoryLinks::new()),
        _server: None,
    }
}

async fn redis_backend() -> Backend {
    let server = RedisServer::start().await;
    let pool = RedisPool::new(&server.pool_config("t:")).await.unwrap();
    Backend {
        store: Arc::new(RedisLinks::new(pool)),
        _server: Some(server),
    }
}

/// Sleeps until the system clock (which the local `redis-server` shares) reaches `second`.
async fn wait_until(second: u64) {
    for _ in 0..200 {
        if now() >= second {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the clock did not reach {second}");
}

/// An id of the right shape that no store made.
const NO_SUCH_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

/// The suite, written once against the trait.
mod suite {
    use super::*;

    /// 50 redeemers at once on a 5-place link: exactly 5 admitted, places 1 to 5, 45 used up.
    pub(super) async fn fifty_racers_five_places(store: Arc<dyn LinkStore>) {
        let t = now();
        let id = store
            .create(NewLink::new("/room/five", t - 1, t + 60, 5))
            .await
            .unwrap();
        let racers: Vec<_> = (0..50)
            .map(|i| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move {
                    store
                        .redeem(id.as_str(), &format!("guest-{i}"))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut admitted = Vec::new();
        let mut refused = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                Ok(redeemed) => admitted.push(redeemed),
                Err(refusal) => refused.push(refusal),
            }
        }
        assert_eq!(admitted.len(), 5, "{admitted:?}");
        assert!(admitted
            .iter()
            .all(|r| r.first_time && r.target == "/room/five"));
        let places: BTreeSet<u32> = admitted.iter().map(|r| r.uses).collect();
        assert_eq!(places, BTreeSet::from([1, 2, 3, 4, 5]));
        assert_eq!(refused, vec![Refusal::UsedUp; 45]);
        assert_eq!(store.inspect(id.as_str()).await.unwrap().unwrap().uses, 5);
    }

    /// A redeemer who got in keeps one place, even once the link is full.
    pub(super) async fn same_redeemer_uses_one_place(store: Arc<dyn LinkStore>) {
        let t = now();
        let id = store
            .create(NewLink::new("/room/two", t - 1, t + 60, 2))
            .await
            .unwrap();
        let redeem = |who: &'static str| {
            let (store, id) = (store.clone(), id.clone());
            async move { store.redeem(id.as_str(), who).await.unwrap() }
        };
        let admitted = |uses, first_time| {
            Ok(Redeemed {
                target: "/room/two".to_owned(),
                uses,
                first_time,
            })
        };
        assert_eq!(redeem("ann").await, admitted(1, true));
        assert_eq!(redeem("ann").await, admitted(1, false));
        assert_eq!(redeem("bob").await, admitted(2, true));
        assert_eq!(redeem("carol").await, Err(Refusal::UsedUp));
        assert_eq!(redeem("ann").await, admitted(2, false));
        assert_eq!(redeem("bob").await, admitted(2, false));
        assert_eq!(store.inspect(id.as_str()).await.unwrap().unwrap().uses, 2);
    }

    /// Not open before its start, open at it; expired after its end for everyone.
    pub(super) async fn not_started_then_open_then_expired(store: Arc<dyn LinkStore>) {
        let t = now();
        let later = store
            .create(NewLink::new("/later", t + 2, t + 60, 10))
            .await
            .unwrap();
        let short = store
            .create(NewLink::new("/short", t - 5, t + 1, 10))
            .await
            .unwrap();
        assert_eq!(
            store.redeem(later.as_str(), "ann").await.unwrap(),
            Err(Refusal::NotStarted { starts_at: t + 2 })
        );
        assert!(store.redeem(short.as_str(), "ann").await.unwrap().is_ok());

        wait_until(t + 2).await;
        let redeemed = store.redeem(later.as_str(), "ann").await.unwrap().unwrap();
        assert_eq!((redeemed.target.as_str(), redeemed.uses), ("/later", 1));
        for who in ["bob", "ann"] {
            assert_eq!(
                store.redeem(short.as_str(), who).await.unwrap(),
                Err(Refusal::Expired)
            );
        }
    }

    /// Revocation holds for everyone, those admitted before included.
    pub(super) async fn revoked_for_everyone(store: Arc<dyn LinkStore>) {
        let t = now();
        let id = store
            .create(NewLink::new("/room/r", t - 1, t + 60, 3))
            .await
            .unwrap();
        assert!(store.redeem(id.as_str(), "ann").await.unwrap().is_ok());
        assert!(store.revoke(id.as_str()).await.unwrap());
        assert!(store.revoke(id.as_str()).await.unwrap());
        for who in ["ann", "bob"] {
            assert_eq!(
                store.redeem(id.as_str(), who).await.unwrap(),
                Err(Refusal::Revoked)
            );
        }
        let info = store.inspect(id.as_str()).await.unwrap().unwrap();
        assert!(info.revoked);
        assert_eq!(info.uses, 1);
        assert!(!store.revoke(NO_SUCH_ID).await.unwrap());
        assert!(!store.revoke("not an id").await.unwrap());
    }

    /// A personal invitation admits only its participant (again and again, on one place);
    /// a stranger learns nothing more, even once it is withdrawn.
    pub(super) async fn personal_invitation(store: Arc<dyn LinkStore>) {
        let t = now();
        let id = store
            .create(NewLink::new("/room/p", t - 1, t + 60, 1).for_participant("ann"))
            .await
            .unwrap();
        assert_eq!(
            store.redeem(id.as_str(), "bob").await.unwrap(),
            Err(Refusal::NotForYou)
        );
        assert!(
            store
                .redeem(id.as_str(), "ann")
                .await
                .unwrap()
                .unwrap()
                .first_time
        );
        assert!(
            !store
                .redeem(id.as_str(), "ann")
                .await
                .unwrap()
                .unwrap()
                .first_time
        );
        store.revoke(id.as_str()).await.unwrap();
        assert_eq!(
            store.redeem(id.as_str(), "bob").await.unwrap(),
            Err(Refusal::NotForYou)
        );
        assert_eq!(
            store.redeem(id.as_str(), "ann").await.unwrap(),
            Err(Refusal::Revoked)
        );
    }

    /// Unknown and malformed ids are unknown links, and never reach a key.
    pub(super) async fn unknown_links(store: Arc<dyn LinkStore>) {
        for id in [
            NO_SUCH_ID,
            "",
            "../../etc/passwd",
            "x}{y",
            "AAAAAAAAAAAAAAAAAAAAA*",
        ] {
            assert_eq!(
                store.redeem(id, "ann").await.unwrap(),
                Err(Refusal::Unknown),
                "{id:?}"
            );
            assert_eq!(store.inspect(id).await.unwrap(), None, "{id:?}");
        }
    }

    /// `inspect` shows every stored field.
    pub(super) async fn inspect_shows_everything(store: Arc<dyn LinkStore>) {
        let t = now();
        let id = store
            .create(NewLink::new("/room/i?x=1", t - 1, t + 60, 7).for_participant("ann"))
            .await
            .unwrap();
        store.redeem(id.as_str(), "ann").await.unwrap().unwrap();
        let info = store.inspect(id.as_str()).await.unwrap().unwrap();
        assert_eq!(info.id, id);
        assert_eq!(info.target, "/room/i?x=1");
        assert_eq!((info.starts_at, info.expires_at), (t - 1, t + 60));
        assert_eq!((info.max_uses, info.uses), (7, 1));
        assert_eq!(info.participant.as_deref(), Some("ann"));
        assert!(!info.revoked);
    }

    /// Links that break a rule, and empty redeemers, are errors, not refusals.
    pub(super) async fn refuses_bad_input(store: Arc<dyn LinkStore>) {
        let t = now();
        let bad = [
            NewLink::new("/x", t - 100, t - 10, 1),
            NewLink::new("/x", t, t + 60, 0),
            NewLink::new("", t, t + 60, 1),
            NewLink::new("/x", t + 60, t, 1),
            NewLink::new("/x", t, u64::MAX, 1),
            NewLink::new("/x", t, t + 60, 1).for_participant(""),
        ];
        for link in bad {
            let result = store.create(link.clone()).await;
            assert!(
                matches!(result, Err(LinkError::InvalidLink(_))),
                "{link:?}: {result:?}"
            );
        }
        let id = store
            .create(NewLink::new("/x", t, t + 60, 1))
            .await
            .unwrap();
        assert!(matches!(
            store.redeem(id.as_str(), "").await,
            Err(LinkError::InvalidRedeemer)
        ));
    }
}

macro_rules! suite_for {
    ($name:ident, $backend:path) => {
        mod $name {
            use super::*;

            suite_for!(@case $backend, fifty_racers_five_places);
            suite_for!(@case $backend, same_redeemer_uses_one_place);
            suite_for!(@case $backend, not_started_then_open_then_expired);
            suite_for!(@case $backend, revoked_for_everyone);
            suite_for!(@case $backend, personal_invitation);
            suite_for!(@case $backend, unknown_links);
            suite_for!(@case $backend, inspect_shows_everything);
            suite_for!(@case $backend, refuses_bad_input);
        }
    };
    (@case $backend:path, $case:ident) => {
        /// The suite's case of the same name, on this store.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let backend = $backend().await;
            suite::$case(backend.store.clone()).await;
        }
    };
}

suite_for!(memory_store, memory_backend);
suite_for!(redis_store, redis_backend);

/// Redis only: the two keys of a link share a hash tag and expire a grace period after the
/// link; foreign data under a link's key is an error, not a panic.
#[tokio::test]
async fn redis_keys_share_a_hash_tag_and_outlive_expiry_by_the_grace() {
    let server = RedisServer::start().await;
    let pool = RedisPool::new(&server.pool_config("app:")).await.unwrap();
    let links = RedisLinks::new(pool).with_grace(Duration::from_secs(120));
    let t = now();
    let id = links
        .create(NewLink::new("/room/k", t, t + 60, 2))
        .await
        .unwrap();
    links.redeem(id.as_str(), "ann").await.unwrap().unwrap();

    let (hash, uses) = links.keys(id.as_str());
    assert_eq!(hash, format!("app:links:{{{id}}}"));
    assert_eq!(uses, format!("app:links:{{{id}}}:uses"));
    let mut keys = server.keys("*").await;
    keys.sort();
    assert_eq!(keys, vec![hash.clone(), uses.clone()]);
    for key in [&hash, &uses] {
        let expire_at = server.cmd(&["EXPIRETIME", key]).await;
        assert_eq!(
            expire_at,
            redis::Value::Int(i64::try_from(t + 180).unwrap()),
            "{key}"
        );
    }
    let members = server.cmd(&["SMEMBERS", &uses]).await;
    assert_eq!(
        members,
        redis::Value::Array(vec![redis::Value::BulkString(b"ann".to_vec())])
    );

    let (foreign, _) = links.keys(NO_SUCH_ID);
    server.cmd(&["HSET", &foreign, "target", "/x"]).await;
    assert!(matches!(
        links.inspect(NO_SUCH_ID).await,
        Err(LinkError::Corrupt(_))
    ));
    server.cmd(&["SET", &foreign, "a string"]).await;
    assert!(matches!(
        links.redeem(NO_SUCH_ID, "ann").await,
        Err(LinkError::Corrupt(_))
    ));
}

/// The Redis store on a Redis Cluster: a link's two keys are in one slot (so its scripts
/// run), and 20 racers on a 3-place link get exactly 3 places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_runs_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    let mut config = RedisPoolConfig::named("default");
    config.mode = RedisMode::Cluster;
    config.nodes = cluster
        .ports()
        .into_iter()
        .map(|port| ("127.0.0.1".to_owned(), port))
        .collect();
    config.prefix = "c:".to_owned();
    config.timeout = Duration::from_secs(2);
    let pool = RedisPool::new(&config).await.unwrap();
    assert!(pool.is_cluster());
    let links = Arc::new(RedisLinks::new(pool));
    let t = now();
    let id = links
        .create(NewLink::new("/room/c", t - 1, t + 60, 3))
        .await
        .unwrap();
    let (hash, uses) = links.keys(id.as_str());
    assert_eq!(cluster.keyslot(&hash).await, cluster.keyslot(&uses).await);
    let racers: Vec<_> = (0..20)
        .map(|i| {
            let (links, id) = (links.clone(), id.clone());
            tokio::spawn(async move { links.redeem(id.as_str(), &format!("p{i}")).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for racer in racers {
        if racer.await.unwrap().is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    assert!(links.revoke(id.as_str()).await.unwrap());
    assert_eq!(
        links.redeem(id.as_str(), "p0").await.unwrap(),
        Err(Refusal::Revoked)
    );
}

/// What `POST /links` takes.
#[derive(Deserialize)]
struct Create {
    target: String,
    starts_in: i64,
    expires_in: i64,
    max_uses: u32,
    participant: Option<String>,
}

async fn create(
    State(links): State<Links>,
    Json(c): Json<Create>,
) -> Result<Json<Value>, LinkError> {
    let at = |offset: i64| now().saturating_add_signed(offset);
    let mut link = NewLink::new(c.target, at(c.starts_in), at(c.expires_in), c.max_uses);
    if let Some(participant) = c.participant {
        link = link.for_participant(participant);
    }
    let id = links.create(link).await?;
    Ok(Json(json!({ "id": id.as_str() })))
}

async fn redeem(
    State(links): State<Links>,
    Path((id, who)): Path<(String, String)>,
) -> Result<Result<Json<Value>, Refusal>, LinkError> {
    Ok(links.redeem(&id, &who).await?.map(|admitted| {
        Json(json!({
            "target": admitted.target,
            "uses": admitted.uses,
            "first_time": admitted.first_time,
        }))
    }))
}

async fn revoke(State(links): State<Links>, Path(id): Path<String>) -> Result<String, LinkError> {
    Ok(links.revoke(&id).await?.to_string())
}

/// The links app on `redis_port` (sessions and links in that Redis), served on port 0.
async fn links_server(redis_port: u16) -> TestServer {
    let config = example_config(redis_port, "");
    let app = App::new(config);
    let sessions = SessionManager::from_config(app.config(), app.redis())
        .await
        .unwrap();
    let links = Links::from_config(app.config(), app.redis(), &sessions)
        .await
        .unwrap();
    let app = app
        .with(sessions)
        .with(links)
        .post("/links", create)
        .post("/links/{id}/redeem/{who}", redeem)
        .delete("/links/{id}", revoke);
    TestServer::start(app).await
}

async fn create_link(server: &TestServer, body: Value) -> String {
    let response = server.post_json("/links", &body.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.json()["id"].as_str().unwrap().to_owned()
}

async fn redeem_on(server: &TestServer, id: &str, who: &str) -> TestResponse {
    server
        .send(request(
            "POST",
            &format!("/links/{id}/redeem/{who}"),
            &[],
            String::new(),
        ))
        .await
}

/// The value of the metric line starting with `series` (name and labels) on `server`.
async fn metric(server: &TestServer, series: &str) -> f64 {
    let text = server.get("/metrics").await.body;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Fifty participants redeem a five-place link at once through two servers sharing one
/// Redis: exactly five get in (places 1 to 5), forty-five are told it is used up (403,
/// `used_up`), and the two servers' metrics add up to that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_participants_across_two_servers_get_exactly_five_places() {
    let redis = RedisServer::start().await;
    let servers = [
        links_server(redis.port()).await,
        links_server(redis.port()).await,
    ];
    let body = json!({ "target": "/rooms/five", "starts_in": -1, "expires_in": 60, "max_uses": 5 });
    let id = create_link(&servers[0], body).await;
    let racers: Vec<_> = (0..50)
        .map(|i| {
            let client = servers[i % 2].client();
            let id = id.clone();
            tokio::spawn(async move {
                client
                    .send(request(
                        "POST",
                        &format!("/links/{id}/redeem/p{i}"),
                        &[],
                        String::new(),
                    ))
                    .await
            })
        })
        .collect();
    let mut places = BTreeSet::new();
    let mut used_up = 0;
    for racer in racers {
        let response = racer.await.unwrap();
        match response.status {
            StatusCode::OK => {
                let json = response.json();
                assert_eq!(json["target"], "/rooms/five");
                assert_eq!(json["first_time"], true);
                places.insert(json["uses"].as_u64().unwrap());
            }
            StatusCode::FORBIDDEN => {
                assert_eq!(response.json()["reason"], "used_up", "{}", response.body);
                used_up += 1;
            }
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    assert_eq!(places, BTreeSet::from([1, 2, 3, 4, 5]));
    assert_eq!(used_up, 45);
    let mut admitted = 0.0;
    let mut refused = 0.0;
    for server in &servers {
        admitted += metric(server, r#"rondo_links_redeemed_total{place="new"}"#).await;
        refused += metric(server, r#"rondo_links_refused_total{reason="used_up"}"#).await;
    }
    assert_eq!((admitted, refused), (5.0, 45.0));
    // A participant who got in comes back on the other server: same place, no new one.
    let again = redeem_on(&servers[1], &id, "p0").await;
    if again.status == StatusCode::OK {
        assert_eq!(again.json()["first_time"], false);
    } else {
        assert_eq!(again.json()["reason"], "used_up");
    }
}

/// A link opening two seconds from now refuses (403, `not_started`, when it opens and a
/// `Retry-After`), then admits once its time has come; a link that closed meanwhile is
/// `410 expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_two_seconds_ahead_refuses_then_admits() {
    let redis = RedisServer::start().await;
    let server = links_server(redis.port()).await;
    let t = now();
    let later = create_link(
        &server,
        json!({ "target": "/rooms/later", "starts_in": 2, "expires_in": 60, "max_uses": 3 }),
    )
    .await;
    let short = create_link(
        &server,
        json!({ "target": "/rooms/short", "starts_in": -5, "expires_in": 1, "max_uses": 3 }),
    )
    .await;
    let early = redeem_on(&server, &later, "ann").await;
    assert_eq!(early.status, StatusCode::FORBIDDEN, "{}", early.body);
    let json = early.json();
    assert_eq!(json["reason"], "not_started");
    let opens = json["starts_at"].as_u64().unwrap();
    assert!((t + 2..=t + 3).contains(&opens), "{opens} vs {t}");
    let wait: u64 = early.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&wait), "{wait}");

    wait_until(opens).await;
    let admitted = redeem_on(&server, &later, "ann").await;
    assert_eq!(admitted.status, StatusCode::OK, "{}", admitted.body);
    assert_eq!(admitted.json()["uses"], 1);
    wait_until(t + 3).await;
    let expired = redeem_on(&server, &short, "ann").await;
    assert_eq!(expired.status, StatusCode::GONE, "{}", expired.body);
    assert_eq!(expired.json()["reason"], "expired");
}

/// Every refusal has its own status and reason: unknown 404, not for you 403, revoked 410;
/// an invalid link is a 400; a browser gets an HTML page.
#[tokio::test]
async fn refusals_have_distinct_statuses_and_reasons() {
    let redis = RedisServer::start().await;
    let server = links_server(redis.port()).await;
    let unknown = redeem_on(&server, NO_SUCH_ID, "ann").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["reason"], "unknown");

    let personal = create_link(
        &server,
        json!({ "target": "/t", "starts_in": -1, "expires_in": 60, "max_uses": 1, "participant": "ann" }),
    )
    .await;
    let stranger = redeem_on(&server, &personal, "bob").await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    assert_eq!(stranger.json()["reason"], "not_for_you");
    assert_eq!(
        redeem_on(&server, &personal, "ann").await.status,
        StatusCode::OK
    );

    let revoked = server
        .send(request(
            "DELETE",
            &format!("/links/{personal}"),
            &[],
            String::new(),
        ))
        .await;
    assert_eq!(revoked.body, "true");
    let gone = redeem_on(&server, &personal, "ann").await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert_eq!(gone.json()["reason"], "revoked");
    let page = server
        .send(request(
            "POST",
            &format!("/links/{personal}/redeem/ann"),
            &[("accept", "text/html")],
            String::new(),
        ))
        .await;
    assert!(
        page.body.contains("This link has been withdrawn."),
        "{}",
        page.body
    );

    let invalid = server
        .post_json(
            "/links",
            &json!({ "target": "/t", "starts_in": 0, "expires_in": 60, "max_uses": 0 }).to_string(),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{}", invalid.body);
    assert!(invalid.body.contains("max_uses"), "{}", invalid.body);
    // The JSON and the HTML attempt after the revocation.
    assert_eq!(
        metric(&server, r#"rondo_links_refused_total{reason="revoked"}"#).await,
        2.0
    );
    assert_eq!(metric(&server, "rondo_links_created_total").await, 1.0);
}
