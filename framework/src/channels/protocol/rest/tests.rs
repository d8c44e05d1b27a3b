//! Known answers: Pusher's HTTP API "worked authentication example" (app 3, key
//! `278d425bdf160c739803`, secret `7ad3773142a6692b25b8`, timestamp 1353088179), recomputed
//! independently with Python's `hmac`/`hashlib`, plus two more computed the same way.

use super::*;

const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const TS: u64 = 1_353_088_179;
const BODY: &str = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
const BODY_MD5: &str = "ec365a775a4cd0599faeb73354201b6f";
const SIGNATURE: &str = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

fn creds() -> Credentials {
    Credentials::new(KEY, SECRET)
}

fn documented_query() -> String {
    format!("auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&body_md5={BODY_MD5}&auth_signature={SIGNATURE}")
}

fn verify(
    method: &str,
    path: &str,
    query: &str,
    body: &str,
) -> Result<Vec<(String, String)>, RequestAuthError> {
    let request = SignedRequest {
        method,
        path,
        query,
        body: body.as_bytes(),
    };
    verify_request(&request, &creds(), TS, MAX_TIMESTAMP_SKEW_SECS)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn body_md5_known_answers() {
    assert_eq!(body_md5(BODY.as_bytes()), BODY_MD5);
    assert_eq!(body_md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
}

#[test]
fn sign_request_reproduces_the_documented_example() {
    let query = sign_request(&creds(), "post", "/apps/3/events", &[], BODY.as_bytes(), TS);
    assert_eq!(query, documented_query());
}

#[test]
fn verifies_the_documented_example() {
    let params = verify("POST", "/apps/3/events", &documented_query(), BODY).unwrap();
    assert_eq!(
        params,
        pairs(&[
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", BODY_MD5)
        ])
    );
    // Parameter order in the URL and the case of the method do not matter.
    let shuffled = format!("auth_signature={SIGNATURE}&body_md5={BODY_MD5}&auth_version=1.0&auth_timestamp={TS}&auth_key={KEY}");
    assert!(verify("post", "/apps/3/events", &shuffled, BODY).is_ok());
}

#[test]
fn get_with_extra_parameters_known_answer() {
    // python: hmac over "GET\n/apps/3/channels\nauth_key=…&auth_timestamp=1353088179&auth_version=1.0&filter_by_prefix=presence-&info=user_count"
    let expected = "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291";
    let params = [("info", "user_count"), ("filter_by_prefix", "presence-")];
    let query = sign_request(&creds(), "GET", "/apps/3/channels", &params, b"", TS);
    assert_eq!(
        query,
        format!("auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&filter_by_prefix=presence-&info=user_count&auth_signature={expected}")
    );
    let verified = verify("GET", "/apps/3/channels", &query, "").unwrap();
    assert_eq!(
        verified.last(),
        Some(&("info".to_owned(), "user_count".to_owned()))
    );
}

#[test]
fn values_are_signed_decoded_and_keys_lower_cased() {
    // The docs' example: keys auth_key=foo-like and Name="Something else" sign as
    // "name=Something else". python: hmac over "GET\n/apps/3/channels\nauth_key=…&auth_timestamp=…&auth_version=1.0&name=Something else"
    let sig = "e661e8bf75b3959cbeab2cee466c873b918e39bfd0980693aadf77d4da8ba77c";
    for encoded in ["Something+else", "Something%20else"] {
        let query = format!("Name={encoded}&auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&auth_signature={sig}");
        assert!(
            verify("GET", "/apps/3/channels", &query, "").is_ok(),
            "{encoded}"
        );
    }
    let signed = sign_request(
        &creds(),
        "GET",
        "/apps/3/channels",
        &[("Name", "Something else")],
        b"",
        TS,
    );
    assert_eq!(signed, format!("auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&name=Something%20else&auth_signature={sig}"));
}

#[test]
fn sign_request_ignores_caller_supplied_auth_parameters() {
    let forged = [
        ("auth_key", "evil"),
        ("body_md5", "0"),
        ("auth_signature", "0"),
    ];
    let query = sign_request(
        &creds(),
        "POST",
        "/apps/3/events",
        &forged,
        BODY.as_bytes(),
        TS,
    );
    assert_eq!(query, documented_query());
}

#[test]
fn every_error_path() {
    use RequestAuthError::*;
    let path = "/apps/3/events";
    let q = |s: &str| verify("POST", path, s, BODY);
    let without = |key: &str| {
        documented_query()
            .split('&')
            .filter(|p| !p.starts_with(&format!("{key}=")))
            .collect::<Vec<_>>()
            .join("&")
    };
    assert_eq!(q("a=%zz"), Err(Query(QueryError::BadEscape)));
    assert_eq!(
        q(&format!("{}&AUTH_KEY=x", documented_query())),
        Err(DuplicateParam("auth_key".into()))
    );
    for key in [
        "auth_signature",
        "auth_key",
        "auth_version",
        "auth_timestamp",
        "body_md5",
    ] {
        assert_eq!(q(&without(key)), Err(MissingParam(key)), "{key}");
    }
    assert_eq!(
        q(&documented_query().replace(KEY, "otherkey")),
        Err(WrongKey)
    );
    assert_eq!(
        q(&documented_query().replace("auth_version=1.0", "auth_version=2.0")),
        Err(UnsupportedVersion("2.0".into()))
    );
    assert_eq!(
        q(&documented_query().replace("1353088179", "yesterday")),
        Err(InvalidTimestamp)
    );
    assert_eq!(
        q(&documented_query().replace("1353088179", "-1")),
        Err(InvalidTimestamp)
    );
    assert_eq!(
        verify("POST", path, &documented_query(), r#"{"name":"bar"}"#),
        Err(BodyMd5Mismatch)
    );
    assert_eq!(
        verify("GET", path, &documented_query(), BODY),
        Err(InvalidSignature)
    );
    assert_eq!(
        verify("POST", "/apps/4/events", &documented_query(), BODY),
        Err(InvalidSignature)
    );
    for bad in [
        "",
        "00",
        "not-hex",
        &SIGNATURE[..63],
        &SIGNATURE.replace('d', "e"),
    ] {
        let query = documented_query().replace(SIGNATURE, bad);
        assert_eq!(q(&query), Err(InvalidSignature), "{bad:?}");
    }
    // An extra, unsigned parameter breaks the signature.
    assert_eq!(
        q(&format!("{}&socket_id=1.1", documented_query())),
        Err(InvalidSignature)
    );
    // A present body_md5 must match even for an empty body.
    assert_eq!(
        verify("POST", path, &documented_query(), ""),
        Err(BodyMd5Mismatch)
    );
}

#[test]
fn timestamp_window_is_inclusive_both_ways() {
    let request = SignedRequest {
        method: "POST",
        path: "/apps/3/events",
        query: &documented_query(),
        body: BODY.as_bytes(),
    };
    let at = |now| verify_request(&request, &creds(), now, 600);
    assert!(at(TS + 600).is_ok());
    assert!(at(TS - 600).is_ok());
    assert_eq!(
        at(TS + 601),
        Err(RequestAuthError::StaleTimestamp {
            timestamp: TS,
            now: TS + 601,
            max_skew: 600
        })
    );
    assert!(matches!(
        at(TS - 601),
        Err(RequestAuthError::StaleTimestamp { .. })
    ));
}

#[test]
fn statuses() {
    assert_eq!(RequestAuthError::Query(QueryError::NotUtf8).status(), 400);
    assert_eq!(RequestAuthError::DuplicateParam("a".into()).status(), 400);
    assert_eq!(RequestAuthError::InvalidSignature.status(), 401);
    assert_eq!(RequestAuthError::MissingParam("auth_key").status(), 401);
}

#[test]
fn round_trip_with_an_empty_body() {
    let query = sign_request(
        &creds(),
        "POST",
        "/apps/3/users/7/terminate_connections",
        &[],
        b"",
        TS + 5,
    );
    assert!(!query.contains("body_md5"));
    let request = SignedRequest {
        method: "POST",
        path: "/apps/3/users/7/terminate_connections",
        query: &query,
        body: b"",
    };
    assert!(verify_request(&request, &creds(), TS, 600).is_ok());
}
