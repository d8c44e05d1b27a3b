//! The frames below are written out exactly as pusher-js 8 serializes them
//! (`JSON.stringify({event, data})`, with `channel` appended for client events).

use super::*;

fn parse(text: &str) -> Result<ClientFrame, ClientFrameError> {
    ClientFrame::parse(text, &FrameLimits::default())
}

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

#[test]
fn pusher_js_public_subscribe_with_empty_auth() {
    let frame = parse(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"orders"}}"#);
    assert_eq!(
        frame,
        Ok(ClientFrame::Subscribe(Subscribe {
            channel: channel("orders"),
            auth: None,
            channel_data: None
        }))
    );
}

#[test]
fn pusher_js_private_subscribe() {
    let text = r#"{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}"#;
    let ClientFrame::Subscribe(sub) = parse(text).unwrap() else {
        panic!("not a subscribe")
    };
    assert_eq!(sub.channel, channel("private-foobar"));
    assert_eq!(
        sub.auth.as_deref(),
        Some(
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        )
    );
    assert_eq!(sub.channel_data, None);
    // And it authorizes against the documented credentials.
    let creds = Credentials::new("278d425bdf160c739803", "7ad3773142a6692b25b8");
    let socket = SocketId::parse("1234.1234").unwrap();
    assert_eq!(sub.authorize(&creds, &socket), Ok(None));
}

