//! What the reliability tests share: the real binary with its raw log
//! bytes, a minimal HTTP/1.1 client over `std::net::TcpStream` (so a test
//! controls every byte it sends), tmpfs and bind mounts that unmount
//! themselves, and small readers for `/proc`, `/metrics` and the data folder.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any single socket operation may take before a test gives up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- process

/// The real `moscow-time` binary (shared with the API tests), here with a
/// blocking HTTP client over `std::net::TcpStream`.
pub use crate::helpers::Binary as Server;

impl Server {
    /// Resident memory in KiB, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// A GET over a fresh connection; panics on a transport error.
    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path)
    }

    /// `GET /`, expecting 200; returns the visit number.
    pub fn visit(&self) -> u64 {
        let response = self.get("/");
        assert_eq!(response.status, 200, "{}", response.text());
        response.visit_number()
    }

    /// The count `GET /visits` reports.
    pub fn reported_count(&self) -> u64 {
        let response = self.get("/visits");
        assert_eq!(response.status, 200);
        response.text().trim().parse().unwrap()
    }

    /// The value of one sample of `/metrics` (exact series text).
    pub fn metric(&self, series: &str) -> f64 {
        metric(&self.get("/metrics").text(), series)
            .unwrap_or_else(|| panic!("no sample {series} in /metrics"))
    }

    /// Polls `/readyz` until it answers 200, at most `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.get("/readyz").status == 200)
    }
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Runs a command to completion, killing it after `timeout` (a startup
/// that hangs instead of failing must fail the test, not hang it).
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Polls `check` every 50 ms until it is true, at most `timeout`.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the tests run as root (`id -u` prints 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether a program is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A small deterministic PRNG (xorshift64*), seeded from the clock or from
/// `RELIABILITY_SEED`, so that a failing random run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_clock(test: &str) -> Rng {
        let seed = std::env::var("RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: RELIABILITY_SEED={seed}");
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A bound read from the environment, e.g. `KILL_ROUNDS`, or the default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------- data folder

/// Names of temporary files (`.visits.tmp-*`) in a data folder.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".visits.tmp-"))
        .collect()
}

// ---------------------------------------------------------------- metrics

/// The value of the sample whose series text is exactly `series`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

// ---------------------------------------------------------------- mounts

/// A mount point that is unmounted (and its folder removed) on drop, even
/// when the test panics. Declare it before any [`Server`] using it, so the
/// server is dropped (killed) first.
pub struct Mount {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    /// A tmpfs of `size` (e.g. `64k`), or why it cannot be had here.
    pub fn tmpfs(size: &str) -> Result<Mount, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0755"),
            "tmpfs",
            path.to_str().unwrap(),
        ])?;
        Ok(Mount { path, _dir: dir })
    }

    /// A read-only bind mount of `source`, or why it cannot be had here.
    pub fn read_only_bind(source: &Path) -> Result<Mount, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let target = path.to_str().unwrap().to_owned();
        mount(&["--bind", source.to_str().unwrap(), &target])?;
        let guard = Mount { path, _dir: dir };
        mount(&["-o", "remount,bind,ro", &target])?;
        Ok(guard)
    }

    /// `mount -o remount,<opts>`; retried for a while because remounting
    /// read-only fails with EBUSY while a file is open for writing (the
    /// service holds `visits.lock` open only during a write).
    pub fn remount(&self, opts: &str) {
        let target = self.path.to_str().unwrap();
        let opts = format!("remount,{opts}");
        let mut last = String::new();
        let done = wait_until(Duration::from_secs(15), || {
            match mount(&["-o", &opts, target]) {
                Ok(()) => true,
                Err(e) => {
                    last = e;
                    false
                }
            }
        });
        assert!(done, "mount -o {opts} {target} kept failing: {last}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = self.path.to_str().unwrap().to_owned();
        let ok = Command::new("umount")
            .arg(&target)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", &target]).status();
        }
    }
}

fn mount(args: &[&str]) -> Result<(), String> {
    let output = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Prints why a test is skipped; the test then returns early and passes.
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
}

// ---------------------------------------------------------------- raw HTTP

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn visit_number(&self) -> u64 {
        self.header("x-visit-number")
            .expect("a visit carries its number")
            .parse()
            .unwrap()
    }
}

/// A keep-alive HTTP/1.1 connection; requests are written by hand.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// `GET path` with a Host header, keeping the connection open.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
    }

    /// Writes `request` and reads one response (Content-Length framed, or
    /// until the server closes).
    pub fn send(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request)?;
        self.read_response()
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before a response head",
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        self.buf.drain(..head_end + 4);
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let body = match length {
            Some(len) => {
                while self.buf.len() < len {
                    if self.fill()? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "closed inside a body",
                        ));
                    }
                }
                self.buf.drain(..len).collect()
            }
            None => {
                while self.fill()? > 0 {}
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A GET over a fresh connection; panics on a transport error.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Conn::connect(addr)
        .and_then(|mut c| c.get(path))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// What the server did with a raw request.
#[derive(Debug)]
pub enum Outcome {
    /// It answered with this status.
    Answered(u16),
    /// It closed (or reset) the connection without an answer.
    Closed,
}

/// Sends `request` on a fresh connection and reads until the server
/// answers and/or closes. A write that fails because the server already
/// answered and closed (an oversized request) still reads the answer.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Outcome {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = stream.write_all(request);
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                received.extend_from_slice(&chunk[..n]);
                if find(&received, b"\r\n\r\n").is_some() {
                    break;
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                panic!(
                    "no answer and no close within {IO_TIMEOUT:?} for a {}-byte request",
                    request.len()
                )
            }
            Err(_) => break,
        }
    }
    if received.starts_with(b"HTTP/1.") {
        let status = String::from_utf8_lossy(&received)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        Outcome::Answered(status)
    } else {
        assert!(
            received.is_empty(),
            "not HTTP: {:?}",
            String::from_utf8_lossy(&received)
        );
        Outcome::Closed
    }
}
