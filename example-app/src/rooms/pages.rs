//! The rooms' HTML pages, rendered from `templates/rooms/` inside the shop's layout (the
//! same login): the rooms home (`/rooms`), a room (`/rooms/{id}`), and the answer to a join
//! link (`/join/{link}`: a redirect into the room, or a page saying why not). Forms post
//! with single-use CSRF tokens, as the shop's do; the live parts of the room page are
//! `static/rooms.js`, on the JSON API and the room's presence channel.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use rondo::channels::Channels;
use rondo::session::Backend;
use rondo::signed::unix_now;
use rondo::{
    CsrfForm, Path, Redirect, Session, SessionError, SessionManager, State, Template, Templates,
};
use serde::{Deserialize, Serialize};

use super::content::FileView;
use super::error::RoomError;
use super::hosting::NewRoom;
use super::invites::{NewRoomLink, RoomLink};
use super::model::{utc_iso, utc_text, ChatMessage, Member, Room, CHAT_MAX_CHARS};
use super::refusal::RefusedPage;
use super::{live, visitor, Rooms};

/// The session key of the link just made, shown once on the room page.
const NEW_LINK: &str = "rooms.new_link";

/// What the shop's layout (`base.html`) needs: the login bar, the notice, the footer.
#[derive(Debug, Serialize)]
struct Chrome {
    user: Option<String>,
    notice: Option<String>,
    csrf: LayoutTokens,
    store: &'static str,
}

#[derive(Debug, Default, Serialize)]
struct LayoutTokens {
    login: Option<String>,
    logout: Option<String>,
}

async fn chrome(session: &Session, sessions: &SessionManager) -> Result<Chrome, SessionError> {
    let user = visitor::user(session).await?;
    let mut csrf = LayoutTokens::default();
    if user.is_some() {
        csrf.logout = Some(session.csrf_token("/logout").await?);
    } else {
        csrf.login = Some(session.csrf_token("/login").await?);
    }
    Ok(Chrome {
        notice: session.flash_get("notice").await?,
        user,
        csrf,
        store: match sessions.backend() {
            Backend::Redis => "Redis",
            _ => "this process's memory (not shared between servers, lost on restart)",
        },
    })
}

/// A room as a list shows it.
#[derive(Debug, Serialize)]
struct RoomItem {
    room: Room,
    starts: String,
}

/// What `rooms/index.html` shows.
#[derive(Debug, Serialize)]
struct Index {
    #[serde(flatten)]
    chrome: Chrome,
    rooms: Vec<RoomItem>,
    /// The rooms a link admitted this session to, still there and still a member of.
    joined: Vec<RoomItem>,
    /// The create form's token, for a logged-in user.
    create: Option<String>,
}

/// `GET /rooms`: the rooms the user hosts, and the form to open one (log in first).
///
/// # Errors
///
/// The session or Redis failed.
pub async fn index(
    State(rooms_state): State<Rooms>,
    State(templates): State<Templates>,
    State(sessions): State<SessionManager>,
    session: Session,
) -> Result<Template, RoomError> {
    let chrome = chrome(&session, &sessions).await?;
    let (hosted, create) = if chrome.user.is_some() {
        let hosted = rooms_state.hosted(&session).await?;
        (hosted, Some(session.csrf_token("/rooms").await?))
    } else {
        (Vec::new(), None)
    };
    let item = |room: Room| RoomItem {
        starts: utc_text(room.starts_at),
        room,
    };
    let rooms = hosted.into_iter().map(item).collect();
    let mut joined = Vec::new();
    let bound: Vec<String> = session.get(visitor::JOINED).await?.unwrap_or_default();
    for id in bound.iter().rev() {
        if let Ok((room, _)) = rooms_state.as_member(&session, id).await {
            joined.push(item(room));
        }
    }
    Ok(templates.template(
        "rooms/index.html",
        Index {
            chrome,
            rooms,
            joined,
            create,
        },
    ))
}

