//! Invariants: parsing any request to the control endpoint never panics; a URL over
//! URL_LEN_MAX is refused with 414 and then a body over BODY_LEN_MAX with 413; every
//! refusal has a status the endpoint documents and a message; every accepted route
//! carries ids of 1 to ID_LEN_MAX URL-safe characters; parsing is deterministic.
//!
//! Input: `METHOD URL\nBODY` (the first space and the first newline split it; invalid
//! UTF-8 in the head is replaced), so the seeds in fuzz/corpus/control_request/ read
//! as requests. They are made and checked by control/tests/fuzz_seeds.rs.
#![no_main]
use control::request::{parse, Route, BODY_LEN_MAX, ID_LEN_MAX, URL_LEN_MAX};
use libfuzzer_sys::fuzz_target;

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_LEN_MAX && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let (method, url) = head.split_once(' ').unwrap_or((&head, ""));
    let parsed = parse(method, url, body);
    assert_eq!(parsed, parse(method, url, body), "deterministic");
    match parsed {
        Err(e) => {
            assert!([400, 404, 405, 413, 414].contains(&e.status), "{e:?}");
            assert!(!e.message.is_empty());
            if url.len() > URL_LEN_MAX {
                assert_eq!(e.status, 414);
            } else if body.len() > BODY_LEN_MAX {
                assert_eq!(e.status, 413);
            }
        }
        Ok(route) => {
            assert!(url.len() <= URL_LEN_MAX && body.len() <= BODY_LEN_MAX);
            let ids: Vec<&str> = match &route {
                Route::Overview => vec![],
                Route::Job { jid } | Route::Checkpoints { jid } | Route::Cancel { jid } => vec![jid],
                Route::TriggerSavepoint { jid, .. } | Route::Stop { jid, .. } => vec![jid],
                Route::SavepointStatus { jid, request_id } => vec![jid, request_id],
            };
            assert!(ids.iter().all(|id| valid_id(id)), "{route:?}");
        }
    }
});
