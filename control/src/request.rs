//! Turns an HTTP request (method, URL, body) into a typed [`Route`]: a pure function,
//! bounded and total, so the fuzz target `control_request` can feed it any bytes.
//!
//! Invariants (the fuzz target and the property test check 1 and 2):
//! 1. `parse` never panics, whatever its inputs.
//! 2. A URL over [`URL_LEN_MAX`] is refused with 414 and a body over [`BODY_LEN_MAX`]
//!    with 413, before anything else is looked at.
//! 3. A known path with the wrong method is 405, an unknown path 404, a malformed body
//!    400 with a message naming the field.
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::api::{SavepointForm, SavepointRequest, StopRequest};
use crate::error::ApiError;

/// The longest URL (path and query) accepted, in bytes.
pub const URL_LEN_MAX: usize = 2 * 1024;
/// The largest request body accepted, in bytes.
pub const BODY_LEN_MAX: usize = 64 * 1024;
/// The longest job id or request id accepted, in bytes.
pub const ID_LEN_MAX: usize = 128;

/// A request the endpoint serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /jobs/overview`
    Overview,
    /// `GET /jobs/<jid>`
    Job { jid: String },
    /// `GET /jobs/<jid>/checkpoints`
    Checkpoints { jid: String },
    /// `POST /jobs/<jid>/savepoints`
    TriggerSavepoint { jid: String, request: SavepointRequest },
    /// `GET /jobs/<jid>/savepoints/<request-id>`
    SavepointStatus { jid: String, request_id: String },
    /// `POST /jobs/<jid>/stop`
    Stop { jid: String, request: StopRequest },
    /// `PATCH /jobs/<jid>?mode=cancel`
    Cancel { jid: String },
}

const PATHS: &str = "GET /jobs/overview, GET|PATCH /jobs/<jid>, GET /jobs/<jid>/checkpoints, \
                     POST /jobs/<jid>/savepoints, GET /jobs/<jid>/savepoints/<request-id>, POST /jobs/<jid>/stop";

/// Parses one request. `url` is the request target as sent (path and query); an
/// optional `/v1` prefix and a trailing slash are accepted, as Flink does.
pub fn parse(method: &str, url: &str, body: &[u8]) -> Result<Route, ApiError> {
    if url.len() > URL_LEN_MAX {
        return Err(ApiError::uri_too_long(format!("the URL is {} bytes, over the limit of {URL_LEN_MAX}", url.len())));
    }
    if body.len() > BODY_LEN_MAX {
        return Err(ApiError::payload_too_large(format!(
            "the request body is {} bytes, over the limit of {BODY_LEN_MAX}",
            body.len()
        )));
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let trimmed = path.strip_prefix("/v1").filter(|p| p.starts_with('/')).unwrap_or(path);
    let trimmed = if trimmed.len() > 1 { trimmed.strip_suffix('/').unwrap_or(trimmed) } else { trimmed };
    let segments: Vec<&str> = match trimmed.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Err(unknown(path)),
    };
    let allow = |allowed: &str| -> Result<(), ApiError> {
        if allowed.split('|').any(|m| m == method) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(format!(
                "{} is not allowed on {path:?}; allowed: {allowed}",
                shown(method)
            )))
        }
    };
    match segments.as_slice() {
        ["jobs", "overview"] => allow("GET").map(|()| Route::Overview),
        ["jobs", jid] => {
            allow("GET|PATCH")?;
            let jid = id("job id", jid)?;
            if method == "GET" {
                return Ok(Route::Job { jid });
            }
            match query_value(query, "mode") {
                None | Some("cancel") => Ok(Route::Cancel { jid }),
                Some(other) => Err(ApiError::bad_request(format!(
                    "mode={} is not supported; cancel with mode=cancel, stop with POST /jobs/<jid>/stop",
                    shown(other)
                ))),
            }
        }
        ["jobs", jid, "checkpoints"] => {
            allow("GET")?;
            Ok(Route::Checkpoints { jid: id("job id", jid)? })
        }
        ["jobs", jid, "savepoints"] => {
            allow("POST")?;
            let jid = id("job id", jid)?;
            Ok(Route::TriggerSavepoint { jid, request: savepoint_request(body)? })
        }
        ["jobs", jid, "savepoints", rid] => {
            allow("GET")?;
            Ok(Route::SavepointStatus { jid: id("job id", jid)?, request_id: id("request id", rid)? })
        }
        ["jobs", jid, "stop"] => {
            allow("POST")?;
            let jid = id("job id", jid)?;
            Ok(Route::Stop { jid, request: stop_request(body)? })
        }
        _ => Err(unknown(path)),
    }
}

