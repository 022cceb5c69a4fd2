//! The CLI's client of a daemon's control endpoint: typed calls over [`crate::http`],
//! errors that name the address, and the server's own message for an HTTP error.
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{
    AsyncOperation, CheckpointingStats, ErrorBody, JobDetail, JobsOverview, SavepointRequest, StopRequest,
    TriggerResponse,
};
use crate::discovery::Endpoint;
use crate::error::ControlError;
use crate::http;
use crate::request::is_id;
use crate::token::Token;

/// How often [`Client::wait_savepoint`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A client of one endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    token: Option<Token>,
}

impl Client {
    /// A client of `endpoint`, with the token of its token file when it names one.
    pub fn new(endpoint: Endpoint) -> Result<Client, ControlError> {
        let token = endpoint.token_file.as_deref().map(Token::read).transpose()?;
        Ok(Client { endpoint, token })
    }

    /// Replaces the token (for a token not kept in a file).
    pub fn with_token(self, token: Option<Token>) -> Client {
        Client { token, ..self }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The job id to address: the endpoint's, else the only job the daemon runs.
    pub fn job_id(&self) -> Result<String, ControlError> {
        if !self.endpoint.jid.is_empty() {
            return Ok(self.endpoint.jid.clone());
        }
        let mut jobs = self.overview()?.jobs;
        match jobs.len() {
            1 => Ok(jobs.remove(0).jid),
            n => Err(ControlError::Discovery(format!(
                "the daemon at {} runs {n} jobs; name one by its id",
                self.endpoint.address
            ))),
        }
    }

    pub fn overview(&self) -> Result<JobsOverview, ControlError> {
        self.call("GET", "/jobs/overview".into(), None::<&()>)
    }

    pub fn job(&self, jid: &str) -> Result<JobDetail, ControlError> {
        self.call("GET", format!("/jobs/{}", self.id(jid)?), None::<&()>)
    }

    pub fn checkpoints(&self, jid: &str) -> Result<CheckpointingStats, ControlError> {
        self.call("GET", format!("/jobs/{}/checkpoints", self.id(jid)?), None::<&()>)
    }

    /// Starts a savepoint; returns its request id.
    pub fn trigger_savepoint(&self, jid: &str, req: &SavepointRequest) -> Result<String, ControlError> {
        let r: TriggerResponse = self.call("POST", format!("/jobs/{}/savepoints", self.id(jid)?), Some(req))?;
        Ok(r.request_id)
    }

    /// Starts a stop with savepoint; returns its request id (poll it like a savepoint's).
    pub fn stop(&self, jid: &str, req: &StopRequest) -> Result<String, ControlError> {
        let r: TriggerResponse = self.call("POST", format!("/jobs/{}/stop", self.id(jid)?), Some(req))?;
        Ok(r.request_id)
    }

    /// Cancels the job without a savepoint.
    pub fn cancel(&self, jid: &str) -> Result<(), ControlError> {
        let _: serde_json::Value = self.call("PATCH", format!("/jobs/{}?mode=cancel", self.id(jid)?), None::<&()>)?;
        Ok(())
    }

    pub fn savepoint_status(&self, jid: &str, request_id: &str) -> Result<AsyncOperation, ControlError> {
        let path = format!("/jobs/{}/savepoints/{}", self.id(jid)?, self.id(request_id)?);
        self.call("GET", path, None::<&()>)
    }

    /// Polls a savepoint every [`POLL_INTERVAL`] until it completes (its location) or
    /// fails, or `timeout` passes; `progress` is told the time waited before each wait.
    pub fn wait_savepoint(
        &self,
        jid: &str,
        request_id: &str,
        timeout: Duration,
        progress: &mut dyn FnMut(Duration),
    ) -> Result<String, ControlError> {
        let start = Instant::now();
        loop {
            match self.savepoint_status(jid, request_id)?.outcome() {
                Some(Ok(location)) => return Ok(location.to_owned()),
                Some(Err(message)) => return Err(ControlError::SavepointFailed { message: message.to_owned() }),
                None => {}
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(ControlError::Timeout { what: format!("savepoint {request_id}"), after: waited });
            }
            progress(waited);
            std::thread::sleep(POLL_INTERVAL.min(timeout - waited));
        }
    }

    fn id<'a>(&self, id: &'a str) -> Result<&'a str, ControlError> {
        if is_id(id) {
            Ok(id)
        } else {
            Err(ControlError::Protocol(format!("{id:?} is not a valid job or request id (A-Z a-z 0-9 . _ -)")))
        }
    }

    fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: String,
        body: Option<&B>,
    ) -> Result<T, ControlError> {
        let address = &self.endpoint.address;
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ControlError::Protocol(format!("cannot encode the request to {address}: {e}")))?;
        let bearer = self.token.as_ref().map(Token::as_str);
        let answer = http::send(address, method, &path, bearer, body.as_deref())?;
        if !(200..300).contains(&answer.status) {
            let message = match serde_json::from_slice::<ErrorBody>(&answer.body) {
                Ok(ErrorBody { errors }) if !errors.is_empty() => errors.join("; "),
                _ => String::from_utf8_lossy(&answer.body).chars().take(500).collect(),
            };
            return Err(ControlError::Http { address: address.clone(), status: answer.status, message });
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            ControlError::Protocol(format!(
                "the control endpoint at {address} answered {method} {path} with unexpected JSON: {e}"
            ))
        })
    }
}
