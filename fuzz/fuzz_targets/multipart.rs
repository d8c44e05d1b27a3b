//! Multipart parsing: an arbitrary `Content-Type` and body sent to a route taking
//! `Multipart` get an answer that is never a 5xx, and no upload is left on disk once the
//! request is over (accepted or refused).
//!
//! Input: the first line is the `Content-Type` header, the rest is the body.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use rondo::files::Multipart;
use rondo::{App, Body, Config, Service};

async fn upload(form: Multipart) -> String {
    let mut total = 0;
    for file in form.files() {
        total += file.size();
    }
    format!(
        "{} fields, {} files, {total} bytes",
        form.fields().len(),
        form.files().len()
    )
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: Service,
    uploads: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rondo-fuzz-multipart-{}", std::process::id()));
        let ini = format!(
            "[http]\nbody_read_timeout = 1s\n[session]\nstore = memory\n[files]\ndir = {}\n\
             max_file_bytes = 2k\nmax_request_bytes = 8k\nmax_files = 3\nmax_fields = 4\n\
             max_field_bytes = 256\nallowed_types = text/plain, image/*\n",
            dir.display()
        );
        let config = Config::parse_str(&ini, "fuzz.ini").expect("valid config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let (app, _hooks) = App::new(config).post("/upload", upload).into_service();
        Fixture {
            runtime,
            app,
            uploads: dir.join("uploads"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(content_type) = HeaderValue::from_bytes(head) else {
        return;
    };
    let fixture = fixture();
    let mut req = http::Request::new(Body::full(body.to_vec()));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static("/upload");
    req.headers_mut().insert(CONTENT_TYPE, content_type);
    let status = fixture
        .runtime
        .block_on(async { fixture.app.handle(req).await.status() });
    assert!(
        !status.is_server_error(),
        "{status} for {:?}",
        String::from_utf8_lossy(data)
    );
    let left = std::fs::read_dir(&fixture.uploads)
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(
        left,
        0,
        "uploads left on disk for {:?}",
        String::from_utf8_lossy(data)
    );
});