#[test]
fn pusher_js_presence_subscribe() {
    let text = r#"{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80","channel_data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}","channel":"presence-foobar"}}"#;
    let ClientFrame::Subscribe(sub) = parse(text).unwrap() else {
        panic!("not a subscribe")
    };
    assert_eq!(
        sub.channel_data.as_deref(),
        Some(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#)
    );
    let creds = Credentials::new("278d425bdf160c739803", "7ad3773142a6692b25b8");
    let member = sub
        .authorize(&creds, &SocketId::parse("1234.1234").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(member.user_id, "10");
}

#[test]
fn double_encoded_subscribe_data_is_accepted() {
    let text =
        r#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-a\",\"auth\":\"k:s\"}"}"#;
    assert_eq!(
        parse(text),
        Ok(ClientFrame::Subscribe(Subscribe {
            channel: channel("private-a"),
            auth: Some("k:s".into()),
            channel_data: None
        }))
    );
}

#[test]
fn unsubscribe_ping_pong() {
    assert_eq!(
        parse(r#"{"event":"pusher:unsubscribe","data":{"channel":"orders"}}"#),
        Ok(ClientFrame::Unsubscribe {
            channel: channel("orders")
        })
    );
    assert_eq!(
        parse(r#"{"event":"pusher:ping","data":{}}"#),
        Ok(ClientFrame::Ping)
    );
    assert_eq!(
        parse(r#"{"event":"pusher:pong","data":{}}"#),
        Ok(ClientFrame::Pong)
    );
    assert_eq!(parse(r#"{"event":"pusher:pong"}"#), Ok(ClientFrame::Pong));
    assert_eq!(
        parse(" {\"event\":\"pusher:ping\"}\n"),
        Ok(ClientFrame::Ping)
    );
}

#[test]
fn signin() {
    let text =
        r#"{"event":"pusher:signin","data":{"auth":"key:sig","user_data":"{\"id\":\"1\"}"}}"#;
    assert_eq!(
        parse(text),
        Ok(ClientFrame::Signin {
            auth: "key:sig".into(),
            user_data: r#"{"id":"1"}"#.into()
        })
    );
    let missing = r#"{"event":"pusher:signin","data":{"auth":"key:sig"}}"#;
    assert_eq!(
        parse(missing),
        Err(ClientFrameError::MissingField("data.user_data"))
    );
    let missing = r#"{"event":"pusher:signin","data":{"user_data":"{}"}}"#;
    assert_eq!(
        parse(missing),
        Err(ClientFrameError::MissingField("data.auth"))
    );
}

#[test]
fn pusher_js_client_event_with_object_data_keeps_the_clients_json() {
    // Laravel Echo's whisper('typing', {name}) goes through channel.trigger('client-typing', …).
    let text =
        r#"{"event":"client-typing","data":{"name":"Ana","at":[1, 2]},"channel":"private-chat.1"}"#;
    assert_eq!(
        parse(text),
        Ok(ClientFrame::ClientEvent(ClientEvent {
            event: "client-typing".into(),
            channel: channel("private-chat.1"),
            data: r#"{"name":"Ana","at":[1, 2]}"#.into(),
        }))
    );
}

#[test]
fn client_event_data_of_other_types() {
    let data_of = |data: &str| {
        let text = format!(r#"{{"event":"client-x","channel":"presence-a","data":{data}}}"#);
        match parse(&text).unwrap() {
            ClientFrame::ClientEvent(e) => e.data,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(data_of(r#""plain \"text\"""#), r#"plain "text""#);
    assert_eq!(data_of(r#""{\"a\":1}""#), r#"{"a":1}"#);
    assert_eq!(data_of("42"), "42");
    assert_eq!(data_of("null"), "null");
    assert_eq!(data_of("[true]"), "[true]");
    // No data at all (trigger without data): forwarded as null.
    let ClientFrame::ClientEvent(e) =
        parse(r#"{"event":"client-x","channel":"private-a"}"#).unwrap()
    else {
        panic!("not a client event")
    };
    assert_eq!(e.data, "null");
}

#[test]
fn client_event_limits() {
    let limits = FrameLimits::default();
    let ok = format!(
        r#"{{"event":"client-x","channel":"private-a","data":"{}"}}"#,
        "a".repeat(10_240)
    );
    assert!(ClientFrame::parse(&ok, &limits).is_ok());
    let big = format!(
        r#"{{"event":"client-x","channel":"private-a","data":"{}"}}"#,
        "a".repeat(10_241)
    );
    assert_eq!(
        ClientFrame::parse(&big, &limits),
        Err(ClientFrameError::DataTooLarge {
            len: 10_241,
            max: 10_240
        })
    );
    let name = format!("client-{}", "e".repeat(194));
    let long = format!(r#"{{"event":"{name}","channel":"private-a","data":{{}}}}"#);
    assert_eq!(
        parse(&long),
        Err(ClientFrameError::EventNameTooLong { len: 201 })
    );
    let name = format!("client-{}", "e".repeat(193));
    assert!(parse(&format!(
        r#"{{"event":"{name}","channel":"private-a","data":{{}}}}"#
    ))
    .is_ok());
}

#[test]
fn oversize_message_is_refused_before_parsing() {
    let limits = FrameLimits {
        max_frame_bytes: 64,
        max_data_bytes: 10,
    };
    let text = format!(
        "{{\"event\":\"pusher:ping\",\"pad\":\"{}\"}}",
        "x".repeat(64)
    );
    assert_eq!(
        ClientFrame::parse(&text, &limits),
        Err(ClientFrameError::TooLarge {
            len: text.len(),
            max: 64
        })
    );
    // Not even JSON, but refused for its size first.
    let junk = "{".repeat(65);
    assert_eq!(
        ClientFrame::parse(&junk, &limits),
        Err(ClientFrameError::TooLarge { len: 65, max: 64 })
    );
}

#[test]
fn not_json_and_malformed() {
    for text in ["", "{", "not json", r#"{"event":"pusher:ping",}"#] {
        assert!(
            matches!(parse(text), Err(ClientFrameError::NotJson(_))),
            "{text:?}"
        );
    }
    for text in [
        "[]",
        r#"["pusher:ping"]"#,
        r#""pusher:ping""#,
        "42",
        r#"{"event":"a","event":"b"}"#,
    ] {
        assert!(
            matches!(parse(text), Err(ClientFrameError::Malformed(_))),
            "{text:?}"
        );
    }
}

#[test]
fn missing_fields() {
    use ClientFrameError::MissingField;
    assert_eq!(parse("{}"), Err(MissingField("event")));
    assert_eq!(parse(r#"{"event":null}"#), Err(MissingField("event")));
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe"}"#),
        Err(MissingField("data"))
    );
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{}}"#),
        Err(MissingField("data.channel"))
    );
    assert_eq!(
        parse(r#"{"event":"pusher:unsubscribe","data":{"channel":null}}"#),
        Err(MissingField("data.channel"))
    );
    assert_eq!(
        parse(r#"{"event":"client-x","data":{}}"#),
        Err(MissingField("channel"))
    );
}

#[test]
fn wrongly_typed_fields() {
    let invalid = |field, expected| Err(ClientFrameError::InvalidField { field, expected });
    assert_eq!(parse(r#"{"event":7}"#), invalid("event", "a string"));
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":[]}"#),
        invalid("data", "an object")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":"nope"}"#),
        invalid("data", "an object")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":"[1]"}"#),
        invalid("data", "an object")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{"channel":1}}"#),
        invalid("data.channel", "a string")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{"channel":"private-a","auth":5}}"#),
        invalid("data.auth", "a string")
    );
    assert_eq!(
        parse(
            r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","channel_data":{"user_id":1}}}"#
        ),
        invalid("data.channel_data", "a string")
    );
    assert_eq!(
        parse(r#"{"event":"client-x","channel":["private-a"]}"#),
        invalid("channel", "a string")
    );
}

#[test]
fn unknown_events() {
    for event in [
        "pusher:bogus",
        "pusher_internal:member_added",
        "my-event",
        "Client-x",
        "client",
    ] {
        let text = format!(r#"{{"event":"{event}","data":{{}}}}"#);
        assert_eq!(
            parse(&text),
            Err(ClientFrameError::UnknownEvent(event.into())),
            "{event}"
        );
    }
    let long = "p".repeat(300);
    let text = format!(r#"{{"event":"{long}"}}"#);
    assert_eq!(
        parse(&text),
        Err(ClientFrameError::UnknownEvent("p".repeat(200)))
    );
}

#[test]
fn invalid_channel_names() {
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{"channel":"bad channel"}}"#),
        Err(ClientFrameError::InvalidChannel(
            ChannelNameError::InvalidChar(' ')
        ))
    );
    assert_eq!(
        parse(r#"{"event":"pusher:unsubscribe","data":{"channel":""}}"#),
        Err(ClientFrameError::InvalidChannel(ChannelNameError::Empty))
    );
    let long = "a".repeat(165);
    assert_eq!(
        parse(&format!(
            r#"{{"event":"client-x","channel":"{long}","data":1}}"#
        )),
        Err(ClientFrameError::InvalidChannel(
            ChannelNameError::TooLong { len: 165 }
        ))
    );
}

#[test]
fn errors_become_pusher_error_frames_with_null_code() {
    let err = parse(r#"{"event":"pusher:bogus"}"#).unwrap_err();
    let frame = err.error_frame();
    let text = std::str::from_utf8(frame.as_bytes()).unwrap();
    assert_eq!(
        text,
        r#"{"event":"pusher:error","data":"{\"message\":\"unsupported event \\\"pusher:bogus\\\"\",\"code\":null}"}"#
    );
}