/// The create form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    title: String,
    capacity: String,
    /// Minutes from now (empty or 0: now).
    #[serde(default)]
    starts_in: String,
}

/// `POST /rooms`: opens a room and goes there; a refusal comes back as the notice.
///
/// # Errors
///
/// The session or Redis failed.
pub async fn create(
    State(rooms): State<Rooms>,
    session: Session,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Result<Redirect, RoomError> {
    let new = match parse_create(&form) {
        Ok(new) => new,
        Err(why) => return refused_form(&session, "/rooms", &why),
    };
    match rooms.create_room(&session, new).await {
        Ok(room) => {
            session.flash("notice", &format!("Your room “{}” is open.", room.title))?;
            Ok(Redirect::to(&format!("/rooms/{}", room.id)))
        }
        Err(RoomError::Invalid(why)) => refused_form(&session, "/rooms", &why),
        Err(RoomError::NotLoggedIn) => refused_form(&session, "/", "Log in to host a room."),
        Err(err) => Err(err),
    }
}

fn parse_create(form: &CreateForm) -> Result<NewRoom, String> {
    let capacity = number(&form.capacity, "the number of places")?
        .ok_or_else(|| "say how many places the room has".to_owned())?;
    let minutes = number(&form.starts_in, "the minutes to the start")?.unwrap_or(0);
    Ok(NewRoom {
        title: form.title.clone(),
        capacity,
        starts_at: Some(unix_now() + minutes.min(366 * 24 * 60) * 60),
    })
}

/// The link form.
#[derive(Debug, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    max_uses: String,
    /// Minutes from now until it opens (empty: the room's start).
    #[serde(default)]
    starts_in: String,
    /// Minutes it stays valid once open (empty: 60).
    #[serde(default)]
    valid_for: String,
    #[serde(default)]
    participant: String,
}

/// `POST /rooms/{id}/links`: the host makes a link; the room page then shows it once.
///
/// # Errors
///
/// 403 for anyone but the host; the session or Redis failed.
pub async fn create_link(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<LinkForm>,
) -> Result<Redirect, RoomError> {
    let back = format!("/rooms/{id}");
    let new = match parse_link(&form) {
        Ok(new) => new,
        Err(why) => return refused_form(&session, &back, &why),
    };
    match rooms.create_link(&session, &id, new).await {
        Ok(link) => {
            session.put(NEW_LINK, &link.path)?;
            let whom = link.participant.as_deref().unwrap_or("anyone");
            session.flash("notice", &format!("A link for {whom} is ready."))?;
            Ok(Redirect::to(&back))
        }
        Err(RoomError::Invalid(why)) => refused_form(&session, &back, &why),
        Err(err) => Err(err),
    }
}

fn parse_link(form: &LinkForm) -> Result<NewRoomLink, String> {
    Ok(NewRoomLink {
        max_uses: number(&form.max_uses, "the number of places")?,
        starts_at: number(&form.starts_in, "the minutes until it opens")?
            .map(|m| unix_now() + m.min(366 * 24 * 60) * 60),
        valid_for: number(&form.valid_for, "the minutes it is valid")?
            .map(|m| m.saturating_mul(60)),
        participant: Some(form.participant.clone()).filter(|p| !p.trim().is_empty()),
    })
}

/// A form that could not be taken: its reason as the notice, back to `to`.
fn refused_form(session: &Session, to: &str, why: &str) -> Result<Redirect, RoomError> {
    session.flash("notice", &format!("Not done: {why}."))?;
    Ok(Redirect::to(to))
}

/// A form's number field: `None` when empty.
fn number(text: &str, what: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("{what} must be a whole number"))
}

/// The room's channel settings for `rooms.js` (`None` with channels off).
#[derive(Debug, Serialize)]
struct LivePage {
    key: String,
    path: String,
    auth: String,
    channel: String,
}

/// A link as the host's table shows it.
#[derive(Debug, Serialize)]
struct LinkItem {
    #[serde(flatten)]
    link: RoomLink,
    opens: String,
    expires: String,
}

