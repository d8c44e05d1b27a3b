//! Headless Chromium driven through WebDriver, for the browser tests.
//!
//! [`Shop`] starts everything one test needs, each on a free loopback port: a redis-server,
//! the example-app binary on it (both through the `rondo-tests` harness), and a
//! chromedriver. [`Shop::browser`] opens a new Chromium with a fresh profile: a browser
//! context of its own, with its own cookie jar.
//!
//! Every process is one this harness started, stopped by its handle when the guard is
//! dropped, also when the test panics; a browser's WebDriver session is ended first, so
//! chromedriver closes its Chromium. Chromium and chromedriver are Debian's `chromium` and
//! `chromium-driver` (`scripts/test.sh` installs them); without them the tests fail and say
//! so.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use rondo_tests::files::FilesDir;
use rondo_tests::process::{free_port, AppCommand, AppProcess, ChildGuard};
use rondo_tests::redis::RedisServer;
use serde_json::{json, Value};

/// The longest any single wait for the page (an element, a navigation) may take.
pub(crate) const STEP: Duration = Duration::from_secs(15);

/// How long chromedriver may take to listen after it was started.
const DRIVER_START: Duration = Duration::from_secs(15);

/// Where Debian's packages put the browser and its driver; `CHROMIUM` and `CHROMEDRIVER`
/// override them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A redis-server, the example app on it, and a chromedriver: one test's world.
pub(crate) struct Shop {
    /// `http://127.0.0.1:{port}`, where the app listens.
    pub(crate) base: String,
    /// Where the second app listens, for [`Shop::start_two`].
    pub(crate) second: Option<String>,
    driver_port: u16,
    _second: Option<AppProcess>,
    /// The `[files] dir` both apps share, for [`Shop::start_rooms`].
    _files: Option<FilesDir>,
    // Dropped in this order: the driver (its browsers are closed by then), the app, Redis.
    _driver: ChildGuard,
    _app: AppProcess,
    _redis: RedisServer,
}

impl Shop {
    /// Starts Redis, the app and chromedriver, and waits until chromedriver listens.
    pub(crate) async fn start(name: &str) -> Shop {
        Self::start_with(name, "", false).await
    }

    /// Two apps with channels on one Redis (two servers of one shop), and chromedriver.
    pub(crate) async fn start_two(name: &str) -> Shop {
        let channels = rondo_tests::channels::channels_section("");
        Self::start_with(name, &channels, true).await
    }

    /// Two apps set up as one deployment of the meeting rooms: one Redis, one `[files] dir`,
    /// one `[app] key` (file links signed on one server verify on the other), channels with
    /// client events (the pointers), and a `[livekit]` project (no LiveKit server listens
    /// there: the token is what the pages show).
    pub(crate) async fn start_rooms(name: &str) -> Shop {
        let files = FilesDir::new();
        let extra = format!(
            "[app]\nkey = base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\
             [files]\ndir = {}\n[livekit]\nurl = ws://127.0.0.1:9\napi_key = APIbrowser\n\
             api_secret = a-browser-test-secret-of-32-characters\n{}",
            files.path().display(),
            rondo_tests::channels::channels_section("client_events = true"),
        );
        let mut shop = Self::start_with(name, &extra, true).await;
        shop._files = Some(files);
        shop
    }

    async fn start_with(name: &str, extra: &str, two: bool) -> Shop {
        let chromium = tool("CHROMIUM", CHROMIUM);
        let chromedriver = tool("CHROMEDRIVER", CHROMEDRIVER);
        assert!(
            std::path::Path::new(&chromium).is_file(),
            "Chromium not found at {chromium}: install the Debian packages chromium and \
             chromium-driver (scripts/test.sh does), or set CHROMIUM"
        );
        let redis = RedisServer::start().await;
        let app = AppCommand::example(env!("CARGO_BIN_EXE_example-app"), name, redis.port(), extra)
            .start()
            .await;
        let second = if two {
            let second_name = format!("{name}-2");
            let bin = env!("CARGO_BIN_EXE_example-app");
            Some(
                AppCommand::example(bin, &second_name, redis.port(), extra)
                    .start()
                    .await,
            )
        } else {
            None
        };
        let driver_port = free_port();
        let driver = ChildGuard::new(
            Command::new(&chromedriver)
                .arg(format!("--port={driver_port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {chromedriver}: {e}; install the Debian package \
                         chromium-driver (scripts/test.sh does), or set CHROMEDRIVER"
                    )
                }),
        );
        let deadline = Instant::now() + DRIVER_START;
        while TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {driver_port} within {DRIVER_START:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Shop {
            base: app.url(""),
            second: second.as_ref().map(|app| app.url("")),
            driver_port,
            _second: second,
            _files: None,
            _driver: driver,
            _app: app,
            _redis: redis,
        }
    }

    /// The full URL of `path` on the app.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new headless Chromium with an empty profile (no cookies), 1000×900.
    pub(crate) async fn browser(&self) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "rondo-chromium-{}-{}",
            std::process::id(),
            free_port()
        ));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tool("CHROMIUM", CHROMIUM),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1000,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.driver_port))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        let session = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a WebDriver session id");
        let browser = Browser {
            client,
            session,
            driver_port: self.driver_port,
            profile,
        };
        browser
            .client
            .update_timeouts(TimeoutConfiguration::new(
                Some(STEP),
                Some(STEP),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set WebDriver timeouts");
        browser
    }
}

