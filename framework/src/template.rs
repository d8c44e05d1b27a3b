//! Server-rendered HTML: templates loaded once at start-up, rendered per request.
//!
//! [`Templates`] holds every template of a directory, parsed when the app starts, so a syntax
//! error stops the start instead of failing a request, and no request reads the disk. It is a
//! cheap handle (an `Arc`): register it with [`App::state`](crate::App::state) and take it as
//! a [`State<Templates>`](crate::State) argument.
//!
//! A controller answers with a [`Template`]: a template name and a context (anything
//! `Serialize`). Rendering happens when the response is built; a missing template or a
//! render error is logged and answered with a 500 [`ErrorPage`], never a panic.
//!
//! The engine is [MiniJinja](https://docs.rs/minijinja) (Jinja2/Twig syntax: `{{ value }}`,
//! `{% if %}`, `{% for %}`, `{% extends %}`, `{% include %}`, macros). Templates whose name
//! ends in `.html`, `.htm` or `.xml` are escaped automatically: every `{{ value }}` is HTML
//! escaped unless marked `|safe`.
//!
//! # Examples
//!
//! ```
//! use rondo::{State, Template, Templates};
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct Hello<'a> {
//!     name: &'a str,
//! }
//!
//! async fn hello(State(templates): State<Templates>) -> Template {
//!     templates.template("hello.html", Hello { name: "<Ann>" })
//! }
//!
//! # fn main() -> Result<(), rondo::TemplateError> {
//! let templates = Templates::from_sources([("hello.html", "<p>Hello, {{ name }}!</p>")])?;
//! assert_eq!(
//!     templates.render("hello.html", Hello { name: "<Ann>" })?,
//!     "<p>Hello, &lt;Ann&gt;!</p>"
//! );
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::Serialize;

use crate::body::{Body, Response};
use crate::respond::{with_body, ErrorPage, RequestHead, Responder};

/// Why templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template directory or one of its files could not be read.
    #[error("cannot read templates at {}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A template file's name is not valid UTF-8, so no template could name it.
    #[error("template file name is not UTF-8: {}", path.display())]
    Name {
        /// The file.
        path: PathBuf,
    },
    /// A template does not parse.
    #[error("template {name}: {message}")]
    Syntax {
        /// The template's name.
        name: String,
        /// The engine's message, with the line.
        message: String,
    },
    /// No template has this name.
    #[error("no template named {name}")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// Rendering failed (an error in a filter, a bad value, a missing included template).
    #[error("rendering template {name} failed: {message}")]
    Render {
        /// The template's name.
        name: String,
        /// The engine's message, with the line.
        message: String,
    },
}

/// Every template of an app, parsed once; a cheap handle to clone into controllers.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.templates().map(|(name, _)| name).collect();
        f.debug_struct("Templates").field("names", &names).finish()
    }
}

impl Templates {
    /// Loads every file under `dir` (subdirectories included) as a template named by its
    /// path relative to `dir`, with `/` between components: `pages/basket.html`.
    ///
    /// # Errors
    ///
    /// The directory or a file cannot be read ([`TemplateError::Io`]), a file name is not
    /// UTF-8, or a template does not parse ([`TemplateError::Syntax`]).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let dir = dir.as_ref();
        let mut sources = Vec::new();
        collect(dir, dir, &mut sources)?;
        Self::from_sources(sources)
    }

    /// Builds the templates from `(name, source)` pairs: for templates compiled into the
    /// binary (`include_str!`) or made by tests.
    ///
    /// # Errors
    ///
    /// A template does not parse ([`TemplateError::Syntax`]).
    pub fn from_sources<N, S>(
        sources: impl IntoIterator<Item = (N, S)>,
    ) -> Result<Self, TemplateError>
    where
        N: Into<String>,
        S: Into<String>,
    {
        let mut env = Environment::new();
        for (name, source) in sources {
            let name = name.into();
            env.add_template_owned(name.clone(), source.into())
                .map_err(|e| TemplateError::Syntax {
                    name,
                    message: describe(&e),
                })?;
        }
        Ok(Self { env: Arc::new(env) })
    }

    /// Whether a template of this name was loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Renders the template `name` with `context` into a string.
    ///
    /// # Errors
    ///
    /// [`TemplateError::NotFound`] when there is no such template, [`TemplateError::Render`]
    /// when rendering fails.
    pub fn render(&self, name: &str, context: impl Serialize) -> Result<String, TemplateError> {
        self.render_value(name, Value::from(Serde(context)))
    }

    /// A responder that renders the template `name` with `context` as an HTML page.
    ///
    /// The context is captured now; rendering happens when the response is built.
    pub fn template(&self, name: impl Into<String>, context: impl Serialize) -> Template {
        Template {
            templates: self.clone(),
            name: name.into(),
            context: Value::from(Serde(context)),
        }
    }

    fn render_value(&self, name: &str, context: Value) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|_| TemplateError::NotFound {
                name: name.to_owned(),
            })?;
        template.render(context).map_err(|e| TemplateError::Render {
            name: name.to_owned(),
            message: describe(&e),
        })
    }
}

