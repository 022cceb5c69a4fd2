//! Planted bugs, for tests that prove a harness catches them (docs/CHECKPOINTING.md,
//! "Planted bugs"). Built only with the `canaries` feature; a process then plants the
//! canaries named in `SLUICE_CANARY` (comma-separated). Without the feature
//! [`planted`] is a constant `false` and the environment is never read.
//!
//! Names in use: `barrier-before-outboxes` (a producer sends barrier n before shipping
//! the records it read before n; `engine/tests/exactly_once.rs` must see lost updates).

/// Whether canary `name` is planted in this process.
#[cfg(feature = "canaries")]
pub fn planted(name: &str) -> bool {
    static PLANTED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    PLANTED
        .get_or_init(|| {
            std::env::var("SLUICE_CANARY")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|p| p == name)
}

/// Whether canary `name` is planted in this process: never, without `canaries`.
#[cfg(not(feature = "canaries"))]
pub fn planted(_name: &str) -> bool {
    false
}
