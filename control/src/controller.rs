//! What the endpoint asks of the job: the engine implements [`Controller`], tests use
//! a fake. The server calls it from its own thread, one request at a time, so each
//! method must answer quickly: a savepoint is started, not waited for.
use crate::api;
use crate::error::ApiError;

pub trait Controller: Send + Sync {
    /// Every job this daemon runs (one, for now).
    fn overview(&self) -> api::JobsOverview;
    /// None: no job `jid` (answered 404).
    fn job(&self, jid: &str) -> Option<api::JobDetail>;
    /// None: no job `jid` (answered 404).
    fn checkpoints(&self, jid: &str) -> Option<api::CheckpointingStats>;
    /// Starts a savepoint and returns its request id at once (answered 202). `after`
    /// says what the job does once it is taken; the server derived it from the route and
    /// `req.cancel_job` (stop requests arrive as a `SavepointRequest` with
    /// `cancel_job: false` and `after: Stop`). Refusals are the controller's to decide
    /// and word: no such job (404), a savepoint already running or the target existing
    /// (409), the target not writable (400).
    fn trigger_savepoint(
        &self,
        jid: &str,
        req: api::SavepointRequest,
        after: api::AfterSavepoint,
    ) -> Result<String, ApiError>;
    /// None: no job `jid` or no request `request_id` (answered 404).
    fn savepoint_status(&self, jid: &str, request_id: &str) -> Option<api::AsyncOperation>;
    /// Cancels the job without a savepoint (answered 202 `{}`).
    fn cancel(&self, jid: &str) -> Result<(), ApiError>;
}
