//! The control endpoint's HTTP server: tiny_http on one named, unpinned std thread
//! (`sluice-control`), never on a shard's core. Requests are served one at a time; the
//! controller answers each at once (a savepoint is started, not waited for).
//!
//! Rules: it binds to loopback unless told otherwise, and off loopback it refuses to
//! start without a token file. A token file must be a regular file readable only by its
//! owner; with one, every request needs `Authorization: Bearer <token>` (401 otherwise).
//! A bad request gets Flink's `{"errors":[..]}` with its status; the job keeps running,
//! and so does the endpoint, even when the controller panics (500).
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Serialize;

use crate::api::{AfterSavepoint, ErrorBody, SavepointRequest, TriggerResponse};
use crate::controller::Controller;
use crate::error::{ApiError, ControlError};
use crate::request::{self, Route, BODY_LEN_MAX};
use crate::token::Token;

/// Flink's REST port.
pub const DEFAULT_PORT: u16 = 8081;

/// Where and how the endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// 127.0.0.1 unless told otherwise; anything off loopback needs `token_file`.
    pub bind: IpAddr,
    /// 0: any free port (read it back with [`Server::port`]).
    pub port: u16,
    /// A file holding the bearer token, readable only by its owner.
    pub token_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { bind: IpAddr::V4(Ipv4Addr::LOCALHOST), port: DEFAULT_PORT, token_file: None }
    }
}

/// A running endpoint; stops on [`Server::shutdown`] or when dropped.
pub struct Server {
    address: SocketAddr,
    running: Option<(Arc<tiny_http::Server>, JoinHandle<()>)>,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("address", &self.address).finish_non_exhaustive()
    }
}

impl Server {
    /// Checks the configuration, binds, and starts the `sluice-control` thread. Threads
    /// inherit their creator's CPU affinity: call this from an unpinned thread.
    pub fn start(cfg: ServerConfig, controller: Arc<dyn Controller>) -> Result<Server, ControlError> {
        let token = match &cfg.token_file {
            Some(path) => Some(Token::read(path)?),
            None if !cfg.bind.is_loopback() => {
                return Err(ControlError::Config(format!(
                    "refusing to listen on {} without a token: off loopback the endpoint needs a token file \
                     (readable only by its owner) to check every request against",
                    cfg.bind
                )))
            }
            None => None,
        };
        let wanted = SocketAddr::new(cfg.bind, cfg.port);
        let http = tiny_http::Server::http(wanted)
            .map_err(|e| ControlError::Bind { address: wanted.to_string(), message: e.to_string() })?;
        let address = http.server_addr().to_ip().unwrap_or(wanted);
        let http = Arc::new(http);
        let stopping = Arc::new(AtomicBool::new(false));
        let (thread_http, thread_stopping) = (Arc::clone(&http), Arc::clone(&stopping));
        let handle = std::thread::Builder::new()
            .name("sluice-control".into())
            .spawn(move || serve(&thread_http, &thread_stopping, controller.as_ref(), token.as_ref()))
            .map_err(|e| ControlError::io("cannot start the sluice-control thread", e))?;
        tracing::info!(%address, token = cfg.token_file.is_some(), "control endpoint listening");
        Ok(Server { address, running: Some((http, handle)), stopping })
    }