fn unknown(path: &str) -> ApiError {
    ApiError::not_found(format!("unknown path {path:?}; the endpoint serves {PATHS}"))
}

/// A client-supplied string for a message: escaped, and cut to a readable length.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    let escaped = format!("{cut:?}");
    if cut.len() < s.len() {
        format!("{escaped}...")
    } else {
        escaped
    }
}

/// A job or request id: 1 to [`ID_LEN_MAX`] bytes of `[A-Za-z0-9._-]`, so it never
/// needs escaping in a URL, a path or a message.
fn id(what: &str, s: &str) -> Result<String, ApiError> {
    if !is_id(s) {
        return Err(ApiError::bad_request(format!(
            "{what} {} is not 1 to {ID_LEN_MAX} characters of A-Z a-z 0-9 . _ -",
            shown(s)
        )));
    }
    Ok(s.to_owned())
}

/// Whether `s` is a valid job or request id (see `id`).
pub(crate) fn is_id(s: &str) -> bool {
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-';
    !s.is_empty() && s.len() <= ID_LEN_MAX && s.bytes().all(ok)
}

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// The body's fields as a JSON object; an empty body is an empty object (all defaults).
fn object(what: &str, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::bad_request(format!("the {what} body must be a JSON object"))),
        Err(e) => Err(ApiError::bad_request(format!("the {what} body is not valid JSON: {e}"))),
    }
}

fn savepoint_request(body: &[u8]) -> Result<SavepointRequest, ApiError> {
    const FIELDS: &str = "target-directory, formatType, cancel-job";
    let mut request = SavepointRequest::default();
    for (name, value) in object("savepoint request", body)? {
        match name.as_str() {
            "target-directory" => request.target_directory = directory(&name, &value)?,
            "formatType" => request.form = form(&name, &value)?,
            "cancel-job" => request.cancel_job = flag(&name, &value)?,
            _ => return Err(unknown_field("savepoint request", &name, FIELDS)),
        }
    }
    Ok(request)
}

fn stop_request(body: &[u8]) -> Result<StopRequest, ApiError> {
    const FIELDS: &str = "targetDirectory, formatType, drain";
    let mut request = StopRequest::default();
    for (name, value) in object("stop request", body)? {
        match name.as_str() {
            "targetDirectory" => request.target_directory = directory(&name, &value)?,
            "formatType" => request.form = form(&name, &value)?,
            "drain" => request.drain = flag(&name, &value)?,
            _ => return Err(unknown_field("stop request", &name, FIELDS)),
        }
    }
    Ok(request)
}

fn unknown_field(what: &str, name: &str, fields: &str) -> ApiError {
    ApiError::bad_request(format!("unknown field {} in the {what}; its fields are {fields}", shown(name)))
}

fn directory(name: &str, value: &Value) -> Result<Option<PathBuf>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if !s.is_empty() && !s.contains('\0') => Ok(Some(PathBuf::from(s))),
        _ => {
            Err(ApiError::bad_request(format!("field {name:?} must be a directory path (a non-empty string) or null")))
        }
    }
}

fn form(name: &str, value: &Value) -> Result<SavepointForm, ApiError> {
    match value {
        Value::Null => Ok(SavepointForm::default()),
        Value::String(s) => SavepointForm::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("field {name:?} must be \"CANONICAL\" or \"NATIVE\", not {}", shown(s)))
        }),
        _ => Err(ApiError::bad_request(format!("field {name:?} must be \"CANONICAL\" or \"NATIVE\""))),
    }
}

fn flag(name: &str, value: &Value) -> Result<bool, ApiError> {
    match value {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(ApiError::bad_request(format!("field {name:?} must be true or false"))),
    }
}
