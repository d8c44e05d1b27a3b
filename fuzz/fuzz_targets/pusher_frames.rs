//! What a socket or the HTTP events API reads from outside: a client's Pusher frame, a
//! connect URL's query, a presence member's `channel_data`, an events API body and its
//! signed query. Each is parsed to a value or an error the server answers with, never a
//! panic; a frame that parses is within the limits it was parsed with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::channels::protocol::{
    parse_batch, parse_trigger, verify_request, ClientFrame, ConnectParams, Credentials,
    EventLimits, FrameLimits, PresenceMember, SignedRequest, MAX_CHANNEL_DATA_BYTES,
    MAX_TIMESTAMP_SKEW_SECS,
};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ClientFrame::ClientEvent(event)) = ClientFrame::parse(text, &limits) {
            assert!(event.data.len() <= limits.max_data_bytes);
        }
        let _ = ConnectParams::from_query(text);
        let _ = PresenceMember::from_channel_data(text, MAX_CHANNEL_DATA_BYTES);
        let (query, body) = text.split_once('\n').unwrap_or((text, ""));
        let credentials = Credentials::new("key", b"secret-secret");
        let request = SignedRequest {
            method: "POST",
            path: "/apps/1/events",
            query,
            body: body.as_bytes(),
        };
        let _ = verify_request(&request, &credentials, 1_700_000_000, MAX_TIMESTAMP_SKEW_SECS);
    }
    let event_limits = EventLimits::default();
    let _ = parse_trigger(data, &event_limits);
    let _ = parse_batch(data, &event_limits);
});
