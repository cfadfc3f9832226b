//! A PgBouncer of the test's own (Debian's `pgbouncer`) in transaction pooling mode in front
//! of the test PostgreSQL server, started for one test database and stopped with it.
//!
//! Its pool is smaller than one node's (4 server connections against the 5 each test node
//! holds), so the connections of several nodes really are multiplexed over shared servers.
//! It trusts the user of `TESSERA_TEST_POSTGRES_URL` without a password: the server must too
//! (the test servers here use trust authentication).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs it.
const BINARY: &str = "/usr/sbin/pgbouncer";

/// A running PgBouncer; killed when dropped.
pub struct PgBouncer {
    /// The client URL for `database` through the pooler, with `pool_mode=transaction`.
    pub url: String,
    child: Child,
    dir: PathBuf,
}

/// Whether the binary is installed.
pub fn installed() -> bool {
    std::path::Path::new(BINARY).exists()
}

impl PgBouncer {
    /// Starts one for the server `server_url` (`postgres://user@host:port/…`) and answers
    /// once it accepts connections; clients reach `database` through it.
    pub fn start(server_url: &str, database: &str) -> Self {
        let server = url::Url::parse(server_url).expect("a PostgreSQL URL");
        let (host, port, user) =
            (server.host_str().unwrap_or("127.0.0.1"), server.port().unwrap_or(5432), server.username());
        let user = if user.is_empty() { "postgres" } else { user };
        let dir = std::env::temp_dir().join(format!("tessera_pgbouncer_{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        write_readable(&dir.join("users.txt"), &format!("\"{user}\" \"\"\n"));
        // A port free a moment ago may be taken by the time the pooler binds it: then it exits,
        // and another port is tried.
        for _ in 0..5 {
            let listen_port = free_port();
            let config = format!(
                "[databases]\n* = host={host} port={port}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {listen_port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {auth}\npool_mode = transaction\ndefault_pool_size = 4\n\
                 max_client_conn = 200\nignore_startup_parameters = extra_float_digits\n",
                auth = dir.join("users.txt").display(),
            );
            write_readable(&dir.join("pgbouncer.ini"), &config);
            let mut command = Command::new(BINARY);
            // It refuses to run as root, and CI runs as root.
            if is_root() {
                command.args(["-u", "postgres"]);
            }
            let mut child = command
                .arg(dir.join("pgbouncer.ini"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pgbouncer");
            if listening(&mut child, listen_port) {
                let url = format!("postgres://{user}@127.0.0.1:{listen_port}/{database}?pool_mode=transaction");
                return Self { url, child, dir };
            }
            child.kill().ok();
            child.wait().ok();
        }
        panic!("pgbouncer did not start (its settings are in {})", dir.display());
    }
}

/// Whether `child` came to listen on `port`: false once it has exited (the port was taken).
fn listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Ours, not another test's that took the port: it still runs a moment later.
            std::thread::sleep(Duration::from_millis(20));
            return child.try_wait().ok().flatten().is_none();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A port nothing listens on now (the pooler binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A file and its directory that the pooler can read after it gives up root.
fn write_readable(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::File::create(path).unwrap().write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    if let Some(dir) = path.parent() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}
