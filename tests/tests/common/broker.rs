//! A Kafka-protocol broker for tests: `noida-db` (installed by `scripts/test-services.sh` into a
//! virtualenv) started on a free loopback port with a data directory of its own, and
//! killed by its process id when dropped. Never left running.
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the broker may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Broker {
    child: Child,
    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub bootstrap: String,
    _dir: tempfile::TempDir,
}

/// The `noida-db` server binary: `SLUICE_NOIDA_DB`, else the one
/// `scripts/test-services.sh` links (not the package's Python wrapper, which a kill of
/// its process id would leave the server running behind).
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_NOIDA_DB") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/sluice-venv/noida-db")
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Broker {
    pub fn start() -> Broker {
        let bin = binary();
        assert!(bin.exists(), "{} not found: run scripts/setup.sh (make test does)", bin.display());
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new(&bin)
            .args(["start", "--data-dir"])
            .arg(dir.path())
            .args(["--only", "kafka", "--kafka-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let broker = Broker { child, bootstrap: format!("127.0.0.1:{port}"), _dir: dir };
        let started = Instant::now();
        while TcpStream::connect(&broker.bootstrap).is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "the broker did not listen on {} within {START_TIMEOUT:?}",
                broker.bootstrap
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
