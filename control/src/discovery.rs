//! How the CLI finds a running daemon's endpoint. The daemon publishes one small JSON
//! file ([`Endpoint`]) in two places: its data directory (`control.json`), and a
//! machine-wide registry directory (`<pid>.json`) that `sluice list` reads. Both are
//! written atomically (temp file, fsync, rename, fsync of the directory) and removed
//! when the [`Registration`] is dropped.
//!
//! The registry directory is `$SLUICE_RUNTIME_DIR`, else `/tmp/sluice-<uid>` (created
//! 0700). It must be the user's own and writable by no one else: an entry names the
//! token file a client sends, so a directory others could write to would let them point
//! the client, with its token, at their own address.
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ControlError;

/// The largest endpoint file read, in bytes.
const ENDPOINT_FILE_LEN_MAX: u64 = 64 * 1024;

/// A running job's control endpoint, as the daemon publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub pid: u32,
    pub port: u16,
    /// `host:port` a client on this machine connects to.
    pub address: String,
    pub jid: String,
    /// The job's name.
    pub job: String,
    pub data_dir: PathBuf,
    /// The bearer token's file, when the endpoint needs one.
    pub token_file: Option<PathBuf>,
}

impl Endpoint {
    /// An endpoint known only by its address (`--address`): no pid, job or token.
    pub fn at(address: &str) -> Endpoint {
        let port = address.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
        Endpoint {
            pid: 0,
            port,
            address: address.to_owned(),
            jid: String::new(),
            job: String::new(),
            data_dir: PathBuf::new(),
            token_file: None,
        }
    }

    fn describe(&self) -> String {
        format!("pid {} job {} at {} (data dir {})", self.pid, self.job, self.address, self.data_dir.display())
    }
}

/// The endpoint file of a data directory.
pub fn endpoint_file(data_dir: &Path) -> PathBuf {
    data_dir.join("control.json")
}

/// The machine-wide registry: `$SLUICE_RUNTIME_DIR`, else `/tmp/sluice-<uid>`.
pub fn registry_dir() -> Result<PathBuf, ControlError> {
    match std::env::var_os("SLUICE_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Ok(PathBuf::from(format!("/tmp/sluice-{}", current_uid()?))),
    }
}

/// This process's user id: the owner of `/proc/self`.
fn current_uid() -> Result<u32, ControlError> {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| ControlError::io("cannot read /proc/self to learn the user id", e))
}

/// The registry directory checked: a directory of this user's that group and others
/// cannot write to.
fn check_private(dir: &Path) -> Result<(), ControlError> {
    let meta = std::fs::metadata(dir).map_err(|e| ControlError::io_at("cannot read the registry", dir, e))?;
    let mode = meta.permissions().mode() & 0o777;
    let uid = current_uid()?;
    if !meta.is_dir() || meta.uid() != uid || mode & 0o022 != 0 {
        return Err(ControlError::Discovery(format!(
            "refusing the registry {}: it must be a directory owned by uid {uid} that no one else can write to (it \
             has uid {}, mode {mode:04o}); remove it or set SLUICE_RUNTIME_DIR",
            dir.display(),
            meta.uid()
        )));
    }
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

fn read_endpoint(path: &Path) -> Result<Endpoint, ControlError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(ENDPOINT_FILE_LEN_MAX).read_to_string(&mut text))
        .map_err(|e| ControlError::io_at("cannot read the endpoint file", path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ControlError::Discovery(format!("the endpoint file {} is not valid: {e}", path.display())))
}

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync dir.
fn publish(path: &Path, bytes: &[u8]) -> Result<(), ControlError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ControlError::io_at("cannot publish the endpoint file", path, e)
    })
}

/// The published endpoint files of a running daemon; removed on drop.
#[derive(Debug)]
pub struct Registration {
    pid: u32,
    files: Vec<PathBuf>,
}

impl Registration {
    /// Publishes `endpoint` in its data directory and in [`registry_dir`].
    pub fn write(endpoint: &Endpoint) -> Result<Registration, ControlError> {
        Self::write_in(endpoint, &registry_dir()?)
    }