/// What `rooms/room.html` shows.
#[derive(Debug, Serialize)]
struct RoomPage {
    #[serde(flatten)]
    chrome: Chrome,
    room: Room,
    me: Member,
    is_host: bool,
    starts: String,
    starts_iso: String,
    ends: String,
    chat: Vec<ChatMessage>,
    chat_max: usize,
    files: Vec<FileView>,
    links: Vec<LinkItem>,
    new_link: Option<String>,
    /// The link form's token (host only).
    link_token: Option<String>,
    live: Option<LivePage>,
}

/// `GET /rooms/{id}`: the room, for its members (403 for anyone else).
///
/// # Errors
///
/// 404 for no such room, 403 for a visitor who is not a member; the session or Redis
/// failed.
pub async fn room(
    State(rooms): State<Rooms>,
    State(templates): State<Templates>,
    State(sessions): State<SessionManager>,
    State(channels): State<Channels>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Template, RoomError> {
    let (room, me) = rooms.as_member(&session, &id).await?;
    let is_host = me.host && room.host == me.id;
    let chrome = chrome(&session, &sessions).await?;
    let chat = rooms.store.chat(&room.id).await?;
    let files = rooms.files_of(&room).await?;
    let (links, new_link, link_token) = if is_host {
        let links = rooms
            .links_of(&room)
            .await?
            .into_iter()
            .map(|link| LinkItem {
                opens: utc_text(link.starts_at),
                expires: utc_text(link.expires_at),
                link,
            })
            .collect();
        let new_link: Option<String> = session.get(NEW_LINK).await?;
        if new_link.is_some() {
            session.remove(NEW_LINK)?;
        }
        let token = session
            .csrf_token(&format!("/rooms/{}/links", room.id))
            .await?;
        (links, new_link, Some(token))
    } else {
        (Vec::new(), None, None)
    };
    let config = channels.config();
    let live = config.enabled.then(|| LivePage {
        key: config.key.clone(),
        path: config.path.clone(),
        auth: config.auth_path.clone(),
        channel: live::channel(&room.id),
    });
    let page = RoomPage {
        chrome,
        is_host,
        starts: utc_text(room.starts_at),
        starts_iso: utc_iso(room.starts_at),
        ends: utc_text(room.expires_at),
        chat,
        chat_max: CHAT_MAX_CHARS,
        files,
        links,
        new_link,
        link_token,
        live,
        room,
        me,
    };
    Ok(templates.template("rooms/room.html", page))
}

/// `GET /join/{link}`: admits the visitor and redirects into the room (303), or answers
/// with the reason it cannot: a page for browsers, JSON (`{"error", "status", "reason"}`,
/// and `starts_at` for a link not open yet) for everybody else. A `HEAD` (a link preview)
/// redeems nothing.
///
/// # Errors
///
/// The session or Redis failed.
pub async fn join(
    State(rooms): State<Rooms>,
    State(templates): State<Templates>,
    method: Method,
    session: Session,
    Path(link): Path<String>,
) -> Result<Result<Redirect, RefusedPage>, RoomError> {
    if method == Method::HEAD {
        return Ok(Ok(Redirect::to("/rooms")));
    }
    Ok(match rooms.redeem(&session, &link).await? {
        Ok(admitted) => Ok(Redirect::to(&format!("/rooms/{}", admitted.room.id))),
        Err(refused) => Err(RefusedPage { refused, templates }),
    })
}

/// `GET /static/rooms.js`: the room page's script, compiled into the binary.
pub async fn script() -> (StatusCode, HeaderMap, &'static str) {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/rooms.js"),
    )
}

/// `GET /static/rooms.css`: the rooms' styles, compiled into the binary.
pub async fn stylesheet() -> (StatusCode, HeaderMap, &'static str) {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../static/rooms.css"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> (StatusCode, HeaderMap, &'static str) {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (StatusCode::OK, headers, body)
}