/// An HTML page rendered from a template: what a controller returns (see
/// [`Templates::template`]).
///
/// It answers `200 text/html; charset=utf-8`; wrap it in `(StatusCode, Template)` for
/// another status. When rendering fails, the error is logged with the template's name and
/// the client gets a 500 error page without the details.
#[derive(Debug, Clone)]
pub struct Template {
    templates: Templates,
    name: String,
    context: Value,
}

impl Template {
    /// The name of the template it renders.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Responder for Template {
    fn respond(self, head: &RequestHead) -> Response {
        match self.templates.render_value(&self.name, self.context) {
            Ok(page) => with_body("text/html; charset=utf-8", Body::from(page)),
            Err(err) => {
                tracing::error!(error = %err, "template could not be rendered");
                ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                    .respond(head)
            }
        }
    }
}

/// The engine's message with the template line, and the cause if it has one.
fn describe(err: &minijinja::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Reads every file under `dir` into `out` as (name relative to `root`, source).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<(), TemplateError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TemplateError::Io { path, source }
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(dir))?;
    // Sorted, so loading is deterministic and errors come in a stable order.
    entries.sort_by_key(std::fs::DirEntry::path);
    for entry in entries {
        let path = entry.path();
        if entry.file_type().map_err(io(&path))?.is_dir() {
            collect(root, &path, out)?;
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| TemplateError::Name { path: path.clone() })?
            .join("/");
        let source = std::fs::read_to_string(&path).map_err(io(&path))?;
        out.push((name, source));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
    use http::{HeaderMap, Method};
    use serde_json::json;

    fn body(response: &Response) -> String {
        String::from_utf8_lossy(response.body().as_bytes().unwrap_or_default()).into_owned()
    }

    fn browser() -> RequestHead {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/html"));
        RequestHead::new(&Method::GET, &headers)
    }

    #[test]
    fn html_templates_escape_and_inherit() -> Result<(), TemplateError> {
        let templates = Templates::from_sources([
            ("base.html", "<main>{% block body %}{% endblock %}</main>"),
            (
                "page.html",
                "{% extends \"base.html\" %}{% block body %}{{ who }}|{{ raw|safe }}{% endblock %}",
            ),
            ("note.txt", "{{ who }}"),
        ])?;
        let context = json!({ "who": "<b>&\"'", "raw": "<i>" });
        assert_eq!(
            templates.render("page.html", &context)?,
            "<main>&lt;b&gt;&amp;&quot;&#x27;|<i></main>"
        );
        assert_eq!(templates.render("note.txt", &context)?, "<b>&\"'");
        Ok(())
    }

    #[test]
    fn syntax_errors_are_load_errors() {
        let err = Templates::from_sources([("bad.html", "{% if x %}")]);
        assert!(
            matches!(&err, Err(TemplateError::Syntax { name, .. }) if name == "bad.html"),
            "{err:?}"
        );
    }

    #[test]
    fn missing_or_failing_templates_answer_500() -> Result<(), TemplateError> {
        let templates = Templates::from_sources([("bad.html", "{{ 1 / 0 }}")])?;
        for name in ["bad.html", "absent.html"] {
            let response = templates.template(name, json!({})).respond(&browser());
            assert_eq!(
                response.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{name}"
            );
            assert!(body(&response).contains("internal server error"), "{name}");
        }
        assert!(matches!(
            templates.render("absent.html", ()),
            Err(TemplateError::NotFound { .. })
        ));
        Ok(())
    }

    #[test]
    fn a_template_answers_html() -> Result<(), TemplateError> {
        let templates = Templates::from_sources([("hi.html", "hi {{ n }}")])?;
        let response = templates
            .template("hi.html", json!({ "n": 3 }))
            .respond(&browser());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get(CONTENT_TYPE),
            Some(&HeaderValue::from_static("text/html; charset=utf-8"))
        );
        assert_eq!(body(&response), "hi 3");
        Ok(())
    }

    #[test]
    fn load_reads_a_directory_tree() -> Result<(), TemplateError> {
        let dir = std::env::temp_dir().join(format!("rondo-templates-{}", std::process::id()));
        let sub = dir.join("parts");
        std::fs::create_dir_all(&sub).map_err(|source| TemplateError::Io {
            path: sub.clone(),
            source,
        })?;
        let write = |path: PathBuf, text: &str| {
            std::fs::write(&path, text).map_err(|source| TemplateError::Io { path, source })
        };
        write(dir.join("page.html"), "[{% include \"parts/x.html\" %}]")?;
        write(sub.join("x.html"), "{{ v }}")?;
        let loaded = Templates::load(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let templates = loaded?;
        assert!(templates.contains("parts/x.html"));
        assert_eq!(
            templates.render("page.html", json!({ "v": "<" }))?,
            "[&lt;]"
        );
        assert!(matches!(
            Templates::load(dir.join("absent")),
            Err(TemplateError::Io { .. })
        ));
        Ok(())
    }
}
