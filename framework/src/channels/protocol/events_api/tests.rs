use super::*;

fn trigger(body: &str) -> Result<PublishedEvent, EventsApiError> {
    parse_trigger(body.as_bytes(), &EventLimits::default())
}

fn batch(body: &str) -> Result<Vec<PublishedEvent>, EventsApiError> {
    parse_batch(body.as_bytes(), &EventLimits::default())
}

fn channels(names: &[&str]) -> Vec<ChannelName> {
    names
        .iter()
        .map(|n| ChannelName::new(*n).unwrap())
        .collect()
}

#[test]
fn documented_trigger_body() {
    let event =
        trigger(r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#).unwrap();
    assert_eq!(
        event,
        PublishedEvent {
            name: "foo".into(),
            channels: channels(&["project-3"]),
            data: r#"{"some":"data"}"#.into(),
            socket_id: None,
            info: None,
        }
    );
}

#[test]
fn laravel_style_trigger_with_socket_id_and_single_channel() {
    // pusher-http-php as used by Laravel's broadcaster, after toOthers().
    let body = r#"{"name":"App\\Events\\OrderShipped","data":"{\"order\":{\"id\":5}}","channel":"private-orders.1","socket_id":"123.456","info":"subscription_count"}"#;
    let event = trigger(body).unwrap();
    assert_eq!(event.name, "App\\Events\\OrderShipped");
    assert_eq!(event.channels, channels(&["private-orders.1"]));
    assert_eq!(event.data, r#"{"order":{"id":5}}"#);
    assert_eq!(event.socket_id, Some(SocketId::parse("123.456").unwrap()));
    assert_eq!(event.info.as_deref(), Some("subscription_count"));
}

#[test]
fn object_data_is_forwarded_as_its_json_text() {
    let event = trigger(r#"{"name":"e","channel":"a","data":{"x": [1, 2]}}"#).unwrap();
    assert_eq!(event.data, r#"{"x": [1, 2]}"#);
    let event = trigger(r#"{"name":"e","channel":"a","data":"plain text"}"#).unwrap();
    assert_eq!(event.data, "plain text");
    let event = trigger(r#"{"name":"e","channel":"a","data":7,"socket_id":null}"#).unwrap();
    assert_eq!((event.data.as_str(), event.socket_id), ("7", None));
}

#[test]
fn duplicate_channels_are_delivered_once() {
    let event = trigger(r#"{"name":"e","channels":["a","b","a"],"data":""}"#).unwrap();
    assert_eq!(event.channels, channels(&["a", "b"]));
}

#[test]
fn trigger_limits() {
    let data = "x".repeat(10_240);
    assert!(trigger(&format!(r#"{{"name":"e","channel":"a","data":"{data}"}}"#)).is_ok());
    let err = trigger(&format!(r#"{{"name":"e","channel":"a","data":"{data}y"}}"#)).unwrap_err();
    assert_eq!(
        err,
        EventsApiError::DataTooLarge {
            len: 10_241,
            max: 10_240
        }
    );
    assert_eq!(err.status(), 413);

    let hundred: Vec<String> = (0..100).map(|i| format!("\"c{i}\"")).collect();
    assert!(trigger(&format!(
        r#"{{"name":"e","channels":[{}],"data":""}}"#,
        hundred.join(",")
    ))
    .is_ok());
    let many: Vec<String> = (0..101).map(|i| format!("\"c{i}\"")).collect();
    let err = trigger(&format!(
        r#"{{"name":"e","channels":[{}],"data":""}}"#,
        many.join(",")
    ))
    .unwrap_err();
    assert_eq!(
        err,
        EventsApiError::TooManyChannels {
            count: 101,
            max: 100
        }
    );
    assert_eq!(err.status(), 400);

    let name = "n".repeat(200);
    assert!(trigger(&format!(r#"{{"name":"{name}","channel":"a","data":""}}"#)).is_ok());
    let name = "n".repeat(201);
    assert_eq!(
        trigger(&format!(r#"{{"name":"{name}","channel":"a","data":""}}"#)),
        Err(EventsApiError::EventNameTooLong { len: 201 })
    );
}

#[test]
fn every_trigger_error_path() {
    use EventsApiError::*;
    assert!(matches!(trigger("not json"), Err(InvalidJson(_))));
    assert!(matches!(trigger("[]"), Err(InvalidJson(_))));
    assert!(matches!(
        trigger(r#"{"name":1,"channel":"a","data":""}"#),
        Err(InvalidJson(_))
    ));
    assert!(matches!(
        trigger(r#"{"name":"e","channels":"a","data":""}"#),
        Err(InvalidJson(_))
    ));
    assert_eq!(
        trigger(r#"{"channel":"a","data":""}"#),
        Err(MissingField("name"))
    );
    assert_eq!(
        trigger(r#"{"name":"e","data":""}"#),
        Err(MissingField("channels"))
    );
    assert_eq!(
        trigger(r#"{"name":"e","channel":"a"}"#),
        Err(MissingField("data"))
    );
    assert_eq!(
        trigger(r#"{"name":"e","channel":"a","data":null}"#),
        Err(MissingField("data"))
    );
    assert_eq!(
        trigger(r#"{"name":"","channel":"a","data":""}"#),
        Err(EmptyEventName)
    );
    assert_eq!(
        trigger(r#"{"name":"pusher:x","channel":"a","data":""}"#),
        Err(ReservedEventName)
    );
    assert_eq!(
        trigger(r#"{"name":"pusher_internal:member_added","channel":"presence-a","data":""}"#),
        Err(ReservedEventName)
    );
    assert_eq!(
        trigger(r#"{"name":"e","channel":"a","channels":["b"],"data":""}"#),
        Err(ChannelAndChannels)
    );
    assert_eq!(
        trigger(r#"{"name":"e","channels":[],"data":""}"#),
        Err(NoChannels)
    );
    assert_eq!(
        trigger(r#"{"name":"e","channels":["ok","bad name"],"data":""}"#),
        Err(InvalidChannel {
            channel: "bad name".into(),
            error: ChannelNameError::InvalidChar(' ')
        })
    );
    assert_eq!(
        trigger(r#"{"name":"e","channels":["private-encrypted-a","b"],"data":""}"#),
        Err(EncryptedMultiChannel)
    );
    assert!(trigger(r#"{"name":"e","channels":["private-encrypted-a"],"data":""}"#).is_ok());
    assert_eq!(
        trigger(r#"{"name":"e","channel":"a","data":"","socket_id":"abc"}"#),
        Err(InvalidSocketId(SocketIdError("abc".into())))
    );
}

#[test]
fn batch_events() {
    let body = r#"{"batch":[
        {"name":"a","channel":"private-x","data":"{\"n\":1}"},
        {"name":"b","channel":"presence-y","data":"2","socket_id":"1.2"}
    ]}"#;
    let events = batch(body).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].channels, channels(&["private-x"]));
    assert_eq!(events[0].data, r#"{"n":1}"#);
    assert_eq!(events[1].socket_id, Some(SocketId::parse("1.2").unwrap()));
}

#[test]
fn every_batch_error_path() {
    use EventsApiError::*;
    let one = r#"{"name":"e","channel":"a","data":""}"#;
    assert!(matches!(batch("{"), Err(InvalidJson(_))));
    assert_eq!(batch("{}"), Err(MissingField("batch")));
    assert_eq!(batch(r#"{"batch":[]}"#), Err(EmptyBatch));
    let ten = [one; 10].join(",");
    assert_eq!(
        batch(&format!(r#"{{"batch":[{ten}]}}"#)).map(|b| b.len()),
        Ok(10)
    );
    let eleven = [one; 11].join(",");
    assert_eq!(
        batch(&format!(r#"{{"batch":[{eleven}]}}"#)),
        Err(BatchTooLarge { count: 11, max: 10 })
    );
    // Batch events take `channel`, not `channels`.
    let err = batch(&format!(
        r#"{{"batch":[{one},{{"name":"e","channels":["a"],"data":""}}]}}"#
    ))
    .unwrap_err();
    assert_eq!(
        err,
        InBatch {
            index: 1,
            error: Box::new(MissingField("channel"))
        }
    );
    assert_eq!(err.to_string(), "batch event 1: missing field channel");
    assert_eq!(err.status(), 400);
    let big = format!(
        r#"{{"batch":[{{"name":"e","channel":"a","data":"{}"}}]}}"#,
        "x".repeat(10_241)
    );
    let err = batch(&big).unwrap_err();
    assert_eq!(err.status(), 413);
}

#[test]
fn custom_limits() {
    let limits = EventLimits {
        max_data_bytes: 3,
        max_channels: 1,
        max_batch_events: 1,
    };
    assert!(parse_trigger(br#"{"name":"e","channel":"a","data":"abc"}"#, &limits).is_ok());
    assert!(parse_trigger(br#"{"name":"e","channel":"a","data":"abcd"}"#, &limits).is_err());
    assert!(parse_trigger(br#"{"name":"e","channels":["a","b"],"data":""}"#, &limits).is_err());
    let two =
        br#"{"batch":[{"name":"e","channel":"a","data":""},{"name":"e","channel":"a","data":""}]}"#;
    assert_eq!(
        parse_batch(two, &limits),
        Err(EventsApiError::BatchTooLarge { count: 2, max: 1 })
    );
}
