//! Pusher error codes, and the checks made on the WebSocket URL when a client connects.
//!
//! The server reports fatal problems by closing the WebSocket with a 4xxx close code whose
//! hundreds digit tells the client what to do next: 4000-4099 do not reconnect unchanged,
//! 4100-4199 reconnect after backing off (at least 1 s), 4200-4299 reconnect at once. Codes
//! 4300-4399 are "any other error"; 4301 and 4302 travel inside a `pusher:error` event
//! without closing. Since protocol 6 the close code alone carries the error: a `pusher:error`
//! before the close is only for WebSocket drafts without close codes.

use super::query::form_decode;

/// The oldest protocol version this server speaks: version 5 made clients answer
/// `pusher:ping`, which the server's liveness check relies on (1 to 3 are retired).
pub const MIN_PROTOCOL_VERSION: u8 = 5;
/// The current protocol version, the one pusher-js 8 requests.
pub const PROTOCOL_VERSION: u8 = 7;

/// An error code of the Pusher Channels protocol (version 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// 4000: the application only accepts TLS connections; reconnect with `wss://`.
    SslOnly = 4000,
    /// 4001: no application has the key in the connection URL.
    AppDoesNotExist = 4001,
    /// 4003: the application is disabled.
    AppDisabled = 4003,
    /// 4004: the application is over its connection quota.
    OverConnectionQuota = 4004,
    /// 4005: the connection URL's path is not `/app/{key}`.
    PathNotFound = 4005,
    /// 4006: the `protocol` query parameter is not an integer.
    InvalidVersionFormat = 4006,
    /// 4007: the requested protocol version is not supported.
    UnsupportedProtocolVersion = 4007,
    /// 4008: the connection URL has no `protocol` query parameter (this server takes the
    /// current version instead; the code is kept for completeness).
    NoProtocolVersion = 4008,
    /// 4009: the connection is not authorized (for example sign-in required and missing).
    Unauthorized = 4009,
    /// 4100: the server is over capacity; reconnect after backing off.
    OverCapacity = 4100,
    /// 4200: reconnect immediately (for example the server is restarting).
    GenericReconnect = 4200,
    /// 4201: a ping was sent and no pong came back in time.
    PongNotReceived = 4201,
    /// 4202: closed after a long inactivity from a client that cannot ping.
    ClosedAfterInactivity = 4202,
    /// 4301: a client event was rejected by the rate limit (connection stays open).
    ClientEventRateLimit = 4301,
    /// 4302: the sign-in watchlist was over its limit; only the first 100 ids were kept.
    WatchlistLimitExceeded = 4302,
}

/// What a client should do after receiving a code, from the code's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// 4000-4099: reconnecting with the same parameters will fail again.
    DoNotReconnect,
    /// 4100-4199: reconnect after at least one second, backing off on repeated failures.
    ReconnectAfterBackoff,
    /// 4200-4299: reconnect immediately.
    ReconnectImmediately,
    /// 4300-4399: any other error (pusher-js treats a close with such a code as refused).
    Other,
}

impl ErrorCode {
    const ALL: [Self; 15] = [
        Self::SslOnly,
        Self::AppDoesNotExist,
        Self::AppDisabled,
        Self::OverConnectionQuota,
        Self::PathNotFound,
        Self::InvalidVersionFormat,
        Self::UnsupportedProtocolVersion,
        Self::NoProtocolVersion,
        Self::Unauthorized,
        Self::OverCapacity,
        Self::GenericReconnect,
        Self::PongNotReceived,
        Self::ClosedAfterInactivity,
        Self::ClientEventRateLimit,
        Self::WatchlistLimitExceeded,
    ];

    /// The numeric code, also the WebSocket close code.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The code for a number, if the protocol defines it.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The protocol's description, short enough for a WebSocket close reason (≤ 123 bytes).
    pub const fn message(self) -> &'static str {
        match self {
            Self::SslOnly => "Application only accepts SSL connections, reconnect using wss://",
            Self::AppDoesNotExist => "Application does not exist",
            Self::AppDisabled => "Application disabled",
            Self::OverConnectionQuota => "Application is over connection quota",
            Self::PathNotFound => "Path not found",
            Self::InvalidVersionFormat => "Invalid version string format",
            Self::UnsupportedProtocolVersion => "Unsupported protocol version",
            Self::NoProtocolVersion => "No protocol version supplied",
            Self::Unauthorized => "Connection is unauthorized",
            Self::OverCapacity => "Over capacity",
            Self::GenericReconnect => "Generic reconnect immediately",
            Self::PongNotReceived => "Pong reply not received",
            Self::ClosedAfterInactivity => "Closed after inactivity",
            Self::ClientEventRateLimit => "Client event rejected due to rate limit",
            Self::WatchlistLimitExceeded => {
                "Watchlist limit exceeded. Only the first 100 user IDs are accepted"
            }
        }
    }

    /// What the client should do next, from the code's range.
    pub const fn class(self) -> ErrorClass {
        match self.code() {
            4000..=4099 => ErrorClass::DoNotReconnect,
            4100..=4199 => ErrorClass::ReconnectAfterBackoff,
            4200..=4299 => ErrorClass::ReconnectImmediately,
            _ => ErrorClass::Other,
        }
    }
}

