//! `request::parse`, the pure function the fuzz target `control_request` exercises.
use control::api::{SavepointForm, SavepointRequest, StopRequest};
use control::request::{parse, Route, BODY_LEN_MAX, ID_LEN_MAX, URL_LEN_MAX};
use proptest::prelude::*;

const J: &str = "a1b2c3";

fn status(method: &str, url: &str, body: &str) -> u16 {
    match parse(method, url, body.as_bytes()) {
        Ok(route) => panic!("{method} {url} parsed as {route:?}"),
        Err(e) => e.status,
    }
}

fn message(method: &str, url: &str, body: &str) -> String {
    parse(method, url, body.as_bytes()).expect_err("an error").message
}

#[test]
fn every_route_parses() {
    // Pins the URL and method of each route, Flink's paths.
    let jid = || J.to_owned();
    assert_eq!(parse("GET", "/jobs/overview", b""), Ok(Route::Overview));
    assert_eq!(parse("GET", "/jobs/a1b2c3", b""), Ok(Route::Job { jid: jid() }));
    assert_eq!(parse("GET", "/jobs/a1b2c3/checkpoints", b""), Ok(Route::Checkpoints { jid: jid() }));
    assert_eq!(
        parse("POST", "/jobs/a1b2c3/savepoints", b""),
        Ok(Route::TriggerSavepoint { jid: jid(), request: SavepointRequest::default() })
    );
    assert_eq!(
        parse("GET", "/jobs/a1b2c3/savepoints/sp-1", b""),
        Ok(Route::SavepointStatus { jid: jid(), request_id: "sp-1".into() })
    );
    assert_eq!(
        parse("POST", "/jobs/a1b2c3/stop", b"{}"),
        Ok(Route::Stop { jid: jid(), request: StopRequest::default() })
    );
    assert_eq!(parse("PATCH", "/jobs/a1b2c3?mode=cancel", b""), Ok(Route::Cancel { jid: jid() }));
    assert_eq!(parse("PATCH", "/jobs/a1b2c3", b""), Ok(Route::Cancel { jid: jid() }), "Flink's default mode");
}

#[test]
fn flinks_v1_prefix_a_trailing_slash_and_a_query_are_accepted() {
    // Pins the URL forms Flink's clients send: /v1/..., a trailing slash, query strings.
    assert_eq!(parse("GET", "/v1/jobs/overview", b""), Ok(Route::Overview));
    assert_eq!(parse("GET", "/jobs/overview/", b""), Ok(Route::Overview));
    assert_eq!(parse("GET", "/jobs/overview?x=1", b""), Ok(Route::Overview));
    assert_eq!(status("GET", "/v1x/jobs/overview", ""), 404);
}

#[test]
fn request_bodies_carry_flinks_fields() {
    // Pins the body field names (target-directory and cancel-job for savepoints,
    // targetDirectory and drain for stop, formatType for both, any case) and defaults.
    let body = br#"{"target-directory": "/sp", "formatType": "NATIVE", "cancel-job": true}"#;
    let want = SavepointRequest { target_directory: Some("/sp".into()), form: SavepointForm::Native, cancel_job: true };
    assert_eq!(
        parse("POST", "/jobs/j/savepoints", body),
        Ok(Route::TriggerSavepoint { jid: "j".into(), request: want })
    );
    let body = br#"{"targetDirectory": "/sp", "formatType": "native", "drain": true}"#;
    let want = StopRequest { target_directory: Some("/sp".into()), form: SavepointForm::Native, drain: true };
    assert_eq!(parse("POST", "/jobs/j/stop", body), Ok(Route::Stop { jid: "j".into(), request: want }));
    let body = br#"{"target-directory": null, "formatType": null, "cancel-job": null}"#;
    let want = SavepointRequest::default();
    assert_eq!(
        parse("POST", "/jobs/j/savepoints", body),
        Ok(Route::TriggerSavepoint { jid: "j".into(), request: want })
    );
    assert_eq!(SavepointRequest::default().form, SavepointForm::Canonical);
}

