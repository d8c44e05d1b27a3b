//! The example shop used as a person would: headless Chromium, driven through WebDriver,
//! against the real example-app binary on a real redis-server.
//!
//! The tests run one at a time (Chromium is heavy) and each is bounded by [`TEST_TIME`].
//! The basket test leaves a screenshot of the populated page at `target/basket.png`.

mod webdriver;

use std::future::Future;
use std::time::Duration;

use webdriver::{target_dir, Shop};

/// The longest one test may take, Chromium's start included.
const TEST_TIME: Duration = Duration::from_secs(120);

/// One browser test at a time: several Chromiums at once would only slow each other down.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `test` alone and within [`TEST_TIME`].
async fn bounded(test: impl Future<Output = ()>) {
    let _turn = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIME, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_TIME:?}"));
}

/// Items added through the form survive a reload, quantities merge, and each flash
/// notice shows on the page after its action only.
#[tokio::test]
async fn basket_survives_reload_and_flash_shows_once() {
    bounded(async {
        let shop = Shop::start("browser-basket").await;
        let browser = shop.browser().await;
        browser.open(&shop.url("/")).await;
        assert_eq!(browser.client.title().await.expect("title"), "Rondo shop");
        assert_eq!(browser.text("#empty").await, "Your basket is empty.");
        assert_eq!(browser.count("p.flash").await, 0);

        browser.add_item("TEA-01", 2).await;
        browser.add_item("MUG", 1).await;
        browser.add_item("TEA-01", 3).await;
        let lines = vec![
            ("TEA-01".to_owned(), "5".to_owned()),
            ("MUG".to_owned(), "1".to_owned()),
        ];
        assert_eq!(browser.basket().await, lines);
        assert_eq!(browser.text("#total").await, "6");
        let png = browser.client.screenshot().await.expect("screenshot");
        let path = target_dir().join("basket.png");
        std::fs::create_dir_all(target_dir()).expect("target dir");
        std::fs::write(&path, &png).expect("write the screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG image");

        browser.client.refresh().await.expect("reload");
        browser.wait_for("#basket").await;
        assert_eq!(browser.basket().await, lines, "the basket stays");
        assert_eq!(browser.count("p.flash").await, 0, "the notice showed once");
        browser.open(&shop.url("/")).await;
        assert_eq!(browser.basket().await, lines);
    })
    .await;
}

/// A second browser context starts with its own empty basket and its own session.
#[tokio::test]
async fn a_second_browser_has_its_own_basket() {
    bounded(async {
        let shop = Shop::start("browser-contexts").await;
        let first = shop.browser().await;
        first.open(&shop.url("/")).await;
        first.add_item("TEA-01", 1).await;

        let second = shop.browser().await;
        second.open(&shop.url("/")).await;
        assert_eq!(second.text("#empty").await, "Your basket is empty.");
        assert!(second.basket().await.is_empty());
        assert_ne!(
            first.session_cookie().await.0,
            second.session_cookie().await.0
        );

        second.add_item("MUG", 4).await;
        first.open(&shop.url("/")).await;
        assert_eq!(
            first.basket().await,
            vec![("TEA-01".to_owned(), "1".to_owned())]
        );
    })
    .await;
}

/// Logging in gives the session cookie a new value (and keeps the basket); logging out
/// gives another one and the basket page is empty again.
#[tokio::test]
async fn log_in_rotates_the_cookie_and_log_out_empties_the_basket() {
    bounded(async {
        let shop = Shop::start("browser-login").await;
        let browser = shop.browser().await;
        browser.open(&shop.url("/")).await;
        browser.add_item("TEA-01", 2).await;
        let (visitor, _) = browser.session_cookie().await;

        browser.fill("input[name=user]", "Ann").await;
        browser
            .click_then("form[action='/login'] button", "#user")
            .await;
        assert_eq!(browser.text("#user").await, "Ann");
        assert_eq!(browser.text("p.flash").await, "Welcome, Ann.");
        let (member, _) = browser.session_cookie().await;
        assert_ne!(member, visitor, "a new session id on log-in");
        assert_eq!(
            browser.basket().await,
            vec![("TEA-01".to_owned(), "2".to_owned())]
        );
        assert_eq!(
            browser.text("#recommendations .pending").await,
            "Your recommendations are being prepared…"
        );

        browser
            .click_then("form[action='/logout'] button", "input[name=user]")
            .await;
        assert_eq!(browser.text("p.flash").await, "You are logged out.");
        assert_eq!(browser.text("#empty").await, "Your basket is empty.");
        assert_eq!(browser.count("#user").await, 0);
        let (after, _) = browser.session_cookie().await;
        assert_ne!(after, member, "the logged-in session id is gone");
        assert_ne!(after, visitor);
    })
    .await;
}

