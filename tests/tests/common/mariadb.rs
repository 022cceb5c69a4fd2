//! A MariaDB server for tests, from Debian's packages (installed by
//! `scripts/test-services.sh`): a data directory of its own made by `mariadb-install-db`,
//! `mariadbd` listening on a socket in it (and on a free loopback port, never 3306), killed by its
//! process id when dropped. Never left running.
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct MariaDb {
    child: Child,
    pub socket: PathBuf,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e} (run scripts/test-services.sh; make test does)"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl MariaDb {
    pub fn start() -> MariaDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", dir.path().display()))
                .args(["--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"]),
            "mariadb-install-db",
        );
        let (socket, port) = (dir.path().join("mysqld.sock"), free_port());
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.path().join("mysqld.pid").display()))
            .arg(format!("--log-error={}", dir.path().join("error.log").display()))
            // Its own directory for temporary files (here and in mariadb-install-db): in the
            // shared /tmp, servers of tests running side by side failed queries on
            // information_schema ("Error on delete of '/tmp/#sql-temptable-..'").
            .arg(format!("--tmpdir={}", dir.path().display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd (run scripts/test-services.sh; make test does)");
        let db = MariaDb { child, socket, dir };
        let started = Instant::now();
        while mysql::Conn::new(db.opts()).is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "mariadbd did not accept connections within {START_TIMEOUT:?}: {}",
                db.error_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        db
    }

    /// Options for root over the socket.
    pub fn opts(&self) -> mysql::Opts {
        mysql::OptsBuilder::new().user(Some("root")).socket(Some(self.socket.to_string_lossy())).into()
    }

    pub fn conn(&self) -> mysql::Conn {
        mysql::Conn::new(self.opts()).expect("connect to mariadbd")
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
