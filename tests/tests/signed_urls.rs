//! Signed temporary links over real HTTP: a link made by `SignedUrls` opens its route until
//! it expires; any change to it, an expired one, an unsigned request or another key's
//! signature gets `403` with its reason, through the `Signed` extractor and through a
//! guarded group alike.

use std::time::Duration;

use http::{StatusCode, Uri};
use rondo::signed::{AppKey, Signed, SignedUrls};
use rondo::{App, Config, Path, Routes, State};
use rondo_tests::http::TestServer;
use rondo_tests::plain_app::test_config;

/// `bytes(range(32))`, in config form.
const KEY: &str = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn urls() -> SignedUrls {
    let key = AppKey::parse(KEY).expect("a valid key");
    SignedUrls::new(key, "https://public.example")
}

fn now() -> u64 {
    rondo::signed::unix_now()
}

/// `/files/{name}` behind the `Signed` extractor, `/shared/*` behind the guard, and
/// `/sign/{path}` handing out a signed link to `/{path}`.
async fn server(urls: SignedUrls) -> TestServer {
    let shared = Routes::new()
        .get("/report", || async { "the shared report" })
        .middleware(urls.guard());
    let app = App::new(test_config())
        .with(urls)
        .get(
            "/files/{name}",
            |_: Signed, Path(name): Path<String>| async move { format!("file {name}") },
        )
        .get(
            "/sign/{*path}",
            // The raw target: path parameters are percent-decoded, a link must not be.
            |State(urls): State<SignedUrls>, uri: Uri| async move {
                let path = uri.path().strip_prefix("/sign").unwrap_or("/");
                urls.url(path, Duration::from_secs(60))
            },
        )
        .nest("/shared", shared);
    TestServer::start(app).await
}

/// The JSON error message of a refusal, after checking it is a 403.
fn refusal(response: &rondo_tests::http::TestResponse) -> String {
    assert_eq!(response.status, StatusCode::FORBIDDEN, "{}", response.body);
    let json = response.json();
    assert_eq!(json["status"], 403);
    json["error"].as_str().unwrap_or_default().to_owned()
}

/// A link opens its route; every alteration of it (a parameter, the path, the expiry, the
/// order, an added parameter, the signature's case or length, a second signature) is refused
/// as not valid, and a link without its signature as not signed.
#[tokio::test]
async fn a_signed_link_opens_and_every_tampered_one_is_refused() {
    let urls = urls();
    let server = server(urls.clone()).await;
    let link = urls
        .sign("/files/report.pdf?user=42", Duration::from_secs(60))
        .expect("signable");
    let ok = server.get(&link).await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (StatusCode::OK, "file report.pdf")
    );

    let (unsigned, signature) = link.split_once("&signature=").expect("signed");
    let expires = unsigned.rsplit_once("expires=").expect("expiry").1;
    let later = (expires.parse::<u64>().expect("a number") + 3600).to_string();
    let mut flipped = signature.to_owned();
    let last = if flipped.ends_with('0') { "1" } else { "0" };
    flipped.replace_range(63.., last);
    let tampered = [
        link.replace("user=42", "user=43"),
        link.replace("report.pdf", "other.pdf"),
        link.replace(&format!("expires={expires}"), &format!("expires={later}")),
        link.replace("?user=42&", "?")
            .replace("&signature", "&user=42&signature"),
        format!("{link}&admin=1"),
        link.replace("user=42", "user=%34%32"),
        format!("{unsigned}&signature={}", signature.to_uppercase()),
        format!("{unsigned}&signature={}", &signature[..60]),
        format!("{unsigned}&signature={flipped}"),
        format!("{link}&signature={signature}"),
    ];
    for target in &tampered {
        let message = refusal(&server.get(target).await);
        assert!(message.contains("not valid"), "{target}: {message}");
    }
    let message = refusal(&server.get(unsigned).await);
    assert!(message.contains("not signed"), "{message}");
    let message = refusal(&server.get("/files/report.pdf").await);
    assert!(message.contains("not signed"), "{message}");
}

