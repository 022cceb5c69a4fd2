//! The seed corpus of the fuzz target `control_request` (`fuzz/corpus/control_request/`):
//! one valid request per route, in the target's input form `METHOD URL\nBODY`, so the
//! fuzzer starts from requests the endpoint accepts. formats/tests/fuzz_seeds.rs does the
//! same for the format targets; this crate owns its own target's seeds.
//!
//! Pins: every route has a committed seed, each committed seed parses to the route it is
//! named for (a parser change that makes them stale fails here), and the committed seeds
//! are the ones generated below. To regenerate:
//! `SLUICE_WRITE_SEEDS=1 cargo test -p sluice-control --test fuzz_seeds`.
use std::path::{Path, PathBuf};

use control::request::{parse, Route};

const JID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz").join("corpus").join("control_request")
}

/// (seed name, input bytes, the route's name).
fn generate() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("overview", "GET /jobs/overview\n".into(), "Overview"),
        ("job", format!("GET /jobs/{JID}\n"), "Job"),
        ("checkpoints", format!("GET /jobs/{JID}/checkpoints\n"), "Checkpoints"),
        (
            "trigger-savepoint",
            format!(
                "POST /jobs/{JID}/savepoints\n\
                 {{\"target-directory\": \"/var/lib/sluice/savepoints\", \"formatType\": \"NATIVE\", \"cancel-job\": false}}"
            ),
            "TriggerSavepoint",
        ),
        ("savepoint-status", format!("GET /jobs/{JID}/savepoints/sp-1\n"), "SavepointStatus"),
        (
            "stop",
            format!("POST /v1/jobs/{JID}/stop/\n{{\"targetDirectory\": null, \"formatType\": \"CANONICAL\", \"drain\": true}}"),
            "Stop",
        ),
        ("cancel", format!("PATCH /jobs/{JID}?mode=cancel\n"), "Cancel"),
    ]
}

/// The route an input in the target's form parses to, by variant name.
fn route_of(input: &[u8]) -> Result<&'static str, String> {
    let (head, body) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (input.get(..i).unwrap_or_default(), input.get(i + 1..).unwrap_or_default()),
        None => (input, &[][..]),
    };
    let head = std::str::from_utf8(head).map_err(|e| e.to_string())?;
    let (method, url) = head.split_once(' ').ok_or("no space between method and URL")?;
    Ok(match parse(method, url, body).map_err(|e| e.to_string())? {
        Route::Overview => "Overview",
        Route::Job { .. } => "Job",
        Route::Checkpoints { .. } => "Checkpoints",
        Route::TriggerSavepoint { .. } => "TriggerSavepoint",
        Route::SavepointStatus { .. } => "SavepointStatus",
        Route::Stop { .. } => "Stop",
        Route::Cancel { .. } => "Cancel",
    })
}

#[test]
fn the_control_request_target_has_one_valid_committed_seed_per_route() {
    let seeds = generate();
    let mut routes: Vec<&str> = seeds.iter().map(|s| s.2).collect();
    routes.sort();
    routes.dedup();
    assert_eq!(routes.len(), 7, "one seed per Route variant");
    for (name, input, route) in &seeds {
        assert_eq!(route_of(input.as_bytes()), Ok(*route), "generated seed {name}");
    }
    if std::env::var_os("SLUICE_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(corpus_dir()).expect("corpus dir");
        for (name, input, _) in &seeds {
            std::fs::write(corpus_dir().join(name), input).expect("write seed");
        }
    }
    for (name, input, _) in &seeds {
        let path = corpus_dir().join(name);
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; regenerate with SLUICE_WRITE_SEEDS=1 (see this file's header)", path.display())
        });
        assert!(committed == input.as_bytes(), "{} differs from the generated seed", path.display());
    }
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus dir").flatten() {
        let bytes = std::fs::read(entry.path()).expect("read seed");
        let parsed = route_of(&bytes);
        assert!(parsed.is_ok(), "committed seed {} does not parse: {parsed:?}", entry.path().display());
    }
}
