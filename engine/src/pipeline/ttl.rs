//! `[aggregate.ttl]` of a job file: a time-to-live on the aggregate's state, with Flink's
//! names for the update type and the cleanup strategies (docs/OPERATIONS.md, "TTL"):
//!
//! ```toml
//! [aggregate.ttl]
//! ttl_ms = 60000
//! update = "on_create_and_write"            # or "on_read_and_write"
//! cleanup_full_snapshot = true
//! cleanup_incrementally = { cleanup_size = 5, run_cleanup_for_every_record = true }  # or false
//! cleanup_in_rocksdb_compact_filter = { query_time_after_num_entries = 1000, periodic_compaction_time_ms = 60000 }  # or false
//! ```
//!
//! Every cleanup key is optional; an absent one takes `TtlCleanup::default()`'s setting.
use serde::Deserialize;
use toml::Spanned;

use formats::ttl::{TtlConfig, TtlUpdate};

use crate::state::cleanup::{IncrementalCleanup, TtlCleanup, CLEANUP_SIZE_MAX};

/// The TTL of a TOML job's aggregate state, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPlan {
    pub config: TtlConfig,
    pub cleanup: TtlCleanup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTtl {
    ttl_ms: Spanned<u64>,
    update: Option<TtlUpdate>,
    cleanup_full_snapshot: Option<bool>,
    cleanup_incrementally: Option<Spanned<Toggle<RawIncremental>>>,
    cleanup_in_rocksdb_compact_filter: Option<Spanned<Toggle<RawCompactFilter>>>,
}

/// `false` turns a strategy off, `true` keeps its defaults, a table sets its fields.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Toggle<T> {
    On(bool),
    With(T),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncremental {
    cleanup_size: Option<usize>,
    run_cleanup_for_every_record: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompactFilter {
    query_time_after_num_entries: Option<u64>,
    /// Absent: the TTL; 0 turns periodic compaction off.
    periodic_compaction_time_ms: Option<u64>,
}

/// A field's problem: (span, field name, message), for the caller's `Ctx::err`.
pub(super) type Problem = (std::ops::Range<usize>, &'static str, String);

pub(super) fn ttl_plan(raw: &RawTtl) -> Result<TtlPlan, Problem> {
    let ttl_ms = *raw.ttl_ms.get_ref();
    if ttl_ms == 0 {
        return Err((raw.ttl_ms.span(), "aggregate.ttl.ttl_ms", "must be at least 1".into()));
    }
    let config = TtlConfig { ttl_ms, update: raw.update.unwrap_or(TtlUpdate::OnCreateAndWrite) };
    let defaults = TtlCleanup::default();
    let mut cleanup =
        TtlCleanup { full_snapshot: raw.cleanup_full_snapshot.unwrap_or(defaults.full_snapshot), ..defaults };
    let incremental = raw.cleanup_incrementally.as_ref().map(|t| (t.span(), t.get_ref()));
    match incremental {
        None | Some((_, Toggle::On(true))) => {}
        Some((_, Toggle::On(false))) => cleanup.incremental = None,
        Some((span, Toggle::With(t))) => {
            let d = defaults
                .incremental
                .unwrap_or(IncrementalCleanup { cleanup_size: 5, run_cleanup_for_every_record: true });
            let size = t.cleanup_size.unwrap_or(d.cleanup_size);
            if !(1..=CLEANUP_SIZE_MAX).contains(&size) {
                let msg = format!("cleanup_size must be 1..={CLEANUP_SIZE_MAX}, not {size}");
                return Err((span, "aggregate.ttl.cleanup_incrementally", msg));
            }
            let every = t.run_cleanup_for_every_record.unwrap_or(d.run_cleanup_for_every_record);
            cleanup = cleanup.cleanup_incrementally(size, every);
        }
    }
    let filter = raw.cleanup_in_rocksdb_compact_filter.as_ref().map(|t| (t.span(), t.get_ref()));
    match filter {
        None | Some((_, Toggle::On(true))) => {}
        Some((_, Toggle::On(false))) => cleanup.compaction_filter = None,
        Some((span, Toggle::With(f))) => {
            let query = f.query_time_after_num_entries.unwrap_or(1000);
            if query == 0 {
                let msg = "query_time_after_num_entries must be at least 1".to_string();
                return Err((span, "aggregate.ttl.cleanup_in_rocksdb_compact_filter", msg));
            }
            let periodic = f.periodic_compaction_time_ms.map(std::time::Duration::from_millis);
            cleanup = cleanup.cleanup_in_rocksdb_compact_filter(query, periodic);
        }
    }
    Ok(TtlPlan { config, cleanup })
}
