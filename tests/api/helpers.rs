//! Spawning the app in-process or as the real binary, and talking to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use moscow_time::config::{CliArgs, FileConfig, LogFormat, Settings};
use moscow_time::startup::Application;

/// Settings for a test instance on 127.0.0.1, port 0, in `data_dir`.
pub fn settings(data_dir: &Path) -> Settings {
    let args = CliArgs {
        host: Some("127.0.0.1".into()),
        port: Some(0),
        data_dir: Some(data_dir.to_path_buf()),
        instance: Some("test-instance".into()),
        log_format: Some(LogFormat::Text),
        ..CliArgs::default()
    };
    Settings::merge(args, FileConfig::default()).expect("test settings are valid")
}

/// An HTTP client that never goes through a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The app running in this process.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the app on port 0 over `data_dir`.
pub async fn spawn_app(data_dir: &Path) -> TestApp {
    spawn_app_with(settings(data_dir)).await
}

/// Starts the app with the given settings.
pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let data_dir = settings.data_dir.clone();
    let app = Application::build(settings).await.expect("the app starts");
    let address = format!("http://{}", app.address());
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: client(),
        data_dir,
        handle,
        task,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// One page view; returns its visit number.
    pub async fn visit(&self) -> u64 {
        let response = self.get("/").await;
        assert_eq!(response.status(), 200);
        visit_number(&response)
    }

    /// `GET path` with `Accept: application/json`, parsed.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        get_json(&self.client, &format!("{}{path}", self.address)).await
    }

    /// The count as `GET /visits` reports it.
    pub async fn reported_count(&self) -> u64 {
        self.get("/visits")
            .await
            .text()
            .await
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The count in the `visits` file.
    pub fn count_on_disk(&self) -> u64 {
        count_on_disk(&self.data_dir)
    }

    /// Graceful stop; waits until the writer has finished.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
    }
}

/// `GET url` with `Accept: application/json`, parsed.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .expect("request sent");
    assert!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    response.json().await.expect("a JSON body")
}

/// `clients` concurrent clients each visiting `/` of `address` `n` times;
/// every answer must be 200. Returns every visit number handed out.
pub async fn load(address: &str, clients: usize, n: usize) -> Vec<u64> {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let client = client();
            let url = format!("{address}/");
            tokio::spawn(async move {
                let mut numbers = Vec::with_capacity(n);
                for _ in 0..n {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    numbers.push(visit_number(&response));
                }
                numbers
            })
        })
        .collect();
    let mut all = Vec::with_capacity(clients * n);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// The `X-Visit-Number` header of a page view.
pub fn visit_number(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("x-visit-number")
        .expect("a visit carries its number")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Reads and parses `<dir>/visits` strictly: digits and one newline.
pub fn count_on_disk(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("visits")).expect("visits exists");
    let digits = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no trailing newline in {text:?}"));
    digits
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {text:?}"))
}

/// The real binary, started on port 0 with JSON logs, with every stdout
/// line kept as raw bytes (not decoded, so invalid UTF-8 would be seen).
pub struct Binary {
    pub child: Child,
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub address: String,
    logs: Arc<Mutex<Vec<Vec<u8>>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Path of the built `moscow-time` binary.
pub fn binary_path() -> &'static str {
    env!("CARGO_BIN_EXE_moscow-time")
}

/// A command for the binary with a clean environment for its settings,
/// listening on 127.0.0.1:0 with JSON logs over `data_dir`.
pub fn binary_command(data_dir: &Path) -> Command {
    let mut cmd = bare_binary_command();
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--log-format",
        "json",
        "--data-dir",
    ])
    .arg(data_dir);
    cmd
}

/// The binary with none of its settings in the environment and no flags.
pub fn bare_binary_command() -> Command {
    let mut cmd = Command::new(binary_path());
    for var in [
        "HOST",
        "PORT",
        "DATA_DIR",
        "TIMEZONE",
        "CONFIG_FILE",
        "LOG_FORMAT",
        "POD_NAME",
        "SHUTDOWN_TIMEOUT_SECS",
        "WRITE_TIMEOUT_MS",
        "MAX_BATCH",
        "PEERS",
        "PEERS_DNS",
        "PEER_TIMEOUT_MS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

impl Binary {
    /// Starts the binary over `data_dir` with extra flags and waits until it
    /// logs the address it listens on.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Binary {
        let mut cmd = binary_command(data_dir);
        cmd.args(extra);
        Self::start_command(cmd)
    }

    /// Starts `cmd` (JSON logs required) and waits for its `listening` line.
    pub fn start_command(mut cmd: Command) -> Binary {
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
                    && log["message"] == "listening"
                {
                    let _ = tx.send(log["addr"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        // From here on Drop kills the child, also when the wait below panics.
        let mut binary = Binary {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            address: String::new(),
            logs,
            reader: Some(reader),
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the binary logs `listening` before 60 s");
        binary.addr = addr.parse().expect("the logged address parses");
        binary.address = format!("http://{addr}");
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

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
