use serde_json::json;

use super::*;

fn text(frame: &Frame) -> &str {
    std::str::from_utf8(frame.as_bytes()).unwrap()
}

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

/// Decodes like pusher-js's `decodeMessage`: parse the frame, then try to parse a string
/// `data` as JSON, keeping the string when it is not JSON.
fn decode_like_pusher_js(frame: &Frame) -> Value {
    let mut message: Value = serde_json::from_slice(frame.as_bytes()).unwrap();
    if let Some(Value::String(data)) = message.get("data") {
        if let Ok(parsed) = serde_json::from_str::<Value>(data) {
            message["data"] = parsed;
        }
    }
    message
}

#[test]
fn connection_established_double_encodes_data() {
    let frame = Frame::connection_established(&SocketId::from_parts(123, 456), 120);
    assert_eq!(
        text(&frame),
        r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#
    );
    assert_eq!(
        decode_like_pusher_js(&frame)["data"],
        json!({"socket_id": "123.456", "activity_timeout": 120})
    );
    let zero = Frame::connection_established(&SocketId::from_parts(1, 2), 0);
    assert_eq!(decode_like_pusher_js(&zero)["data"]["activity_timeout"], 1);
}

#[test]
fn errors_with_and_without_code() {
    assert_eq!(
        text(&Frame::error(
            "Connection is unauthorized",
            Some(ErrorCode::Unauthorized)
        )),
        r#"{"event":"pusher:error","data":"{\"message\":\"Connection is unauthorized\",\"code\":4009}"}"#
    );
    let frame = Frame::error("bad \"frame\"", None);
    assert_eq!(
        decode_like_pusher_js(&frame)["data"],
        json!({"message": "bad \"frame\"", "code": null})
    );
}

#[test]
fn error_from_code() {
    assert_eq!(
        text(&Frame::error_code(ErrorCode::ClientEventRateLimit)),
        r#"{"event":"pusher:error","data":"{\"message\":\"Client event rejected due to rate limit\",\"code\":4301}"}"#
    );
}

#[test]
fn ping_and_pong() {
    assert_eq!(
        text(&Frame::ping()),
        r#"{"event":"pusher:ping","data":"{}"}"#
    );
    assert_eq!(
        text(&Frame::pong()),
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}

#[test]
fn subscription_succeeded_for_non_presence() {
    assert_eq!(
        text(&Frame::subscription_succeeded(&channel("private-orders.1"))),
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-orders.1","data":"{}"}"#
    );
}

#[test]
fn presence_subscription_succeeded_lists_unique_members() {
    let members = [
        PresenceMember::new("1", Some(json!({"name": "Ana"}))),
        PresenceMember::new("2", None),
        PresenceMember::new("1", Some(json!({"name": "Ana (second tab)"}))),
    ];
    let frame = Frame::presence_subscription_succeeded(&channel("presence-room"), &members);
    assert_eq!(
        text(&frame),
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"count\":2,\"hash\":{\"1\":{\"name\":\"Ana\"},\"2\":null},\"ids\":[\"1\",\"2\"]}}"}"#
    );
    let decoded = decode_like_pusher_js(&frame);
    assert_eq!(decoded["data"]["presence"]["ids"], json!(["1", "2"]));
    assert_eq!(decoded["data"]["presence"]["count"], 2);
    let empty = Frame::presence_subscription_succeeded(&channel("presence-room"), []);
    assert_eq!(
        decode_like_pusher_js(&empty)["data"],
        json!({"presence": {"count": 0, "ids": [], "hash": {}}})
    );
}

#[test]
fn member_added_and_removed() {
    let member = PresenceMember::new("7", Some(json!({"name": "Ana"})));
    assert_eq!(
        text(&Frame::member_added(&channel("presence-room"), &member)),
        r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"7\",\"user_info\":{\"name\":\"Ana\"}}"}"#
    );
    assert_eq!(
        text(&Frame::member_removed(&channel("presence-room"), "7")),
        r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"7\"}"}"#
    );
}

#[test]
fn subscription_error_has_the_shape_pusher_js_emits() {
    let frame =
        Frame::subscription_error(&channel("private-a"), "AuthError", "invalid signature", 401);
    assert_eq!(
        text(&frame),
        r#"{"event":"pusher:subscription_error","channel":"private-a","data":"{\"type\":\"AuthError\",\"error\":\"invalid signature\",\"status\":401}"}"#
    );
}

#[test]
fn subscription_count_and_signin_success() {
    assert_eq!(
        text(&Frame::subscription_count(&channel("news"), 3)),
        r#"{"event":"pusher_internal:subscription_count","channel":"news","data":"{\"subscription_count\":3}"}"#
    );
    assert_eq!(
        text(&Frame::signin_success(r#"{"id":"1"}"#)),
        r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"1\\\"}\"}"}"#
    );
}

#[test]
fn published_event_sends_the_publishers_string_verbatim() {
    let frame = Frame::event("order.shipped", &channel("private-orders.1"), r#"{"id":5}"#);
    assert_eq!(
        text(&frame),
        r#"{"event":"order.shipped","channel":"private-orders.1","data":"{\"id\":5}"}"#
    );
    // Laravel event class names contain backslashes; non-JSON data stays a plain string.
    let frame = Frame::event("App\\Events\\Ping", &channel("news"), "hello");
    assert_eq!(
        text(&frame),
        r#"{"event":"App\\Events\\Ping","channel":"news","data":"hello"}"#
    );
    assert_eq!(decode_like_pusher_js(&frame)["data"], "hello");
}

#[test]
fn client_event_carries_user_id_on_presence_channels() {
    let event = ClientEvent {
        event: "client-typing".into(),
        channel: channel("presence-room"),
        data: r#"{"name":"Ana"}"#.into(),
    };
    assert_eq!(
        text(&Frame::client_event(&event, Some("7"))),
        r#"{"event":"client-typing","channel":"presence-room","data":"{\"name\":\"Ana\"}","user_id":"7"}"#
    );
    assert_eq!(
        text(&Frame::client_event(&event, None)),
        r#"{"event":"client-typing","channel":"presence-room","data":"{\"name\":\"Ana\"}"}"#
    );
}

#[test]
fn one_serialization_is_shared_between_sockets() {
    let frame = Frame::event("e", &channel("news"), "x");
    let for_socket_a = frame.clone().into_bytes();
    let for_socket_b: Bytes = frame.clone().into();
    // Same allocation, not copies.
    assert_eq!(for_socket_a.as_ptr(), for_socket_b.as_ptr());
    assert_eq!(for_socket_a.as_ptr(), frame.as_bytes().as_ptr());
}

#[test]
fn json_escaping_round_trips_through_serde_json() {
    let nasty = "quote\" backslash\\ nl\n cr\r tab\t bell\u{7} nul\u{0} esc\u{1b} bs\u{8} ff\u{c} del\u{7f} é 🦀 \u{2028}";
    let mut out = String::new();
    push_json_str(&mut out, nasty);
    assert_eq!(serde_json::from_str::<String>(&out).unwrap(), nasty);
    assert!(out.contains("\\u0007") && out.contains("\\u0000") && out.contains("\\b"));
    let mut empty = String::new();
    push_json_str(&mut empty, "");
    assert_eq!(empty, "\"\"");
    // The whole frame stays valid JSON with hostile data.
    let frame = Frame::event("e\"v", &channel("news"), nasty);
    assert_eq!(decode_like_pusher_js(&frame)["data"], nasty);
}
