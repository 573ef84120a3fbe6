//! The app in this process on port 0, and an async HTTP client for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use moscow_time::config::Settings;
use moscow_time::routes::VISIT_NUMBER_HEADER;
use moscow_time::startup::Application;
use moscow_time::store::VISITS_FILE;

/// Settings for a test instance on 127.0.0.1, port 0, in `data_dir`.
pub fn settings(data_dir: &Path) -> Settings {
    settings_with(data_dir, &[])
}

/// [`settings`] with extra flags, e.g. `["--max-batch", "1"]`.
pub fn settings_with(data_dir: &Path, extra: &[&str]) -> Settings {
    let mut argv: Vec<std::ffi::OsString> = [
        "moscow-time",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--instance",
        "test-instance",
        "--log-format",
        "text",
        "--data-dir",
    ]
    .iter()
    .map(Into::into)
    .collect();
    argv.push(data_dir.into());
    argv.extend(extra.iter().map(Into::into));
    Settings::from_args(argv).expect("test settings are valid")
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
        .get(VISIT_NUMBER_HEADER)
        .expect("a visit carries its number")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Reads and parses `<dir>/visits` strictly: digits and one newline.
pub fn count_on_disk(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join(VISITS_FILE)).expect("visits exists");
    let digits = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no trailing newline in {text:?}"));
    digits
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {text:?}"))
}
