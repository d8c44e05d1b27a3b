//! Meeting rooms: the session app of the blueprint, built on Rondo's parts.
//!
//! A logged-in user (the shop's login) hosts a room: a title, a start time and a number of
//! places. They hand out join links ([`rondo::links`]: open ones, or personal invitations
//! naming the participant), each with its own expiry, number of uses and opening time.
//! Opening a link admits the visitor (rotating their session id) and binds the room to
//! their session; refusals are pages of their own (not open yet, with a countdown;
//! expired; full; withdrawn or invalid; closed). On the room page the members see who is
//! here ([presence](rondo::channels)), chat (the last 50 messages kept in Redis), share
//! temporary files ([`rondo::files`], the room being their owner and quota), get a LiveKit
//! token ([`rondo::livekit`]) and move their pointers over a shared strip (client events).
//! The host removes members and closes the room.
//!
//! # Layout
//!
//! - [`model`]: rooms, members, messages, files, and the input rules;
//! - [`store`]: their Redis records and scripts, one hash tag per room;
//! - [`visitor`]: who a session is to the rooms (its member id);
//! - what pages and the API share, as methods of [`Rooms`]: [`hosting`] (open a room,
//!   remove a member, close it), [`invites`] (join links, made and redeemed) and
//!   [`content`] (chat, files, LiveKit tokens);
//! - [`api`]: the JSON API; [`pages`]: the HTML pages (`templates/rooms/`, `static/rooms.js`),
//!   and [`refusal`], the answer to a join link that does not let the visitor in;
//! - [`live`]: the presence channel's rule and the events broadcast on it;
//! - [`error`]: [`RoomError`] and the status each failure answers.

pub mod api;
pub mod content;
pub mod error;
pub mod hosting;
pub mod invites;
pub mod live;
pub mod model;
pub mod pages;
pub mod refusal;
pub mod store;
pub mod visitor;

use std::time::Duration;

use rondo::channels::Channels;
use rondo::files::{SweepReport, TempFiles};
use rondo::links::Links;
use rondo::livekit::LiveKit;
use rondo::{App, Session};

use self::error::RoomError;
use self::model::{is_room_id, Member, Room};
use self::store::RoomStore;

/// Everything the rooms' controllers need, registered as one piece of state. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct Rooms {
    /// The rooms' records.
    pub store: RoomStore,
    /// Join links.
    pub links: Links,
    /// Shared files (owner: `room:{id}`).
    pub files: TempFiles,
    /// The presence channels.
    pub channels: Channels,
    /// The LiveKit project, when `[livekit]` names one.
    pub livekit: Option<LiveKit>,
}

impl Rooms {
    /// Room `id` and the member `session` is in it.
    ///
    /// # Errors
    ///
    /// [`RoomError::NotFound`] for no such room, [`RoomError::NotMember`] for a visitor who
    /// is not (or no longer) a member.
    pub async fn as_member(
        &self,
        session: &Session,
        id: &str,
    ) -> Result<(Room, Member), RoomError> {
        if !is_room_id(id) {
            return Err(RoomError::NotFound);
        }
        let room = self.store.get(id).await?.ok_or(RoomError::NotFound)?;
        let me = visitor::member_id(session)
            .await?
            .ok_or(RoomError::NotMember)?;
        let member = self
            .store
            .member(id, &me)
            .await?
            .ok_or(RoomError::NotMember)?;
        Ok((room, member))
    }

    /// [`Rooms::as_member`], for an open room.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_member`], and [`RoomError::Closed`].
    pub async fn as_member_of_open(
        &self,
        session: &Session,
        id: &str,
    ) -> Result<(Room, Member), RoomError> {
        let (room, member) = self.as_member(session, id).await?;
        if room.closed {
            return Err(RoomError::Closed);
        }
        Ok((room, member))
    }

    /// Room `id` and its host, when `session` is the host's.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_member`], and [`RoomError::HostOnly`] for another member.
    pub async fn as_host(&self, session: &Session, id: &str) -> Result<(Room, Member), RoomError> {
        let (room, member) = self.as_member(session, id).await?;
        if !member.host || room.host != member.id {
            return Err(RoomError::HostOnly);
        }
        Ok((room, member))
    }
}

/// The rooms' routes (the route table is in the README).
pub fn routes(app: App) -> App {
    app.get("/rooms", pages::index)
        .post("/rooms", pages::create)
        .get("/rooms/{id}", pages::room)
        .post("/rooms/{id}/links", pages::create_link)
        .get("/rooms/{id}/files/{file}", api::download)
        .get("/join/{link}", pages::join)
        .get("/static/rooms.js", pages::script)
        .get("/static/rooms.css", pages::stylesheet)
        .post("/api/rooms", api::create)
        .get("/api/rooms", api::list)
        .get("/api/rooms/{id}", api::show)
        .post("/api/rooms/{id}/close", api::close)
        .get("/api/rooms/{id}/links", api::links)
        .post("/api/rooms/{id}/links", api::create_link)
        .delete("/api/rooms/{id}/links/{link}", api::revoke_link)
        .delete("/api/rooms/{id}/members/{member}", api::remove)
        .get("/api/rooms/{id}/chat", api::chat)
        .post("/api/rooms/{id}/chat", api::say)
        .get("/api/rooms/{id}/files", api::files)
        .post("/api/rooms/{id}/files", api::upload)
        .get("/api/rooms/{id}/token", api::token)
}

/// Sweeps expired shared files from disk every `[files] sweep_interval` (and once at
/// start-up) until the app shuts down.
///
/// The framework's way is the `SweepTempFiles` job on the app's queue; the example app
/// sweeps on a timer of its own instead, so that its job counters (`/api/jobs/stats`)
/// count the login's job alone. Sweeping is safe on every server at once.
pub fn sweep_files(app: App, files: TempFiles) -> App {
    let period = app
        .config()
        .files
        .sweep_interval
        .max(Duration::from_millis(100));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.changed() => return,
            }
            match files.sweep().await {
                Ok(report) if report == SweepReport::default() => {}
                Ok(report) => tracing::info!(
                    expired = report.expired,
                    orphaned = report.orphaned,
                    bytes = report.bytes,
                    "shared files swept"
                ),
                Err(err) => tracing::warn!(error = %err, "shared files not swept"),
            }
        }
    });
    app.on_shutdown(move || async move {
        let _ = stop.send(true);
    })
}
