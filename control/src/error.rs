//! The crate's two error types: [`ApiError`], what the endpoint answers a bad request
//! with (an HTTP status and a message, served as Flink's `{"errors":[..]}`), and
//! [`ControlError`], what starting the server, discovering an endpoint or calling one
//! as a client can fail with.
use std::io;
use std::time::Duration;

/// An error answered to a request: its HTTP status and a message for a person. The
/// job keeps running whatever the status; the controller returns these for refusals
/// it decides (target exists, not writable, a savepoint already running).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    /// 400: the request is malformed (body, field, query).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    /// 401: the bearer token is missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }
    /// 404: no such path, job or savepoint request.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    /// 405: the path exists, the method does not.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, message)
    }
    /// 409: the request conflicts with the job's state (a savepoint is already running,
    /// the target directory exists).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
    /// 413: the body is over [`crate::request::BODY_LEN_MAX`].
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(413, message)
    }
    /// 414: the path is over [`crate::request::URL_LEN_MAX`].
    pub fn uri_too_long(message: impl Into<String>) -> Self {
        Self::new(414, message)
    }
    /// 500: the controller failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
}

/// What starting the server, finding an endpoint, or a client call can fail with.
/// Every message names the address or file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The server's configuration is refused (off loopback without a token, a token
    /// file readable by others, an empty token).
    #[error("control endpoint: {0}")]
    Config(String),
    #[error("control endpoint: cannot listen on {address}: {message}")]
    Bind { address: String, message: String },
    #[error("cannot connect to the control endpoint at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    /// The endpoint answered with an error status; `message` is its `errors[0]`.
    #[error("the control endpoint at {address} answered {status}: {message}")]
    Http { address: String, status: u16, message: String },
    /// The endpoint's answer is not HTTP or not the JSON expected.
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Discovery(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("the savepoint failed: {message}")]
    SavepointFailed { message: String },
    #[error("gave up waiting for {what} after {:.1} s", after.as_secs_f64())]
    Timeout { what: String, after: Duration },
}

impl ControlError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ControlError::Io { context: context.into(), source }
    }
    pub(crate) fn io_at(what: &str, path: &std::path::Path, source: io::Error) -> Self {
        Self::io(format!("{what} {}", path.display()), source)
    }
    /// The HTTP status when the endpoint answered with an error, for exit codes.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ControlError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}