/// The query parameters of the WebSocket URL (`/app/{key}?protocol=7&client=js&version=8.4.0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectParams {
    /// The protocol version the client speaks (between [`MIN_PROTOCOL_VERSION`] and
    /// [`PROTOCOL_VERSION`]).
    pub protocol: u8,
    /// The client library (`js` for pusher-js), if given.
    pub client: Option<String>,
    /// The client library's version, if given.
    pub version: Option<String>,
}

impl ConnectParams {
    /// Reads the connection URL's query. The error is the code to close the socket with:
    /// A missing `protocol` means the current version (the protocol's own rule, guessing
    /// from `version` or falling back to version 1, is deprecated, and versions below 4 are
    /// gone; load tools and small clients often leave it out). 4006 when it is not an
    /// integer, 4007 when it is outside the supported range.
    pub fn from_query(query: &str) -> Result<Self, ErrorCode> {
        let mut protocol = None;
        let mut client = None;
        let mut version = None;
        for segment in query.split('&') {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            // Only these three keys matter; an undecodable unrelated parameter is ignored.
            let slot = match key {
                "protocol" => &mut protocol,
                "client" => &mut client,
                "version" => &mut version,
                _ => continue,
            };
            *slot = form_decode(value).ok();
            if key == "protocol" && slot.is_none() {
                return Err(ErrorCode::InvalidVersionFormat);
            }
        }
        let requested: u64 = protocol
            .unwrap_or_else(|| PROTOCOL_VERSION.to_string())
            .parse()
            .map_err(|_| ErrorCode::InvalidVersionFormat)?;
        let protocol = u8::try_from(requested)
            .ok()
            .filter(|v| (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(v))
            .ok_or(ErrorCode::UnsupportedProtocolVersion)?;
        Ok(Self {
            protocol,
            client,
            version,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn codes_and_classes_match_the_protocol_document() {
        let expected = [
            (4000, ErrorClass::DoNotReconnect),
            (4001, ErrorClass::DoNotReconnect),
            (4003, ErrorClass::DoNotReconnect),
            (4004, ErrorClass::DoNotReconnect),
            (4005, ErrorClass::DoNotReconnect),
            (4006, ErrorClass::DoNotReconnect),
            (4007, ErrorClass::DoNotReconnect),
            (4008, ErrorClass::DoNotReconnect),
            (4009, ErrorClass::DoNotReconnect),
            (4100, ErrorClass::ReconnectAfterBackoff),
            (4200, ErrorClass::ReconnectImmediately),
            (4201, ErrorClass::ReconnectImmediately),
            (4202, ErrorClass::ReconnectImmediately),
            (4301, ErrorClass::Other),
            (4302, ErrorClass::Other),
        ];
        assert_eq!(ErrorCode::ALL.len(), expected.len());
        for (code, class) in expected {
            let parsed = ErrorCode::from_code(code).unwrap();
            assert_eq!(parsed.code(), code);
            assert_eq!(parsed.class(), class, "{code}");
            assert!(
                parsed.message().len() <= 123,
                "{code} close reason too long"
            );
        }
        assert_eq!(ErrorCode::from_code(4002), None);
        assert_eq!(ErrorCode::from_code(1000), None);
        assert_eq!(
            ErrorCode::Unauthorized.message(),
            "Connection is unauthorized"
        );
        assert_eq!(
            ErrorCode::PongNotReceived.message(),
            "Pong reply not received"
        );
    }

    #[test]
    fn pusher_js_connect_query_is_accepted() {
        let params = ConnectParams::from_query("protocol=7&client=js&version=8.4.0&flash=false");
        assert_eq!(
            params,
            Ok(ConnectParams {
                protocol: 7,
                client: Some("js".into()),
                version: Some("8.4.0".into()),
            })
        );
        let minimal = ConnectParams::from_query("protocol=5").unwrap();
        assert_eq!(
            (minimal.protocol, minimal.client, minimal.version),
            (5, None, None)
        );
    }

    #[test]
    fn connect_query_errors_map_to_codes() {
        use ErrorCode::*;
        for (query, code) in [
            ("protocol=seven", InvalidVersionFormat),
            ("protocol=7.0", InvalidVersionFormat),
            ("protocol=%zz", InvalidVersionFormat),
            ("protocol=", InvalidVersionFormat),
            ("protocol=4", UnsupportedProtocolVersion),
            ("protocol=8", UnsupportedProtocolVersion),
            ("protocol=999", UnsupportedProtocolVersion),
            ("protocol=-7", InvalidVersionFormat),
        ] {
            assert_eq!(ConnectParams::from_query(query), Err(code), "{query:?}");
        }
        // No `protocol`: the current version.
        for query in ["", "client=js&version=8.4.0"] {
            let params = ConnectParams::from_query(query).unwrap();
            assert_eq!(params.protocol, PROTOCOL_VERSION, "{query:?}");
        }
        // An undecodable parameter the server does not read is ignored.
        assert!(ConnectParams::from_query("protocol=7&junk=%zz").is_ok());
    }
}
