//! Uploads and temporary files: `multipart/form-data` bodies built by hand, a `[files] dir`
//! under the system's temporary directory (removed when dropped), and a look at what is on
//! disk in it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The boundary of every body [`multipart`] builds.
pub const BOUNDARY: &str = "rondo-test-boundary-7MA4YWxkTrZu0gW";

/// `multipart/form-data; boundary=...` for bodies built by [`multipart`].
pub fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    /// The form field's name.
    pub name: String,
    /// `filename="..."`, for a file part.
    pub file_name: Option<String>,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Its bytes.
    pub body: String,
}

/// A text field.
pub fn text(name: &str, value: &str) -> Part {
    Part {
        name: name.to_owned(),
        file_name: None,
        content_type: None,
        body: value.to_owned(),
    }
}

/// A file part.
pub fn file(name: &str, file_name: &str, content_type: &str, body: &str) -> Part {
    Part {
        name: name.to_owned(),
        file_name: Some(file_name.to_owned()),
        content_type: Some(content_type.to_owned()),
        body: body.to_owned(),
    }
}

/// The head of one part (everything before its bytes), `--boundary` included.
pub fn part_head(part: &Part) -> String {
    let mut head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"",
        part.name
    );
    if let Some(file_name) = &part.file_name {
        head.push_str(&format!("; filename=\"{file_name}\""));
    }
    head.push_str("\r\n");
    if let Some(content_type) = &part.content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A whole `multipart/form-data` body of `parts`, with [`BOUNDARY`].
pub fn multipart(parts: &[Part]) -> String {
    let mut body = String::new();
    for part in parts {
        body.push_str(&part_head(part));
        body.push_str(&part.body);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body
}

/// A directory for `[files] dir`, under the system's temporary one, removed when dropped.
#[derive(Debug)]
pub struct FilesDir(pub PathBuf);

impl FilesDir {
    /// A new, empty directory.
    ///
    /// # Panics
    ///
    /// When the temporary directory cannot be written.
    pub fn new() -> FilesDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "rondo-files-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a writable temporary directory");
        FilesDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Every regular file under the directory, recursively, relative to it, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![self.0.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if let Ok(relative) = path.strip_prefix(&self.0) {
                    out.push(relative.display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

impl Default for FilesDir {
    fn default() -> FilesDir {
        FilesDir::new()
    }
}

impl Drop for FilesDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
