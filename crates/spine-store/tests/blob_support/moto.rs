//! A real S3 server on loopback for the tests: `moto_server` from PyPI, installed into
//! `/tmp/spine-moto` on first use (under `flock`, so parallel test processes install it once),
//! started per test on a port it picks itself and killed when the guard drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VENV: &str = "/tmp/spine-moto";
const LOCK: &str = "/tmp/spine-moto.lock";
pub const BUCKET: &str = "spine-blobs";

/// Installs moto when missing; panics with a clear message when PyPI cannot be reached.
fn ensure_installed() {
    let bin = Path::new(VENV).join("bin/moto_server");
    if bin.exists() {
        return;
    }
    let script = format!(
        "test -x {VENV}/bin/moto_server || {{ rm -rf {VENV} && python3 -m venv {VENV} && \
         {VENV}/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.*'; }}"
    );
    let out = Command::new("flock")
        .args([LOCK, "sh", "-c", &script])
        .output()
        .expect("running flock/python3 to install moto_server (needs util-linux and python3-venv)");
    assert!(
        out.status.success() && bin.exists(),
        "installing moto[server] from PyPI into {VENV} failed (is PyPI reachable?):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running moto server with one bucket; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto on a port it picks itself (`-p 0`; the port is read from its startup line, so
    /// parallel tests cannot race for a port) and creates the bucket, retrying while werkzeug
    /// still resets connections during its start, within one 60 s deadline.
    pub fn start() -> Moto {
        ensure_installed();
        let mut child = Command::new(Path::new(VENV).join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server starts");
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        // Reads the startup line, then keeps draining werkzeug's request log so it never blocks.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line.split("http://127.0.0.1:").nth(1).and_then(|p| p.trim().parse::<u16>().ok()) {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("moto_server printed no listening address within 60 s ({:?})", child.wait());
            }
        };
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match try_request(port, "PUT", &format!("/{BUCKET}")) {
                Ok((200, _)) => return moto,
                Ok((status, body)) if Instant::now() >= deadline => {
                    panic!("creating the bucket on moto port {port}: status {status}: {body}")
                }
                Err(e) if Instant::now() >= deadline => panic!("creating the bucket on moto port {port}: {e}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One unsigned HTTP/1.1 request (moto does not check signatures); (status, body).
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        request(self.port, method, path)
    }

    /// Multipart uploads on the server at `port` that were started and neither completed nor
    /// aborted.
    pub fn open_uploads_on(port: u16) -> usize {
        let (status, body) = request(port, "GET", &format!("/{BUCKET}?uploads"));
        assert_eq!(status, 200, "{body}");
        body.matches("<Upload>").count()
    }
}

fn request(port: u16, method: &str, path: &str) -> (u16, String) {
    try_request(port, method, path).unwrap_or_else(|e| panic!("{method} {path} on moto port {port}: {e}"))
}

fn try_request(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
