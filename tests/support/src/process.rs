//! The real `moscow-time` binary as a child process, with its raw log
//! bytes, a blocking HTTP client for it, and bounded process helpers.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use moscow_time::config::setting_args;

use crate::metrics::metric;
use crate::raw_http::{Response, get};
// Also reachable here, where system.rs has always found it.
pub(crate) use crate::wait::wait_until;

/// The real binary, started on port 0 with JSON logs, with every stdout
/// line kept as raw bytes (not decoded, so invalid UTF-8 would be seen).
pub struct Server {
    pub child: Child,
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub address: String,
    logs: Arc<Mutex<Vec<Vec<u8>>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Path of the built `moscow-time` binary: beside the folder of the test
/// executable (`target/<profile>/deps/<test>` -> `target/<profile>/moscow-time`).
pub fn binary_path() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = profile_dir.join("moscow-time");
    assert!(
        path.exists(),
        "{} is missing: build the binary first",
        path.display()
    );
    path
}

/// A command for the binary with a clean environment for its settings,
/// listening on 127.0.0.1:0 with JSON logs over `data_dir`.
pub fn binary_command(data_dir: &Path) -> Command {
    binary_command_on(data_dir, 0)
}

/// [`binary_command`] on a chosen port, for instances that must know each
/// other's addresses before they start (see [`crate::free_ports`]).
pub fn binary_command_on(data_dir: &Path, port: u16) -> Command {
    let mut cmd = bare_binary_command();
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--log-format", "json", "--data-dir"])
        .arg(data_dir);
    cmd
}

/// What the idle writer logs (at debug level) each time its write probe
/// fails again; see [`log_write_probes`].
pub const WRITE_PROBE_FAILED: &str = "write probe still failing";

/// Turns on the writer's debug lines, so a test can see a probe ran
/// ([`WRITE_PROBE_FAILED`]) instead of sleeping for one.
pub fn log_write_probes(cmd: &mut Command) -> &mut Command {
    cmd.env("RUST_LOG", "info,moscow_time::store::commit=debug")
}

/// The binary with none of its settings in the environment and no flags.
pub fn bare_binary_command() -> Command {
    let mut cmd = Command::new(binary_path());
    for env in setting_args().iter().filter_map(|arg| arg.get_env()) {
        cmd.env_remove(env);
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

impl Server {
    /// Starts the binary over `data_dir` with extra flags and waits until it
    /// logs the address it listens on.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut cmd = binary_command(data_dir);
        cmd.args(extra);
        Self::start_command(cmd)
    }

    /// Starts `moscow-time idle` over `data_dir` and waits until it logs
    /// that it waits for a signal.
    pub fn spawn_idle(data_dir: &Path) -> Server {
        let mut cmd = binary_command(data_dir);
        cmd.arg("idle");
        Self::start_until(cmd, "idle: waiting for SIGTERM or SIGINT")
    }

    /// Starts `cmd` (JSON logs required) and waits for its `listening` line.
    pub fn start_command(cmd: Command) -> Server {
        Self::start_until(cmd, "listening")
    }

    /// Starts `cmd` (JSON logs required) and waits for a log line whose
    /// message is `ready_message`; its `addr` field, if any, is the address.
    fn start_until(mut cmd: Command, ready_message: &'static str) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                if let Ok(log) = serde_json::from_slice::<serde_json::Value>(&line)
                    && log["message"] == ready_message
                {
                    let _ = tx.send(log["addr"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        // From here on Drop kills the child, also when the wait below panics.
        let mut binary = Server {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            address: String::new(),
            logs,
            reader: Some(reader),
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the binary logs `{ready_message}` before 60 s"));
        if let Ok(addr) = addr.parse() {
            binary.addr = addr;
            binary.address = format!("http://{addr}");
        }
        binary
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (TERM, INT, KILL) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal("KILL");
        self.wait(Duration::from_secs(30))
    }

    /// Waits at most `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pid {} did not exit within {timeout:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits at most `timeout` for a JSON log line whose message is `message`.
    pub fn wait_for_log(&self, message: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.count_logs(message) > 0)
    }

    /// How many JSON log lines so far have `message` as their message.
    pub fn count_logs(&self, message: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
            .filter(|log| log["message"] == message)
            .count()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Every stdout line so far, as raw bytes; once the process has exited,
    /// every line it wrote (waits for the reader to reach the end).
    pub fn logs(&mut self) -> Vec<Vec<u8>> {
        if self.child.try_wait().unwrap().is_some()
            && let Some(reader) = self.reader.take()
        {
            reader.join().unwrap();
        }
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
