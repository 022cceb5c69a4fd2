//! How the CLI finds an endpoint: the data directory's file, the machine-wide registry,
//! and what it says when it cannot choose.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use control::discovery::{endpoint_file, find_in, running_in, Endpoint, Registration};
use control::ControlError;

fn endpoint(pid: u32, data_dir: &Path, port: u16) -> Endpoint {
    Endpoint {
        pid,
        port,
        address: format!("127.0.0.1:{port}"),
        jid: format!("jid{port}"),
        job: format!("job{port}"),
        data_dir: data_dir.to_owned(),
        token_file: None,
    }
}

/// A pid that is not running: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    pid
}

#[test]
fn registration_publishes_both_files_and_removes_them_on_drop() {
    // Pins the two places an endpoint is published (data_dir/control.json and
    // registry/<pid>.json, same JSON) and their removal when the daemon's handle drops.
    let (data, registry) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let me = endpoint(std::process::id(), data.path(), 4242);
    let reg = Registration::write_in(&me, registry.path()).unwrap();
    let in_data = endpoint_file(data.path());
    assert_eq!(in_data, data.path().join("control.json"));
    let in_registry = registry.path().join(format!("{}.json", me.pid));
    for path in [&in_data, &in_registry] {
        let read: Endpoint = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(read, me, "{}", path.display());
    }
    assert_eq!(running_in(registry.path()).unwrap(), vec![me]);
    drop(reg);
    assert!(!in_data.exists() && !in_registry.exists());
}

#[test]
fn find_picks_the_data_dir_file_among_several_running_jobs() {
    // Pins the choice order: an explicit data dir wins over the registry; without one,
    // two running jobs are an error naming both and the options to choose.
    let registry = tempfile::tempdir().unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mine = endpoint(std::process::id(), a.path(), 1111);
    let parent = endpoint(std::os::unix::process::parent_id(), b.path(), 2222);
    let _ra = Registration::write_in(&mine, registry.path()).unwrap();
    let _rb = Registration::write_in(&parent, registry.path()).unwrap();
    assert_eq!(find_in(registry.path(), Some(b.path()), None).unwrap(), parent);
    assert_eq!(find_in(registry.path(), Some(a.path()), None).unwrap(), mine);
    let r = find_in(registry.path(), None, None);
    assert!(
        matches!(&r, Err(ControlError::Discovery(m)) if m.contains("2 sluice jobs") && m.contains("127.0.0.1:1111")
            && m.contains("127.0.0.1:2222") && m.contains("--data-dir")),
        "{r:?}"
    );
    // An explicit address wins, and takes the token file of the data dir's endpoint.
    let e = find_in(registry.path(), Some(a.path()), Some("127.0.0.1:9")).unwrap();
    assert_eq!((e.address.as_str(), e.jid.as_str()), ("127.0.0.1:9", "jid1111"));
}

#[test]
fn find_takes_the_only_running_job_and_says_when_there_is_none() {
    // Pins the fallbacks: one registered job is found without options; none is an error
    // naming the registry; a data dir without an endpoint file is an error naming it.
    let registry = tempfile::tempdir().unwrap();
    let r = find_in(registry.path(), None, None);
    assert!(matches!(&r, Err(ControlError::Discovery(m)) if m.contains("no sluice job is running")), "{r:?}");
    let data = tempfile::tempdir().unwrap();
    let me = endpoint(std::process::id(), data.path(), 3333);
    let _reg = Registration::write_in(&me, registry.path()).unwrap();
    assert_eq!(find_in(registry.path(), None, None).unwrap(), me);
    let empty = tempfile::tempdir().unwrap();
    let r = find_in(registry.path(), Some(empty.path()), None);
    let named = empty.path().join("control.json").display().to_string();
    assert!(matches!(&r, Err(ControlError::Discovery(m)) if m.contains(&named)), "{r:?}");
}

#[test]
fn stale_registry_entries_are_skipped_and_removed() {
    // Pins the liveness check: an entry whose pid is gone is not listed and is deleted,
    // and a data dir file left by a dead daemon is reported as such.
    let (registry, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dead = endpoint(dead_pid(), data.path(), 5555);
    let stale = registry.path().join(format!("{}.json", dead.pid));
    std::fs::write(&stale, serde_json::to_vec(&dead).unwrap()).unwrap();
    std::fs::write(endpoint_file(data.path()), serde_json::to_vec(&dead).unwrap()).unwrap();
    assert_eq!(running_in(registry.path()).unwrap(), vec![]);
    assert!(!stale.exists());
    let r = find_in(registry.path(), Some(data.path()), None);
    assert!(matches!(&r, Err(ControlError::Discovery(m)) if m.contains("no longer running")), "{r:?}");
}

#[test]
fn a_registry_others_can_write_to_is_refused() {
    // Pins the registry's ownership rule: a directory with mode 0777 is refused, since
    // an entry planted there could point the client, with its token, elsewhere.
    let registry = tempfile::tempdir().unwrap();
    std::fs::set_permissions(registry.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = running_in(registry.path());
    assert!(matches!(&r, Err(ControlError::Discovery(m)) if m.contains("0777")), "{r:?}");
    let data = tempfile::tempdir().unwrap();
    let r = Registration::write_in(&endpoint(std::process::id(), data.path(), 1), registry.path());
    assert!(r.is_err());
}
