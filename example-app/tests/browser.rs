//! The example shop used as a person would: headless Chromium, driven through WebDriver,
//! against the real example-app binary on a real redis-server.
//!
//! The tests run one at a time (Chromium is heavy) and each is bounded by [`TEST_TIME`].
//! The basket test leaves a screenshot of the populated page at `target/basket.png`; the
//! meeting-room test, the host's and the guest's pages at `target/rooms-host.png` and
//! `target/rooms-guest.png`.

mod webdriver;

use std::future::Future;
use std::time::{Duration, Instant};

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

/// `arguments[0]` (a CSS selector) matches an element whose text contains `arguments[1]`…
/// written as one argument `selector|text`, split in the page.
const HAS_TEXT: &str = "const [sel, text] = arguments[0].split('|'); \
    return Array.from(document.querySelectorAll(sel)).some(e => e.textContent.includes(text));";

/// The meeting rooms end to end, each browser on its own server of one deployment: the
/// host (logged in, on A) opens a room and makes a link; the guest (on B) joins by it;
/// each sees the other in the presence list (within 2 s of the guest's page going live);
/// chat goes both ways (within 1 s each); the guest's pointer shows on the host's strip;
/// the guest shares a file and the host downloads the same bytes; the A/V panel shows the
/// token's room and expiry; a third browser finds the used-up link "full" and a link not
/// open yet "not started"; the host closes the room and the guest's page says so.
#[tokio::test]
async fn a_meeting_room_with_two_browsers_on_two_servers() {
    bounded(async {
        let shop = Shop::start_rooms("browser-rooms").await;
        let second = shop.second.clone().expect("two servers");
        let host = shop.browser().await;
        host.open(&shop.url("/")).await;
        host.fill("input[name=user]", "Ann").await;
        host.click_then("form[action='/login'] button", "#user").await;
        host.open(&shop.url("/rooms")).await;
        host.fill("input[name=title]", "Design <review>").await;
        host.fill("input[name=capacity]", "3").await;
        host.click_then("#create", "#room-title").await;
        assert_eq!(host.text("#room-title").await, "Design <review>");
        host.wait_for("#live[data-state='live']").await;
        host.fill("input[name=max_uses]", "1").await;
        host.click_then("#make-link", "#new-link").await;
        let link = host.attr("#new-link", "href").await;
        assert!(link.starts_with("/join/"), "{link}");
        host.fill("input[name=max_uses]", "1").await;
        host.fill("input[name=starts_in]", "60").await;
        host.click_then("#make-link", "#new-link").await;
        let later = host.attr("#new-link", "href").await;
        assert_ne!(later, link);

        let guest = shop.browser().await;
        guest.open(&format!("{second}{link}")).await;
        guest.wait_for("#room-title").await;
        assert_eq!(guest.text("#room-title").await, "Design <review>");
        let guest_name = guest.text("#me-name").await;
        assert!(guest_name.starts_with("Guest "), "{guest_name}");
        guest.wait_for("#live[data-state='live']").await;
        let live_at = Instant::now();
        host.wait_until(
            "the guest in the host's presence list",
            HAS_TEXT,
            &format!("#here li|{guest_name}"),
            Duration::from_secs(2),
        )
        .await;
        let presence = live_at.elapsed();
        guest
            .wait_until("the host in the guest's list", HAS_TEXT, "#here li|Ann", Duration::from_secs(2))
            .await;
        println!("presence: the host saw the guest {presence:?} after the guest's page went live");

        host.fill("#chat-text", "Hello from A").await;
        host.wait_for("#chat-send").await.click().await.expect("send");
        let to_guest = guest
            .wait_until("the host's message on the guest's page", HAS_TEXT, "#chat li|Hello from A", Duration::from_secs(1))
            .await;
        guest.fill("#chat-text", "Hi from B <b>bold?</b>").await;
        guest.wait_for("#chat-send").await.click().await.expect("send");
        let to_host = host
            .wait_until("the guest's message on the host's page", HAS_TEXT, "#chat li|<b>bold?</b>", Duration::from_secs(1))
            .await;
        assert_eq!(host.count("#chat b").await, 0, "chat text is not HTML");
        println!("chat: host to guest {to_guest:?}, guest to host {to_host:?}");

        // The guest's pointer, as the strip's own handler sees a real one.
        guest
            .run(
                "const c = document.getElementById('pointer'); const b = c.getBoundingClientRect(); \
                 for (const f of [0.25, 0.5, 0.75]) { c.dispatchEvent(new PointerEvent('pointermove', \
                 { clientX: b.left + b.width * f, clientY: b.top + b.height / 2, bubbles: true })); } \
                 return null;",
            )
            .await;
        host.wait_for("#pointer[data-others='1']").await;

        let bytes = "Agenda\n1. colours\n2. <fonts> & sizes\n";
        let upload = std::env::temp_dir().join(format!("rondo-agenda-{}.txt", std::process::id()));
        std::fs::write(&upload, bytes).expect("write the file to share");
        guest
            .wait_for("#upload-file")
            .await
            .send_keys(&upload.display().to_string())
            .await
            .expect("choose the file");
        guest.wait_for("#upload").await.click().await.expect("share");
        let file_link = host.attr("#files a[data-file]", "href").await;
        assert!(file_link.starts_with("/rooms/"), "{file_link}");
        assert_eq!(host.text("#files a[data-file]").await, upload.file_name().expect("a file name").to_string_lossy());
        let downloaded = host
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 fetch(arguments[0], { credentials: 'same-origin' }) \
                   .then(r => r.text().then(t => done([r.status, t]))) \
                   .catch(e => done([0, String(e)]));",
                vec![serde_json::Value::from(file_link.as_str())],
            )
            .await
            .expect("download in the host's page");
        assert_eq!(downloaded, serde_json::json!([200, bytes]));
        let _ = std::fs::remove_file(&upload);

        host.wait_until("the token's room", HAS_TEXT, "#av-room|room-", Duration::from_secs(5)).await;
        let expires = host.attr("#av-expires", "data-expires-at").await;
        let expires: u64 = expires.parse().expect("a Unix time");
        let now = rondo::signed::unix_now();
        assert!((now + 500..=now + 600).contains(&expires), "{expires}");

        host.screenshot_to("rooms-host.png").await;
        guest.screenshot_to("rooms-guest.png").await;

        let third = shop.browser().await;
        third.open(&shop.url(&link)).await;
        assert_eq!(third.attr("#refusal", "data-reason").await, "full");
        assert_eq!(third.text("#refusal").await, "This room is full");
        third.open(&format!("{second}{later}")).await;
        assert_eq!(third.attr("#refusal", "data-reason").await, "not_started");
        assert_eq!(third.text("#refusal").await, "Not started yet");
        let left = third.text("#countdown").await;
        assert!(left.contains("min"), "{left}");
        drop(third);

        host.wait_for("#close-room").await.click().await.expect("close");
        guest.wait_for("#closed:not([hidden])").await;
        assert_eq!(guest.text("#closed").await, "This room has been closed.");
        host.wait_for("#closed:not([hidden])").await;
        assert_eq!(guest.count("#chat-send:disabled").await, 1, "the guest's forms are off");
        guest.open(&format!("{second}{link}")).await;
        assert_eq!(guest.attr("#refusal", "data-reason").await, "closed");
    })
    .await;
}