/// The session cookie is HttpOnly: the browser holds it, page scripts cannot read it.
#[tokio::test]
async fn the_session_cookie_is_http_only() {
    bounded(async {
        let shop = Shop::start("browser-httponly").await;
        let browser = shop.browser().await;
        browser.open(&shop.url("/")).await;
        let (value, http_only) = browser.session_cookie().await;
        assert_eq!(value.len(), 43, "{value}");
        assert_eq!(http_only, Some(true));
        let visible = browser.run("return document.cookie;").await;
        let visible = visible.as_str().expect("a string");
        assert!(!visible.contains("dmsession"), "{visible}");
        assert!(!visible.contains(&value), "{visible}");
    })
    .await;
}

/// A form posted with a tampered CSRF token gets the 400 page and changes nothing.
#[tokio::test]
async fn a_tampered_csrf_token_shows_a_400_page() {
    bounded(async {
        let shop = Shop::start("browser-csrf").await;
        let browser = shop.browser().await;
        browser.open(&shop.url("/")).await;
        browser.fill("input[name=sku]", "TEA-01").await;
        let tampered = browser
            .run(
                "const field = document.querySelector(\"form[action='/basket/add'] \
                 input[name=_csrf]\"); field.value = field.value.split('').reverse().join(''); \
                 return field.value;",
            )
            .await;
        assert_eq!(tampered.as_str().map(str::len), Some(43));
        browser.click_then("#add", "h1").await;
        assert_eq!(browser.text("h1").await, "400 Bad Request");
        assert_eq!(browser.text("p").await, "invalid or missing CSRF token");
        let status = browser
            .run("return performance.getEntriesByType('navigation')[0].responseStatus;")
            .await;
        assert_eq!(status, 400);

        browser.open(&shop.url("/")).await;
        assert_eq!(browser.text("#empty").await, "Your basket is empty.");
    })
    .await;
}

/// The live basket: one session open in two tabs, each on another server of the shop; an
/// item added in one tab shows in the other without a reload, through the page's own
/// channel client (`static/live.js`), the session's private channel and Redis between
/// the servers.
#[tokio::test]
async fn the_basket_updates_live_in_another_tab_on_another_server() {
    bounded(async {
        let shop = Shop::start_two("browser-live").await;
        let second = shop.second.clone().expect("two servers");
        let browser = shop.browser().await;
        browser.open(&shop.url("/")).await;
        browser.wait_for("#live[data-state='live']").await;
        let first_tab = browser.client.window().await.expect("the first tab");
        let tab = browser.client.new_window(true).await.expect("a second tab");
        browser
            .client
            .switch_to_window(tab.handle)
            .await
            .expect("switch");
        browser.open(&format!("{second}/")).await;
        browser.wait_for("#live[data-state='live']").await;
        browser.add_item("TEA-01", 2).await;

        browser
            .client
            .switch_to_window(first_tab)
            .await
            .expect("back to the first tab");
        browser.wait_for("#basket td.sku").await;
        assert_eq!(
            browser.basket().await,
            vec![("TEA-01".to_owned(), "2".to_owned())]
        );
        assert_eq!(browser.text("#total").await, "2");
        assert_eq!(browser.count("#empty").await, 0);
        assert_eq!(
            browser.count("#clear-form[hidden]").await,
            0,
            "the clear button shows"
        );
    })
    .await;
}