/// One Chromium (one WebDriver session); it is closed when dropped.
pub(crate) struct Browser {
    /// The WebDriver client.
    pub(crate) client: Client,
    session: String,
    driver_port: u16,
    profile: PathBuf,
}

impl Browser {
    /// Opens `url` and waits for the page to load.
    pub(crate) async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The element matching the CSS `selector`, waiting up to [`STEP`] for it.
    pub(crate) async fn wait_for(&self, selector: &str) -> Element {
        self.client
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector} within {STEP:?}: {e}"))
    }

    /// The text of the element matching `selector` (waiting for it).
    pub(crate) async fn text(&self, selector: &str) -> String {
        self.wait_for(selector)
            .await
            .text()
            .await
            .expect("element text")
    }

    /// How many elements match `selector` now (no waiting).
    pub(crate) async fn count(&self, selector: &str) -> usize {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .expect("find elements")
            .len()
    }

    /// Types `text` into the field matching `selector`, replacing what it held.
    pub(crate) async fn fill(&self, selector: &str, text: &str) {
        let field = self.wait_for(selector).await;
        field.clear().await.expect("clear field");
        field.send_keys(text).await.expect("type into field");
    }

    /// Clicks the element matching `selector`, then waits until a *new* page shows `then`
    /// (a CSS selector): a form post, its redirect and the page that follows.
    pub(crate) async fn click_then(&self, selector: &str, then: &str) {
        // Marks the current document, so the wait below cannot be satisfied by it.
        self.run("document.documentElement.dataset.left = 'yes'; return null;")
            .await;
        self.wait_for(selector).await.click().await.expect("click");
        let check = "return document.documentElement.dataset.left !== 'yes' \
                     && document.querySelector(arguments[0]) !== null;";
        let deadline = Instant::now() + STEP;
        loop {
            let ready = self
                .client
                .execute(check, vec![Value::from(then)])
                .await
                .ok()
                .and_then(|v| v.as_bool());
            if ready == Some(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "after clicking {selector}, no new page with {then} within {STEP:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `condition` (a script's body returning a boolean; `arguments[0]` is
    /// `arg`) holds in the page, at most `within`; how long that took.
    pub(crate) async fn wait_until(
        &self,
        what: &str,
        condition: &str,
        arg: &str,
        within: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let holds = self
                .client
                .execute(condition, vec![Value::from(arg)])
                .await
                .ok()
                .and_then(|v| v.as_bool());
            if holds == Some(true) {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The attribute `name` of the element matching `selector` (waiting for it), as written
    /// in the page.
    pub(crate) async fn attr(&self, selector: &str, name: &str) -> String {
        self.wait_for(selector)
            .await
            .attr(name)
            .await
            .expect("read an attribute")
            .unwrap_or_else(|| panic!("{selector} has no {name}"))
    }

    /// A screenshot of the page, written to `target/{name}`.
    pub(crate) async fn screenshot_to(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG image");
        std::fs::create_dir_all(target_dir()).expect("target dir");
        std::fs::write(target_dir().join(name), &png).expect("write the screenshot");
    }

    /// Adds `qty` of `sku` through the add-item form and waits for the flash notice.
    pub(crate) async fn add_item(&self, sku: &str, qty: u32) {
        self.fill("input[name=sku]", sku).await;
        self.fill("input[name=qty]", &qty.to_string()).await;
        self.click_then("#add", "p.flash").await;
        let notice = self.text("p.flash").await;
        assert_eq!(notice, format!("Added {qty} × {sku}."));
    }

    /// The value of the session cookie `dmsession`, and whether it is `HttpOnly`.
    pub(crate) async fn session_cookie(&self) -> (String, Option<bool>) {
        let cookie = self
            .client
            .get_named_cookie("dmsession")
            .await
            .expect("the session cookie is set");
        (cookie.value().to_owned(), cookie.http_only())
    }

    /// Runs `script` in the page and returns its result.
    pub(crate) async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The basket lines shown on the page, as (sku, quantity text).
    pub(crate) async fn basket(&self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        for row in self
            .client
            .find_all(Locator::Css("#basket tbody tr"))
            .await
            .expect("basket rows")
        {
            let sku = row.find(Locator::Css(".sku")).await.expect("sku cell");
            let qty = row.find(Locator::Css(".qty")).await.expect("qty cell");
            lines.push((
                sku.text().await.expect("sku"),
                qty.text().await.expect("qty"),
            ));
        }
        lines
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the WebDriver session, so chromedriver closes this Chromium (also when the
        // test panicked); a plain blocking request, as no runtime may be left to await on.
        let _ = delete_session(self.driver_port, &self.session);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/{id}` on chromedriver, bounded in time.
fn delete_session(port: u16, session: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(STEP))?;
    stream.set_write_timeout(Some(STEP))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver may keep the connection open: read just the one response.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return Ok(());
            }
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        answer.extend_from_slice(&buf[..n]);
    }
}

/// The path of a tool: `$var` if set, else `default`.
fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Where test output goes: `$CARGO_TARGET_DIR` (relative to the workspace when relative),
/// else the workspace's `target/`.
pub(crate) fn target_dir() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .expect("example-app sits in the workspace");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}
