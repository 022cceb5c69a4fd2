//! `control`: the daemon's control endpoint and its client.
//!
//! The daemon serves HTTP on 127.0.0.1 (port 8081 by default, 0 for any) from its own
//! thread ([`Server`]), answering JSON shaped like Flink's REST API ([`api`]) from a
//! [`Controller`] the engine implements. It publishes where it listens
//! ([`discovery::Registration`]) so the `sluice` CLI finds it ([`discovery::find`]) and
//! talks to it with [`Client`]; [`render`] makes the CLI's tables. Request parsing
//! ([`request::parse`]) is a pure function, fuzzed by `fuzz/fuzz_targets/control_request.rs`.
//!
//! This crate links neither the engine, glommio nor RocksDB: the engine's binary and
//! the fuzz workspace both depend on it.

pub mod api;
mod client;
mod controller;
pub mod discovery;
mod error;
mod http;
pub mod render;
pub mod request;
mod server;
mod token;

pub use client::{Client, POLL_INTERVAL};
pub use controller::Controller;
pub use error::{ApiError, ControlError};
pub use http::{CONNECT_TIMEOUT, IO_TIMEOUT, RESPONSE_LEN_MAX};
pub use server::{Server, ServerConfig, DEFAULT_PORT};
pub use token::{Token, TOKEN_FILE_LEN_MAX};
