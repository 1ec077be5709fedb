//! # chorus-tls-fixture — TLS backends for tests
//!
//! What the tests of TLS to the cluster's backends share (chorus-cluster's, chorus-store's
//! and the end-to-end crate's): a certificate authority made per test ([`TestCa`]), and
//! servers started by the test that speak TLS with certificates it signed: a Redis
//! ([`TlsRedis`], Debian's `redis-server`) and a PostgreSQL ([`TlsPostgres`], the
//! newest of Debian's `/usr/lib/postgresql/N/bin`, or `CHORUS_TEST_PG_BIN`). Each server
//! lives in a temporary directory of its own and is stopped, and the directory
//! removed, when its value is dropped (a panicking test included).
//!
//! No Chorus crate is a dependency: this crate only makes certificates and processes.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// A free port on 127.0.0.1, taken from below the kernel's ephemeral range
/// (32768–60999 by default) so that no outgoing connection of another test can be
/// handed the same port between this check and the server's bind. Each call tries
/// the next port of a per-process sequence that starts at an offset from the pid,
/// so test binaries running side by side walk different parts of the range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    loop {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A certificate authority made for one test: its certificate is in a PEM file
/// ([`TestCa::ca_file`]) for clients to trust; it signs server certificates.
pub struct TestCa {
    dir: TempDir,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    /// A new CA named `name` (its common name).
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("a CA certificate");
        let dir = tempfile::Builder::new()
            .prefix("chorus-test-ca-")
            .tempdir()
            .expect("a directory for the CA");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("writing ca.pem");
        TestCa { dir, cert, key }
    }

    /// The CA's certificate (PEM), what a client trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `names` (host names or IP addresses) signed by this
    /// CA, and its private key, both PEM.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("a server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("server names");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a server certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// The names every fixture server's certificate carries.
pub const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1"];

/// Wait (`secs` at most) until 127.0.0.1:`port` accepts connections.
fn wait_for_port(port: u16, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A `redis-server` of the test's own that speaks only TLS, with a certificate for
/// [`SERVER_NAMES`] signed by the test's CA. Client certificates are not asked for.
pub struct TlsRedis {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl TlsRedis {
    /// Start it on a free port (waits until it listens; panics with its log if it
    /// does not within 10 s).
    pub fn start(ca: &TestCa) -> TlsRedis {
        TlsRedis::start_as(ca, SERVER_NAMES)
    }

    /// [`TlsRedis::start`] with a certificate for `names` instead (a certificate
    /// that does not name the address clients use).
    pub fn start_as(ca: &TestCa, names: &[&str]) -> TlsRedis {
        let dir = tempfile::Builder::new()
            .prefix("chorus-test-redis-")
            .tempdir()
            .expect("a directory for redis");
        let (cert, key) = ca.issue(names);
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("server.crt"), cert).unwrap();
        std::fs::write(path("server.key"), key).unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .arg("--tls-port")
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(path("server.crt"))
            .arg("--tls-key-file")
            .arg(path("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(ca.ca_file())
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(path("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) on the PATH");
        let redis = TlsRedis { child, port, dir };
        if !wait_for_port(port, 10) {
            panic!(
                "redis-server with TLS did not listen on {port}:\n{}",
                redis.log()
            );
        }
        redis
    }

    /// `rediss://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`: plaintext to the TLS port, which must not work.
    pub fn plain_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- redis log:\n{}", self.log());
        }
    }
}

/// A PostgreSQL of the test's own (a fresh cluster made by `initdb`, superuser
/// `postgres`, trust authentication) that takes TLS connections only: `hostssl`
/// lines for 127.0.0.1 and a `hostnossl … reject`, so plaintext is refused. Its
/// certificate names [`SERVER_NAMES`] and is signed by the test's CA.
///
/// PostgreSQL refuses to run as root: when the tests do, the server runs as the
/// `postgres` user (through `runuser`), in a directory it owns.
pub struct TlsPostgres {
    dir: TempDir,
    port: u16,
}

impl TlsPostgres {
    /// Make the cluster and start it on a free port (waits until it is ready).
    pub fn start(ca: &TestCa) -> TlsPostgres {
        let dir = tempfile::Builder::new()
            .prefix("chorus-test-pg-")
            .tempdir()
            .expect("a directory for PostgreSQL");
        let port = free_port();
        let pg = TlsPostgres { dir, port };
        let (cert, key) = ca.issue(SERVER_NAMES);
        let root = is_root();
        std::fs::write(pg.path("server.crt"), cert).unwrap();
        std::fs::write(pg.path("server.key"), key).unwrap();
        set_mode(&pg.path("server.key"), 0o600);
        if root {
            for p in [
                pg.dir.path().to_owned(),
                pg.path("server.crt"),
                pg.path("server.key"),
            ] {
                chown_to_postgres(&p);
            }
        }
        pg.run("initdb", |c| {
            c.arg("-D").arg(pg.path("data")).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
        });
        let conf = format!(
            "\n# chorus-tls-fixture\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = '{dir}'\nssl = on\nssl_cert_file = '{dir}/server.crt'\n\
             ssl_key_file = '{dir}/server.key'\nfsync = off\n",
            dir = pg.dir.path().display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(pg.path("data/postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .expect("writing postgresql.conf");
        std::fs::write(
            pg.path("data/pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 0.0.0.0/0 reject\n",
        )
        .expect("writing pg_hba.conf");
        pg.run("pg_ctl", |c| {
            c.arg("-D")
                .arg(pg.path("data"))
                .arg("-l")
                .arg(pg.path("postgres.log"))
                .args(["-w", "-t", "30", "start"]);
        });
        pg
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`, then `?` and `params` unless
    /// they are empty.
    pub fn url(&self, params: &str) -> String {
        let base = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        if params.is_empty() {
            base
        } else {
            format!("{base}?{params}")
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("postgres.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Run PostgreSQL's `program` (as `postgres` when we are root); panics with its
    /// output (and the server's log) if it fails.
    fn run(&self, program: &str, args: impl FnOnce(&mut Command)) {
        let output = self.try_run(program, args);
        if !output.status.success() {
            panic!(
                "{program} failed ({}):\n{}{}\n--- postgres log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log()
            );
        }
    }

    fn try_run(&self, program: &str, args: impl FnOnce(&mut Command)) -> std::process::Output {
        let program = pg_bin().join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        // A directory postgres may enter: the tests' own may be root's.
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        args(&mut cmd);
        cmd.output()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- postgres log:\n{}", self.log());
        }
        let data = self.path("data");
        if data.join("postmaster.pid").exists() {
            let _ = self.try_run("pg_ctl", |c| {
                c.arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
            });
        }
        // The TempDir then removes the directory (root may remove postgres's files).
    }
}

/// Where PostgreSQL's programs are: `CHORUS_TEST_PG_BIN`, else the newest of
/// Debian's `/usr/lib/postgresql/N/bin`.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("CHORUS_TEST_PG_BIN") {
        return dir.into();
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| "/usr/lib/postgresql/15/bin".into())
}

fn is_root() -> bool {
    use std::sync::OnceLock;
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    })
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id postgres");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres user (Debian's postgresql package makes it)")
    };
    (id("-u"), id("-g"))
}

fn chown_to_postgres(path: &Path) {
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown postgres {}: {e}", path.display()));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}
