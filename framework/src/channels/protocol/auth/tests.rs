//! Known answers below come from Pusher's "auth signatures" worked example (key
//! `278d425bdf160c739803`, secret `7ad3773142a6692b25b8`, socket `1234.1234`) and were
//! recomputed independently with Python's `hmac`/`hashlib`.

use serde_json::json;

use super::*;

const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const PRIVATE_SIG: &str = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
const PRESENCE_DATA: &str = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
const PRESENCE_SIG: &str = "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";

fn creds() -> Credentials {
    Credentials::new(KEY, SECRET)
}

fn socket() -> SocketId {
    SocketId::parse("1234.1234").unwrap()
}

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

#[test]
fn private_channel_known_answer() {
    let answer = creds().authorize_channel(&socket(), &channel("private-foobar"));
    assert_eq!(answer.auth, format!("{KEY}:{PRIVATE_SIG}"));
    assert_eq!(answer.channel_data, None);
    assert_eq!(
        serde_json::to_string(&answer).unwrap(),
        format!(r#"{{"auth":"{KEY}:{PRIVATE_SIG}"}}"#)
    );
}

#[test]
fn encrypted_channel_known_answer() {
    // python: hmac.new(secret, b"1234.1234:private-encrypted-foobar", sha256).hexdigest()
    let answer = creds().authorize_channel(&socket(), &channel("private-encrypted-foobar"));
    assert_eq!(
        answer.auth,
        format!("{KEY}:e6a18892d037c5d5e76a2265df4f086ffc38631605530dfd214aa5bff495f533")
    );
}

#[test]
fn presence_channel_known_answer_and_json_shape() {
    // python: hmac over '1234.1234:presence-foobar:{"user_id":"10","user_info":{"name":"Mr. Channels"}}'
    let member = PresenceMember::new("10", Some(json!({"name": "Mr. Channels"})));
    let answer = creds().authorize_presence(&socket(), &channel("presence-foobar"), &member);
    let data = r#"{"user_id":"10","user_info":{"name":"Mr. Channels"}}"#;
    assert_eq!(answer.channel_data.as_deref(), Some(data));
    assert_eq!(
        answer.auth,
        format!("{KEY}:4c6d8fc42a207ba96a0779844171b0bb819d96ffceef9609f5cce596ab17a800")
    );
    let body: Value = serde_json::to_value(&answer).unwrap();
    assert_eq!(body, json!({"auth": answer.auth, "channel_data": data}));
}

#[test]
fn verifies_the_documented_private_signature() {
    let auth = format!("{KEY}:{PRIVATE_SIG}");
    let ok = creds().verify_subscription(&socket(), &channel("private-foobar"), Some(&auth), None);
    assert_eq!(ok, Ok(None));
    // Upper-case hex is the same signature.
    let upper = format!("{KEY}:{}", PRIVATE_SIG.to_uppercase());
    let ok = creds().verify_subscription(&socket(), &channel("private-foobar"), Some(&upper), None);
    assert_eq!(ok, Ok(None));
}

#[test]
fn verifies_the_documented_presence_signature_and_returns_the_member() {
    let auth = format!("{KEY}:{PRESENCE_SIG}");
    let member = creds()
        .verify_subscription(
            &socket(),
            &channel("presence-foobar"),
            Some(&auth),
            Some(PRESENCE_DATA),
        )
        .unwrap()
        .unwrap();
    assert_eq!(member.user_id, "10");
    assert_eq!(member.user_info, Some(json!({"name": "Mr. Channels"})));
}

#[test]
fn signature_is_bound_to_socket_channel_and_data() {
    let auth = format!("{KEY}:{PRIVATE_SIG}");
    let other_socket = SocketId::parse("1234.1235").unwrap();
    let c = creds();
    let bad = Err(AuthError::InvalidSignature);
    assert_eq!(
        c.verify_subscription(&other_socket, &channel("private-foobar"), Some(&auth), None),
        bad
    );
    assert_eq!(
        c.verify_subscription(&socket(), &channel("private-foobaz"), Some(&auth), None),
        bad
    );
    let auth = format!("{KEY}:{PRESENCE_SIG}");
    let tampered = PRESENCE_DATA.replace("10", "11");
    let presence = channel("presence-foobar");
    assert_eq!(
        c.verify_subscription(&socket(), &presence, Some(&auth), Some(&tampered)),
        bad
    );
}

#[test]
fn private_channel_with_extra_channel_data_signs_it_too() {
    // python: hmac over '1234.1234:private-foobar:{"user_id":"1"}'
    let auth = format!("{KEY}:dfaa2efdf7f1d9341eda3dd4402578bade68221dd3869a5ec8cd9bd633a81a84");
    let data = r#"{"user_id":"1"}"#;
    let c = creds();
    let private = channel("private-foobar");
    assert_eq!(
        c.verify_subscription(&socket(), &private, Some(&auth), Some(data)),
        Ok(None)
    );
    // The plain private signature does not cover the extra data.
    let plain = format!("{KEY}:{PRIVATE_SIG}");
    let err = c.verify_subscription(&socket(), &private, Some(&plain), Some(data));
    assert_eq!(err, Err(AuthError::InvalidSignature));
}

#[test]
fn public_channels_ignore_auth() {
    let c = creds();
    assert_eq!(
        c.verify_subscription(&socket(), &channel("news"), None, None),
        Ok(None)
    );
    assert_eq!(
        c.verify_subscription(&socket(), &channel("news"), Some("junk"), Some("{")),
        Ok(None)
    );
}

#[test]
fn every_subscription_error_path() {
    let c = creds();
    let s = socket();
    let private = channel("private-foobar");
    let presence = channel("presence-foobar");
    assert_eq!(
        c.verify_subscription(&s, &private, None, None),
        Err(AuthError::MissingAuth)
    );
    assert_eq!(
        c.verify_subscription(&s, &private, Some(PRIVATE_SIG), None),
        Err(AuthError::MalformedAuth)
    );
    let wrong_key = format!("otherkey:{PRIVATE_SIG}");
    assert_eq!(
        c.verify_subscription(&s, &private, Some(&wrong_key), None),
        Err(AuthError::WrongKey)
    );
    for sig in [
        "",
        "zz",
        "abc",
        &PRIVATE_SIG[..62],
        &format!("{PRIVATE_SIG}00"),
    ] {
        let auth = format!("{KEY}:{sig}");
        assert_eq!(
            c.verify_subscription(&s, &private, Some(&auth), None),
            Err(AuthError::InvalidSignature)
        );
    }
    let auth = format!("{KEY}:{PRESENCE_SIG}");
    assert_eq!(
        c.verify_subscription(&s, &presence, Some(&auth), None),
        Err(AuthError::MissingChannelData)
    );
    // A correctly signed but invalid channel_data is still refused.
    let data = r#"{"user_info":{}}"#;
    let signed = format!(
        "{KEY}:{}",
        c.sign(&[b"1234.1234:presence-foobar:", data.as_bytes()])
    );
    assert_eq!(
        c.verify_subscription(&s, &presence, Some(&signed), Some(data)),
        Err(AuthError::ChannelData(ChannelDataError::MissingUserId))
    );
}

#[test]
fn channel_data_parsing() {
    let parse = |s: &str| PresenceMember::from_channel_data(s, MAX_CHANNEL_DATA_BYTES);
    assert_eq!(
        parse(r#"{"user_id":"abc"}"#),
        Ok(PresenceMember::new("abc", None))
    );
    assert_eq!(
        parse(r#"{"user_id":42,"user_info":null}"#),
        Ok(PresenceMember::new("42", None))
    );
    assert_eq!(parse(r#"{"user_id":-3}"#).unwrap().user_id, "-3");
    assert_eq!(
        parse(r#"{"user_id":"u","user_info":["x",1]}"#)
            .unwrap()
            .user_info,
        Some(json!(["x", 1]))
    );
    assert_eq!(parse("[]"), Err(ChannelDataError::NotAnObject));
    assert_eq!(parse("{"), Err(ChannelDataError::NotAnObject));
    assert_eq!(
        parse(r#"{"user_info":{}}"#),
        Err(ChannelDataError::MissingUserId)
    );
    assert_eq!(
        parse(r#"{"user_id":null}"#),
        Err(ChannelDataError::MissingUserId)
    );
    for bad in [
        r#"{"user_id":""}"#,
        r#"{"user_id":1.5}"#,
        r#"{"user_id":true}"#,
        r#"{"user_id":{}}"#,
    ] {
        assert_eq!(parse(bad), Err(ChannelDataError::InvalidUserId), "{bad}");
    }
    let long_id = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(MAX_USER_ID_LEN + 1));
    assert_eq!(parse(&long_id), Err(ChannelDataError::InvalidUserId));
    let max_id = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(MAX_USER_ID_LEN));
    assert!(parse(&max_id).is_ok());
    let big = format!(r#"{{"user_id":"1","user_info":"{}"}}"#, "x".repeat(1024));
    assert_eq!(
        parse(&big),
        Err(ChannelDataError::TooLarge {
            len: big.len(),
            max: 1024
        })
    );
    assert!(PresenceMember::from_channel_data(&big, 4096).is_ok());
}

#[test]
fn channel_data_round_trip() {
    let member = PresenceMember::new("7", Some(json!({"name": "Ana \"A\"", "n": 1})));
    let data = member.to_channel_data();
    assert_eq!(
        data,
        r#"{"user_id":"7","user_info":{"n":1,"name":"Ana \"A\""}}"#
    );
    assert_eq!(PresenceMember::from_channel_data(&data, 1024), Ok(member));
    assert_eq!(
        PresenceMember::new("x", None).to_channel_data(),
        r#"{"user_id":"x"}"#
    );
}

#[test]
fn user_signin_known_answer_and_verification() {
    // python: hmac over '1234.1234::user::{"id":"12345"}'
    let user_data = r#"{"id":"12345"}"#;
    let auth = creds().authenticate_user(&socket(), user_data);
    assert_eq!(
        auth,
        format!("{KEY}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba")
    );
    assert_eq!(
        creds().verify_signin(&socket(), &auth, user_data),
        Ok("12345".to_owned())
    );
    let other = r#"{"id":"12346"}"#;
    assert_eq!(
        creds().verify_signin(&socket(), &auth, other),
        Err(AuthError::InvalidSignature)
    );
    assert_eq!(
        creds().verify_signin(&socket(), "nocolon", user_data),
        Err(AuthError::MalformedAuth)
    );
    for bad in [r#"{"id":5}"#, r#"{"id":""}"#, r#"{"name":"x"}"#, "[]", "{"] {
        let auth = creds().authenticate_user(&socket(), bad);
        assert_eq!(
            creds().verify_signin(&socket(), &auth, bad),
            Err(AuthError::InvalidUserData),
            "{bad}"
        );
    }
}

#[test]
fn encryption_shared_secret_known_answer() {
    // python: hashlib.sha256(b"private-encrypted-foobar" + bytes(range(32))).hexdigest()
    let master: Vec<u8> = (0u8..32).collect();
    let secret = encryption_shared_secret(&channel("private-encrypted-foobar"), &master);
    assert_eq!(
        hex_encode(&secret),
        "83702ee9267e50253e20c7c5b05bdad2babe1a2e2dcd21d1e9609c5996d2f6c6"
    );
}

#[test]
fn hex_helpers() {
    assert_eq!(hex_encode(&[0x00, 0xab, 0xff]), "00abff");
    assert_eq!(hex_decode("00ABff"), Some(vec![0x00, 0xab, 0xff]));
    assert_eq!(hex_decode(""), Some(vec![]));
    assert_eq!(hex_decode("abc"), None);
    assert_eq!(hex_decode("zz"), None);
    assert_eq!(hex_decode("+1"), None);
}

#[test]
fn debug_redacts_the_secret() {
    let shown = format!("{:?}", creds());
    assert!(shown.contains(KEY));
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn refused_subscription_becomes_a_subscription_error_frame() {
    let frame = AuthError::InvalidSignature.subscription_error_frame(&channel("private-foobar"));
    assert_eq!(
        std::str::from_utf8(frame.as_bytes()).unwrap(),
        r#"{"event":"pusher:subscription_error","channel":"private-foobar","data":"{\"type\":\"AuthError\",\"error\":\"invalid signature\",\"status\":401}"}"#
    );
}
