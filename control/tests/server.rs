//! The endpoint end to end: a real server on a free loopback port, a fake job behind it,
//! and the crate's own client in front of it.
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{raw, FakeJob, JID};
use control::api::{AfterSavepoint, JobState, SavepointForm, SavepointRequest, StopRequest};
use control::discovery::Endpoint;
use control::{Client, ControlError, Server, ServerConfig};

fn start(token_file: Option<std::path::PathBuf>) -> (Server, Arc<FakeJob>) {
    let job = Arc::new(FakeJob::default());
    let cfg = ServerConfig { port: 0, token_file, ..ServerConfig::default() };
    let server = Server::start(cfg, job.clone()).expect("the endpoint starts");
    (server, job)
}

fn client(server: &Server, token_file: Option<std::path::PathBuf>) -> Client {
    let endpoint = Endpoint { token_file, jid: JID.into(), ..Endpoint::at(&server.local_address().to_string()) };
    Client::new(endpoint).expect("client")
}

fn token_file(dir: &std::path::Path, token: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn http_status(r: Result<impl std::fmt::Debug, ControlError>) -> (u16, String) {
    match r {
        Err(ControlError::Http { status, message, .. }) => (status, message),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[test]
fn every_route_end_to_end_through_the_client() {
    // Pins each route's wiring: the client's call reaches the right Controller method with
    // the request's fields, and the answer comes back typed.
    let (server, job) = start(None);
    let c = client(&server, None);
    let overview = c.overview().unwrap();
    assert_eq!(overview.jobs, vec![common::overview()]);
    assert_eq!(c.job(JID).unwrap(), common::detail());
    assert_eq!(c.checkpoints(JID).unwrap(), common::stats());

    let req = SavepointRequest {
        target_directory: Some("/nonexistent/sp".into()),
        form: SavepointForm::Native,
        cancel_job: false,
    };
    let rid = c.trigger_savepoint(JID, &req).unwrap();
    assert_eq!(rid, "sp-1");
    assert!(c.savepoint_status(JID, &rid).unwrap().outcome().is_none(), "in progress");
    job.complete(&rid, "/nonexistent/sp/sp-1");
    let mut waits = 0;
    let location = c.wait_savepoint(JID, &rid, Duration::from_secs(5), &mut |_| waits += 1).unwrap();
    assert_eq!((location.as_str(), waits), ("/nonexistent/sp/sp-1", 0));

    let stop = StopRequest { target_directory: None, form: SavepointForm::Canonical, drain: true };
    let rid = c.stop(JID, &stop).unwrap();
    job.fail(&rid, "disk full");
    let failed = c.wait_savepoint(JID, &rid, Duration::from_secs(5), &mut |_| {});
    assert!(
        matches!(failed, Err(ControlError::SavepointFailed { ref message }) if message == "disk full"),
        "{failed:?}"
    );

    c.cancel(JID).unwrap();
    assert!(job.cancelled());
    let calls = job.calls.lock().unwrap();
    assert_eq!(calls.triggered[0], (req, AfterSavepoint::KeepRunning));
    let stop_as_savepoint =
        SavepointRequest { target_directory: None, form: SavepointForm::Canonical, cancel_job: false };
    assert_eq!(calls.triggered[1], (stop_as_savepoint, AfterSavepoint::Stop { drain: true }));
}

#[test]
fn cancel_job_in_a_savepoint_request_becomes_after_cancel() {
    // Pins Flink's `cancel-job: true` being handed to the engine as AfterSavepoint::Cancel.
    let (server, job) = start(None);
    let req = SavepointRequest { cancel_job: true, ..SavepointRequest::default() };
    client(&server, None).trigger_savepoint(JID, &req).unwrap();
    assert_eq!(job.calls.lock().unwrap().triggered[0].1, AfterSavepoint::Cancel);
}

#[test]
fn refusals_are_clear_errors_and_the_job_keeps_running() {
    // Pins the error answers (unknown job 404, savepoint while one runs 409, target exists
    // 409, wrong method 405, bad body 400 naming the field, unknown path 404) carrying
    // the server's message, with the job neither cancelled nor stopped by any of them.
    let (server, job) = start(None);
    let c = client(&server, None);
    let (status, message) = http_status(c.job("nosuchjob"));
    assert_eq!((status, message.as_str()), (404, "job nosuchjob not found"));
    c.trigger_savepoint(JID, &SavepointRequest::default()).unwrap();
    let (status, message) = http_status(c.trigger_savepoint(JID, &SavepointRequest::default()));
    assert_eq!((status, message.as_str()), (409, "a savepoint is already running"));
    job.complete("sp-1", "/x");
    let here = tempfile::tempdir().unwrap();
    let exists = SavepointRequest { target_directory: Some(here.path().into()), ..SavepointRequest::default() };
    let (status, message) = http_status(c.trigger_savepoint(JID, &exists));
    assert_eq!(status, 409);
    assert!(message.contains("exists"), "{message}");
    let (status, message) = http_status(c.savepoint_status(JID, "sp-99"));
    assert_eq!(
        (status, message.as_str()),
        (404, "no savepoint request sp-99 for job a1b2c3d4e5f60718293a4b5c6d7e8f90")
    );

    let addr = server.local_address();
    let (status, body) = raw(addr, "DELETE /jobs/overview HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 405, "{body}");
    let bad = r#"{"formatType": "zip"}"#;
    let post = format!(
        "POST /jobs/{JID}/savepoints HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{bad}",
        bad.len()
    );
    let (status, body) = raw(addr, &post);
    assert_eq!(status, 400);
    assert!(body.starts_with(r#"{"errors":["field \"formatType\""#), "{body}");
    let (status, body) = raw(addr, "GET /jobs/x/vertices HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 404);
    assert!(body.contains("unknown path"), "{body}");

    assert!(!job.cancelled());
    assert_eq!(c.overview().unwrap().jobs[0].state, JobState::Running);
}

#[test]
fn an_oversized_body_is_refused_with_413_before_it_is_read() {
    // Pins the 64 KiB bound on the wire: a Content-Length over it answers 413.
    let (server, _job) = start(None);
    let n = control::request::BODY_LEN_MAX + 1;
    let post = format!("POST /jobs/{JID}/stop HTTP/1.1\r\nConnection: close\r\nContent-Length: {n}\r\n\r\n");
    let (status, _) = raw(server.local_address(), &post);
    assert_eq!(status, 413);
}

#[test]
fn a_panicking_controller_answers_500_and_the_endpoint_keeps_serving() {
    // Pins the catch_unwind around the controller: one panic does not end the endpoint.
    let (server, _job) = start(None);
    let c = client(&server, None);
    let (status, message) = http_status(c.job("panic"));
    assert_eq!(status, 500);
    assert!(message.contains("panicked"), "{message}");
    assert_eq!(c.overview().unwrap().jobs.len(), 1);
}

#[test]
fn with_a_token_file_every_request_needs_the_bearer_token() {
    // Pins the token check: no header 401, a wrong token 401, the right one 200.
    let dir = tempfile::tempdir().unwrap();
    let path = token_file(dir.path(), "s3cret-token", 0o600);
    let (server, _job) = start(Some(path.clone()));
    let (status, message) = http_status(client(&server, None).overview());
    assert_eq!(status, 401);
    assert!(message.contains("Authorization: Bearer"), "{message}");
    let wrong = client(&server, None).with_token(Some(control::Token::new("s3cret-tokem")));
    assert_eq!(http_status(wrong.overview()), (401, "the bearer token is wrong".to_owned()));
    let short = client(&server, None).with_token(Some(control::Token::new("s3cret")));
    assert_eq!(http_status(short.overview()).0, 401);
    assert_eq!(client(&server, Some(path)).overview().unwrap().jobs.len(), 1);
}

#[test]
fn off_loopback_without_a_token_file_it_refuses_to_start() {
    // Pins "binds off loopback only with a token": 0.0.0.0 without a token file is refused.
    let cfg = ServerConfig { bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED), port: 0, token_file: None };
    let r = Server::start(cfg, Arc::new(FakeJob::default()));
    assert!(matches!(&r, Err(ControlError::Config(m)) if m.contains("0.0.0.0") && m.contains("token")), "{r:?}");
}

#[test]
fn off_loopback_with_a_token_file_it_starts_and_checks_the_token() {
    // Pins the other side of the rule: with a token, 0.0.0.0 is allowed, clients on this
    // machine reach it through loopback, and the token is required.
    let dir = tempfile::tempdir().unwrap();
    let path = token_file(dir.path(), "tok", 0o400);
    let cfg = ServerConfig { bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED), port: 0, token_file: Some(path.clone()) };
    let server = Server::start(cfg, Arc::new(FakeJob::default())).unwrap();
    assert_eq!(server.local_address().ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(http_status(client(&server, None).overview()).0, 401);
    assert!(client(&server, Some(path)).overview().is_ok());
}

#[test]
fn a_token_file_readable_by_others_is_refused_with_its_name_and_mode() {
    // Pins the token file's permission rule: mode 0644 refuses to start, naming both.
    let dir = tempfile::tempdir().unwrap();
    let path = token_file(dir.path(), "tok", 0o644);
    let cfg = ServerConfig { port: 0, token_file: Some(path.clone()), ..ServerConfig::default() };
    let r = Server::start(cfg, Arc::new(FakeJob::default()));
    let shown = path.display().to_string();
    assert!(matches!(&r, Err(ControlError::Config(m)) if m.contains(&shown) && m.contains("0644")), "{r:?}");
    let empty = token_file(dir.path(), "  ", 0o600);
    let cfg = ServerConfig { port: 0, token_file: Some(empty), ..ServerConfig::default() };
    assert!(
        matches!(Server::start(cfg, Arc::new(FakeJob::default())), Err(ControlError::Config(m)) if m.contains("empty"))
    );
}

#[test]
fn shutdown_releases_the_port_and_refuses_clients() {
    // Pins shutdown: the thread stops, the port can be bound again, a client gets a
    // Connect error naming the address.
    let (server, _job) = start(None);
    let address = server.local_address();
    let c = client(&server, None);
    assert!(c.overview().is_ok());
    server.shutdown();
    let deadline = Instant::now() + Duration::from_secs(5);
    let rebound = loop {
        match std::net::TcpListener::bind(address) {
            Ok(l) => break l,
            Err(e) if Instant::now() > deadline => panic!("port {} still held after shutdown: {e}", address.port()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    drop(rebound);
    let r = c.overview();
    assert!(matches!(&r, Err(ControlError::Connect { address: a, .. }) if *a == address.to_string()), "{r:?}");
}

#[test]
fn the_default_config_is_loopback_on_flinks_port() {
    // Pins the defaults the issue names: 127.0.0.1:8081, no token.
    let cfg = ServerConfig::default();
    assert_eq!(SocketAddr::new(cfg.bind, cfg.port), "127.0.0.1:8081".parse().unwrap());
    assert_eq!(cfg.token_file, None);
}
