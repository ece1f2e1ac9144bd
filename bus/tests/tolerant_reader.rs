//! Readers tolerate what they do not know: an error reply with a code this
//! build has no name for is still an error (with its code), and a heartbeat
//! says what its agent serves, or, without `serves`, is an older SDP agent.

use sdp_bus::*;

fn reply(json: &str) -> Reply<DeployAccepted> {
    decode(json.as_bytes()).expect("an error reply decodes")
}

#[test]
fn an_unknown_error_code_is_an_error_with_that_code() {
    let error = reply(r#"{"v":1,"error":{"code":"quota_exceeded","message":"no room"}}"#)
        .into_result()
        .expect_err("an error");
    assert_eq!(error.code, RpcErrorCode::Other("quota_exceeded".into()));
    assert_eq!(error.message, "no room");
    assert_eq!(error.to_string(), "quota_exceeded: no room");
    // Written back as it came, so a relay loses nothing.
    let wire: serde_json::Value =
        serde_json::from_slice(&encode(&Reply::<DeployAccepted>::err(error))).expect("JSON");
    assert_eq!(wire["error"]["code"], "quota_exceeded");
}

#[test]
fn unknown_method_is_a_known_code() {
    let error =
        reply(r#"{"v":1,"error":{"code":"unknown_method","message":"not served: deploy"}}"#)
            .into_result()
            .expect_err("an error");
    assert_eq!(error.code, RpcErrorCode::UnknownMethod);
    for code in [
        RpcErrorCode::Unauthorized,
        RpcErrorCode::BadRequest,
        RpcErrorCode::Unavailable,
        RpcErrorCode::Internal,
        RpcErrorCode::UnknownMethod,
    ] {
        let round: RpcErrorCode = String::from(code.clone()).into();
        assert_eq!(round, code, "{code} reads back as itself");
    }
}

#[test]
fn an_error_without_a_message_or_with_extra_fields_still_decodes() {
    let error = reply(r#"{"v":1,"error":{"code":"internal","retry_after":3}}"#)
        .into_result()
        .expect_err("an error");
    assert_eq!(error.code, RpcErrorCode::Internal);
    assert_eq!(error.message, "");
}

#[test]
fn an_error_whose_code_is_not_a_string_is_malformed() {
    let bad: Result<Reply<DeployAccepted>, _> =
        decode(br#"{"v":1,"error":{"code":7,"message":"x"}}"#);
    assert!(matches!(bad, Err(CodecError::Schema(_))), "{bad:?}");
}

fn heartbeat(serves: Option<&str>) -> Heartbeat {
    let serves = serves.map_or(String::new(), |s| format!(r#","serves":{s}"#));
    let json = format!(
        r#"{{"v":1,"agent_id":"static-1","kind":"static","host":"h","version":"0.0.1","running":[],"missing_images":[],"capacity":1{serves}}}"#
    );
    decode(json.as_bytes()).expect("a heartbeat")
}

#[test]
fn a_heartbeat_says_what_its_agent_serves() {
    let minimal = heartbeat(Some("[]"));
    for method in SERVES_BEFORE_ADVERTISING {
        assert!(!minimal.serves(method), "{method}");
    }
    let some = heartbeat(Some(r#"["container_logs","something_new"]"#));
    assert!(some.serves(subject::CONTAINER_LOGS));
    assert!(some.serves("something_new"));
    assert!(!some.serves(subject::DEPLOY));
}

#[test]
fn a_heartbeat_without_serves_is_an_sdp_agent_from_before_the_field() {
    let old = heartbeat(None);
    assert_eq!(old.serves, None);
    for method in [
        subject::DEPLOY,
        subject::RECONCILE,
        subject::TEARDOWN,
        subject::CONTAINER_LOGS,
        subject::PROBE,
        subject::BRANCH_STATUS,
    ] {
        assert!(old.serves(method), "{method}");
    }
    assert!(!old.serves("something_new"));
}