#[test]
fn a_bad_body_is_400_naming_the_field() {
    // Pins 400 for malformed bodies, each message naming what is wrong.
    let sp = "/jobs/j/savepoints";
    assert!(message("POST", sp, r#"{"formatType": "zip"}"#).contains("\"formatType\""));
    assert!(message("POST", sp, r#"{"target-directory": 5}"#).contains("\"target-directory\""));
    assert!(message("POST", sp, r#"{"target-directory": ""}"#).contains("\"target-directory\""));
    assert!(message("POST", sp, r#"{"cancel-job": "yes"}"#).contains("\"cancel-job\""));
    assert!(message("POST", "/jobs/j/stop", r#"{"drain": 1}"#).contains("\"drain\""));
    // The two requests' directory fields are spelled differently in Flink; a mix-up is named.
    let m = message("POST", sp, r#"{"targetDirectory": "/x"}"#);
    assert!(m.contains("unknown field \"targetDirectory\"") && m.contains("target-directory"), "{m}");
    assert!(message("POST", sp, "{").contains("not valid JSON"));
    assert!(message("POST", sp, "[1]").contains("JSON object"));
    for body in [r#"{"formatType": "zip"}"#, "{", "[1]", r#"{"x": 1}"#] {
        assert_eq!(status("POST", sp, body), 400, "{body}");
    }
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405() {
    // Pins 404 for paths the endpoint does not serve and 405 for a known path's wrong method.
    for url in ["/", "", "jobs/overview", "/jobs", "/jobs/j/vertices", "/jobs/j/savepoints/sp-1/x", "/overview"] {
        assert_eq!(status("GET", url, ""), 404, "{url:?}");
    }
    assert!(message("GET", "/nope", "").contains("/jobs/overview"), "lists what is served");
    for (method, url) in [
        ("POST", "/jobs/overview"),
        ("DELETE", "/jobs/j"),
        ("GET", "/jobs/j/savepoints"),
        ("POST", "/jobs/j/checkpoints"),
        ("GET", "/jobs/j/stop"),
        ("POST", "/jobs/j/savepoints/sp-1"),
        ("get", "/jobs/overview"),
    ] {
        assert_eq!(status(method, url, ""), 405, "{method} {url}");
    }
}

#[test]
fn bad_ids_and_modes_are_400() {
    // Pins the id charset (so ids never need escaping) and the cancel mode.
    assert_eq!(status("GET", "/jobs/a%20b", ""), 400);
    assert_eq!(status("GET", &format!("/jobs/{}", "a".repeat(ID_LEN_MAX + 1)), ""), 400);
    assert!(parse("GET", &format!("/jobs/{}", "a".repeat(ID_LEN_MAX)), b"").is_ok());
    assert_eq!(status("GET", "/jobs/j/savepoints/sp:1", ""), 400);
    assert!(message("PATCH", "/jobs/j?mode=stop", "").contains("POST /jobs/<jid>/stop"));
}

#[test]
fn oversized_inputs_are_refused_first() {
    // Pins the bounds: a body over 64 KiB is 413 and a URL over 2 KiB is 414, whatever
    // the route; at the limits they pass.
    let big = format!("{{\"target-directory\": \"{}\"}}", "x".repeat(BODY_LEN_MAX));
    assert_eq!(status("POST", "/jobs/j/savepoints", &big), 413);
    assert_eq!(status("GET", "/nope", &big), 413);
    let at_limit = format!("{{\"target-directory\": \"/{}\"}}", "x".repeat(BODY_LEN_MAX - 25));
    assert_eq!(at_limit.len(), BODY_LEN_MAX);
    assert!(parse("POST", "/jobs/j/savepoints", at_limit.as_bytes()).is_ok());
    let long = format!("/jobs/overview?{}", "q".repeat(URL_LEN_MAX));
    assert_eq!(status("GET", &long, ""), 414);
    let at_limit = format!("/jobs/overview?{}", "q".repeat(URL_LEN_MAX - 15));
    assert_eq!(parse("GET", &at_limit, b""), Ok(Route::Overview));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn parse_never_panics_and_answers_a_known_status(
        method in prop_oneof![Just("GET".to_owned()), Just("POST".to_owned()), Just("PATCH".to_owned()), ".{0,8}"],
        url in prop_oneof![
            "/jobs/[a-z0-9%/._-]{0,40}(/(savepoints|stop|checkpoints)(/[a-z0-9-]{0,6})?)?(\\?mode=[a-z]{0,7})?",
            "\\PC{0,64}",
        ],
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "\\{(\"(target-directory|targetDirectory|formatType|cancel-job|drain)\": (null|true|1|\"NATIVE\"|\"/x\"|\\[\\]),? ?){0,4}\\}"
                .prop_map(String::into_bytes),
        ],
    ) {
        // Pins invariant 1 of request.rs (no panic on any input) and that every refusal
        // is one of the statuses the endpoint documents.
        if let Err(e) = parse(&method, &url, &body) {
            prop_assert!([400, 404, 405, 413, 414].contains(&e.status), "{e:?}");
            prop_assert!(!e.message.is_empty());
        }
    }
}