/// A link past its `expires` second is refused as expired (a forged one as not valid, even
/// when its time is up too); up to and including that second it opens.
#[tokio::test]
async fn expired_links_are_refused_with_their_reason() {
    let urls = urls();
    let server = server(urls.clone()).await;
    let expired = urls
        .sign_until("/files/old.txt", now() - 1)
        .expect("signable");
    let message = refusal(&server.get(&expired).await);
    assert!(message.contains("expired"), "{message}");

    let forged = expired.replace("old.txt", "new.txt");
    let message = refusal(&server.get(&forged).await);
    assert!(message.contains("not valid"), "{message}");

    let soon = now() + 1;
    let brief = urls.sign_until("/files/brief.txt", soon).expect("signable");
    assert_eq!(server.get(&brief).await.status, StatusCode::OK);
    while now() <= soon {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = refusal(&server.get(&brief).await);
    assert!(message.contains("expired"), "{message}");
}

/// A group behind `SignedUrls::guard` answers only signed requests; its refusal is an HTML
/// page for a browser.
#[tokio::test]
async fn a_guarded_group_answers_only_signed_requests() {
    let urls = urls();
    let server = server(urls.clone()).await;
    let message = refusal(&server.get("/shared/report").await);
    assert!(message.contains("not signed"), "{message}");
    let page = server
        .get_with("/shared/report", &[("accept", "text/html")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.content_type().starts_with("text/html"),
        "{}",
        page.content_type()
    );
    assert!(
        page.body.contains("This link is not signed."),
        "{}",
        page.body
    );

    let link = urls
        .sign("/shared/report", Duration::from_secs(60))
        .expect("signable");
    let ok = server.get(&link).await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (StatusCode::OK, "the shared report")
    );
}

/// The absolute link handed out names the public `https://` origin, yet the signature covers
/// only the path: the app, reached over plain HTTP on another host (as behind a proxy that
/// terminates TLS), accepts it. Percent-encoded targets travel and verify byte for byte.
#[tokio::test]
async fn links_sign_the_path_so_they_survive_a_proxy() {
    let urls = urls();
    let server = server(urls.clone()).await;
    let handed_out = server.get("/sign/files/na%C3%AFve.txt").await;
    assert_eq!(handed_out.status, StatusCode::OK, "{}", handed_out.body);
    let path = handed_out
        .body
        .strip_prefix("https://public.example")
        .expect("an absolute link under [app] url");
    assert!(path.starts_with("/files/na%C3%AFve.txt?expires="), "{path}");
    let ok = server.get(path).await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (StatusCode::OK, "file naïve.txt")
    );
    // The same file spelled with lowercase escapes is another link.
    let message = refusal(&server.get(&path.replace("%C3%AF", "%c3%af")).await);
    assert!(message.contains("not valid"), "{message}");
}

/// A link signed with another key is not valid here, and a key never shows in a config
/// error or a debug print.
#[tokio::test]
async fn another_keys_links_are_not_valid() {
    let server = server(urls()).await;
    let other = SignedUrls::new(AppKey::generate().expect("randomness"), "http://x");
    let link = other
        .sign("/files/report.pdf", Duration::from_secs(60))
        .expect("signable");
    let message = refusal(&server.get(&link).await);
    assert!(message.contains("not valid"), "{message}");
    assert!(!format!("{:?}", urls()).contains("AAECAwQF"));
}

/// Production without `[app] key` cannot start a part that signs: the error names the key
/// and the file; a key that is not 32 bytes is refused with its line, never repeated.
#[tokio::test]
async fn production_needs_a_key() {
    let production = Config::parse_str(
        "[app]\nenv = production\n[session]\nstore = memory\n",
        "prod.ini",
    )
    .expect("valid");
    let err = SignedUrls::from_config(&production).expect_err("refused");
    assert!(err.to_string().starts_with("prod.ini: [app] key:"), "{err}");
    let bad = Config::parse_str(
        "[session]\nstore = memory\n[app]\nkey = base64:AAECAwQFBgcICQoLDA0ODw==\n",
        "bad.ini",
    )
    .expect_err("refused");
    let text = bad.to_string();
    assert!(text.starts_with("bad.ini:4: [app] key:"), "{text}");
    assert!(
        text.contains("16 bytes") && !text.contains("AAECAwQF"),
        "{text}"
    );
}
