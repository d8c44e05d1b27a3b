//! A directory of files for the `StaticFiles` tests: created under the system's temporary
//! directory with fixed modification times, removed when dropped, and served by a fresh
//! server.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use rondo::{App, StaticFiles};

use crate::http::{TestResponse, TestServer};
use crate::plain_app::test_config;

/// 26 bytes, so that ranges are easy to check by eye.
pub const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz";

/// The modification time given to every file: `Last-Modified` is this, exactly.
pub const MTIME_SECS: u64 = 1_700_000_000;
/// [`MTIME_SECS`] as an HTTP date.
pub const MTIME_HTTP: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

/// A directory under the system's temporary one, removed when dropped. Its `public/`
/// subdirectory is the one served; `secret.txt` sits beside it, outside.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates the directory, with `public/` and `secret.txt` (`TOP SECRET`).
    ///
    /// # Panics
    ///
    /// When the temporary directory cannot be written.
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "rondo-static-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = TempDir(std::env::temp_dir().join(name));
        let _ = std::fs::remove_dir_all(&dir.0);
        std::fs::create_dir_all(dir.public()).expect("a writable temporary directory");
        dir.write("secret.txt", "TOP SECRET");
        dir
    }

    /// The served subdirectory.
    pub fn public(&self) -> PathBuf {
        self.0.join("public")
    }

    /// Writes `contents` at `path` (relative to the temporary directory) with the fixed
    /// modification time.
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write(&self, path: &str, contents: &str) {
        let path = self.0.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("a writable temporary directory");
        }
        std::fs::write(&path, contents).expect("a writable file");
        let file = std::fs::File::options().write(true).open(&path);
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(MTIME_SECS);
        file.and_then(|file| file.set_modified(mtime))
            .expect("a settable modification time");
    }
}

impl Default for TempDir {
    fn default() -> TempDir {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves `public/` of a fresh temporary directory with the files of most tests, at
/// `/static/{*path}` and (its `index.html`) at `/`; `files` makes the handler from the
/// directory's path.
///
/// # Panics
///
/// When the files cannot be written.
pub async fn serve(files: impl Fn(PathBuf) -> StaticFiles) -> (TestServer, TempDir) {
    let dir = TempDir::new();
    dir.write("public/css/site.css", "body { color: red }\n");
    dir.write("public/alphabet.txt", ALPHABET);
    dir.write("public/index.html", "<h1>home</h1>");
    dir.write("public/docs/index.html", "<h1>docs</h1>");
    std::fs::create_dir_all(dir.public().join("empty")).expect("a writable directory");
    let public = dir.public();
    let app = App::new(test_config())
        .get("/static/{*path}", files(public.clone()))
        .get("/", files(public));
    (TestServer::start(app).await, dir)
}

/// `GET` with headers, as a shorter call.
pub async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    server.get_with(path, headers).await
}