    /// Publishes `endpoint` in its data directory and in `registry` (created 0700).
    pub fn write_in(endpoint: &Endpoint, registry: &Path) -> Result<Registration, ControlError> {
        let json = serde_json::to_vec_pretty(endpoint)
            .map_err(|e| ControlError::Protocol(format!("cannot encode the endpoint file: {e}")))?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(registry)
            .map_err(|e| ControlError::io_at("cannot create the registry", registry, e))?;
        check_private(registry)?;
        let mut registration = Registration { pid: endpoint.pid, files: Vec::new() };
        // The registry entry first: whoever sees the data directory's file (which clients
        // and scripts wait for) then also finds the job in `sluice list`.
        for path in [registry.join(format!("{}.json", endpoint.pid)), endpoint_file(&endpoint.data_dir)] {
            publish(&path, &json)?;
            registration.files.push(path);
        }
        Ok(registration)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        for path in &self.files {
            // A later daemon on the same data directory may have replaced the file.
            if read_endpoint(path).is_ok_and(|e| e.pid == self.pid) {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove the endpoint file");
                }
            }
        }
    }
}

/// The endpoints of the jobs running on this machine, by pid; entries of dead
/// processes are removed.
pub fn running() -> Result<Vec<Endpoint>, ControlError> {
    running_in(&registry_dir()?)
}

/// [`running`] over the registry `registry`.
pub fn running_in(registry: &Path) -> Result<Vec<Endpoint>, ControlError> {
    let entries = match std::fs::read_dir(registry) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ControlError::io_at("cannot list the registry", registry, e)),
    };
    check_private(registry)?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(pid) = path.file_name().and_then(|n| n.to_str()?.strip_suffix(".json")?.parse::<u32>().ok()) else {
            continue;
        };
        if !pid_alive(pid) {
            tracing::debug!(path = %path.display(), "removing the registry entry of a process gone");
            let _ = std::fs::remove_file(&path);
            continue;
        }
        match read_endpoint(&path) {
            Ok(endpoint) if endpoint.pid == pid => found.push(endpoint),
            Ok(_) => tracing::debug!(path = %path.display(), "skipping a registry entry of another pid"),
            Err(e) => tracing::debug!(error = %e, "skipping a registry entry"),
        }
    }
    found.sort_by_key(|e| e.pid);
    Ok(found)
}

/// The endpoint to talk to: `address` when given (with the token file of `data_dir`'s
/// endpoint, when there is one); else `data_dir`'s endpoint file; else the only job
/// running on this machine.
pub fn find(data_dir: Option<&Path>, address: Option<&str>) -> Result<Endpoint, ControlError> {
    find_in(&registry_dir()?, data_dir, address)
}

/// [`find`] over the registry `registry`.
pub fn find_in(registry: &Path, data_dir: Option<&Path>, address: Option<&str>) -> Result<Endpoint, ControlError> {
    if let Some(address) = address {
        let published = data_dir.and_then(|d| read_endpoint(&endpoint_file(d)).ok());
        return Ok(match published {
            Some(e) => Endpoint { address: address.to_owned(), ..e },
            None => Endpoint::at(address),
        });
    }
    if let Some(dir) = data_dir {
        let path = endpoint_file(dir);
        if !path.exists() {
            return Err(ControlError::Discovery(format!(
                "no job is running with data directory {}: {} does not exist",
                dir.display(),
                path.display()
            )));
        }
        let endpoint = read_endpoint(&path)?;
        if !pid_alive(endpoint.pid) {
            return Err(ControlError::Discovery(format!(
                "the job that wrote {} (pid {}) is no longer running",
                path.display(),
                endpoint.pid
            )));
        }
        return Ok(endpoint);
    }
    let mut all = running_in(registry)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(ControlError::Discovery(format!(
            "no sluice job is running on this machine (none registered in {}); name one with --data-dir or --address",
            registry.display()
        ))),
        n => Err(ControlError::Discovery(format!(
            "{n} sluice jobs are running: {}; choose one with --data-dir or --address",
            all.iter().map(Endpoint::describe).collect::<Vec<_>>().join("; ")
        ))),
    }
}
