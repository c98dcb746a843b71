//! Drives the real `spine` binary: a private data dir per test, a tiny HTTP/1.1 client over
//! loopback, and process helpers that wait on events (output lines, exits), never on sleeps.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        // Under /tmp, which the postgres OS user can traverse when the tests run as root.
        let dir = tempfile::Builder::new().prefix("spine-cli-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Self { dir }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `spine` with a clean Spine environment: no DATABASE_URL, own data dir, JSON logs.
    pub fn spine(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_spine"));
        for (k, _) in std::env::vars() {
            if k.starts_with("SPINE_") || k == "DATABASE_URL" {
                c.env_remove(k);
            }
        }
        c.current_dir(self.dir.path())
            .env("SPINE_DATA_DIR", self.data_dir())
            .env("SPINE_LOG__FORMAT", "json")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.spine().args(args).output().expect("spine runs")
    }

    /// Live server processes of the private cluster.
    pub fn cluster_pids(&self) -> Vec<u32> {
        spine_store::embedded::cluster_pids(&self.data_dir().join("pg"))
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running `spine up`, with the lines it printed before it was ready.
pub struct Up {
    pub child: Child,
    pub url: String,
    pub host: String,
    pub banner: Vec<String>,
    pub stderr_path: PathBuf,
}

impl Up {
    pub fn start(env: &Env, extra_env: &[(&str, &str)]) -> Up {
        let stderr_path = env.dir.path().join(format!("up-{}.log", uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = env.spine();
        cmd.args(["up", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(stderr);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spine up starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().unwrap();
                panic!("spine up exited ({status}) before it was ready; stderr:\n{}", read(&stderr_path));
            };
            if let Some(rest) = line.strip_prefix("Spine is up at ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            banner.push(line);
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let host = url.trim_start_matches("http://").to_owned();
        Up { child, url, host, banner, stderr_path }
    }

    /// The admin key printed on first run, if this run printed one.
    pub fn bootstrap_key(&self) -> Option<String> {
        self.banner.iter().map(|l| l.trim()).find(|l| l.starts_with("sak_")).map(str::to_owned)
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        (status, read(&self.stderr_path))
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(host: &str, method: &str, path: &str, bearer: Option<&str>, body: Option<&serde_json::Value>) -> Response {
    let mut s = TcpStream::connect(host).expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(t) = bearer {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = text(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Response { status, body: body.to_owned() }
}
