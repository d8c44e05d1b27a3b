//! How [`Channels`] joins an app: its state, its metrics, its shutdown, and, when
//! `[channels] enabled`, its routes (the socket, the authorization endpoint and the HTTP
//! events API).

use http::Method;

use super::handle::Channels;
use crate::component::{Component, Installer};

impl Component for Channels {
    fn install(self, app: &mut Installer<'_>) {
        app.state(self.clone());
        self.shared.metrics.register(app);
        let stop = self.shared.stop.clone();
        app.on_shutdown(move || async move { stop.cancel() });
        let config = &self.shared.config;
        if !config.enabled {
            return;
        }
        app.route(
            Method::GET,
            &format!("{}/{{key}}", config.path),
            super::socket::connect,
        );
        app.route(Method::POST, &config.auth_path, super::auth::authorize);
        app.route(
            Method::POST,
            "/apps/{app_id}/events",
            super::http_api::trigger,
        );
        app.route(
            Method::POST,
            "/apps/{app_id}/batch_events",
            super::http_api::trigger_batch,
        );
    }
}