    /// The port bound (the one asked for, or the one chosen for port 0).
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address a client on this machine connects to: the bound one, or loopback
    /// when bound to every address.
    pub fn local_address(&self) -> SocketAddr {
        match self.address.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), self.port()),
            _ => self.address,
        }
    }

    /// Stops the thread and closes the listening socket.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some((http, handle)) = self.running.take() {
            self.stopping.store(true, Ordering::SeqCst);
            http.unblock();
            if handle.join().is_err() {
                tracing::warn!("the sluice-control thread panicked");
            }
            // The last reference: dropping it closes the listening socket.
            drop(http);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(http: &tiny_http::Server, stopping: &AtomicBool, controller: &dyn Controller, token: Option<&Token>) {
    loop {
        let mut req = match http.recv() {
            Ok(req) => req,
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                tracing::warn!(error = %e, "control endpoint: accepting a connection failed");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let (status, body) = match answer(&mut req, controller, token) {
            Ok(answer) => answer,
            Err(e) => (e.status, to_json(&ErrorBody { errors: vec![e.message] })),
        };
        tracing::debug!(method = %req.method(), url = req.url(), status, "control request");
        let mut response = tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_chunked_threshold(usize::MAX)
            .with_header(header("Content-Type", "application/json"));
        if status == 401 {
            response.add_header(header("WWW-Authenticate", "Bearer"));
        }
        if let Err(e) = req.respond(response) {
            tracing::debug!(error = %e, "control endpoint: the client went away before the answer");
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    #[expect(clippy::expect_used, reason = "constant ASCII header names and values")]
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

/// One request's status and JSON body.
fn answer(
    req: &mut tiny_http::Request,
    controller: &dyn Controller,
    token: Option<&Token>,
) -> Result<(u16, String), ApiError> {
    if let Some(token) = token {
        let given = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str());
        if !token.admits(given) {
            return Err(ApiError::unauthorized(match given {
                None => "this endpoint needs an Authorization: Bearer <token> header (the daemon's token file)",
                Some(_) => "the bearer token is wrong",
            }));
        }
    }
    if req.body_length().is_some_and(|n| n > BODY_LEN_MAX) {
        return Err(ApiError::payload_too_large(format!("the request body is over the limit of {BODY_LEN_MAX} bytes")));
    }
    let mut body = Vec::new();
    req.as_reader()
        .take(BODY_LEN_MAX as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    let route = request::parse(req.method().as_str(), req.url(), &body)?;
    catch_unwind(AssertUnwindSafe(|| dispatch(route, controller)))
        .unwrap_or_else(|_| Err(ApiError::internal("the job's controller panicked; the request was not carried out")))
}

fn dispatch(route: Route, controller: &dyn Controller) -> Result<(u16, String), ApiError> {
    let no_job = |jid: &str| ApiError::not_found(format!("job {jid} not found"));
    match route {
        Route::Overview => Ok((200, to_json(&controller.overview()))),
        Route::Job { jid } => controller.job(&jid).map(|j| (200, to_json(&j))).ok_or_else(|| no_job(&jid)),
        Route::Checkpoints { jid } => {
            controller.checkpoints(&jid).map(|c| (200, to_json(&c))).ok_or_else(|| no_job(&jid))
        }
        Route::TriggerSavepoint { jid, request } => {
            let after = if request.cancel_job { AfterSavepoint::Cancel } else { AfterSavepoint::KeepRunning };
            triggered(controller.trigger_savepoint(&jid, request, after)?)
        }
        Route::Stop { jid, request } => {
            let req =
                SavepointRequest { target_directory: request.target_directory, form: request.form, cancel_job: false };
            triggered(controller.trigger_savepoint(&jid, req, AfterSavepoint::Stop { drain: request.drain })?)
        }
        Route::SavepointStatus { jid, request_id } => controller
            .savepoint_status(&jid, &request_id)
            .map(|op| (200, to_json(&op)))
            .ok_or_else(|| ApiError::not_found(format!("no savepoint request {request_id} for job {jid}"))),
        Route::Cancel { jid } => {
            controller.cancel(&jid)?;
            Ok((202, "{}".to_owned()))
        }
    }
}

/// 202 with the request id, which must be a valid path segment for the client to poll.
fn triggered(request_id: String) -> Result<(u16, String), ApiError> {
    if !request::is_id(&request_id) {
        return Err(ApiError::internal(format!("the controller made an invalid request id {request_id:?}")));
    }
    Ok((202, to_json(&TriggerResponse { request_id })))
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        let message = serde_json::Value::String(format!("cannot encode the answer: {e}"));
        format!("{{\"errors\":[{message}]}}")
    })
}
