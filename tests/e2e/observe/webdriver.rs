//! Just enough of the W3C WebDriver protocol, over reqwest, to drive a headless Chromium
//! through chromedriver: start a session, open a page, run a script, take a screenshot.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

use base64::Engine;
use serde_json::{Value, json};

/// Where the browser and its driver are, or why a test cannot use them.
pub fn find_browser() -> Result<(String, String), String> {
    let which = |names: &[&str]| {
        names.iter().find_map(|n| {
            ["/usr/bin", "/usr/local/bin", "/snap/bin"]
                .iter()
                .map(|d| format!("{d}/{n}"))
                .find(|p| Path::new(p).exists())
        })
    };
    let chromium = which(&["chromium", "chromium-browser", "google-chrome"])
        .ok_or("chromium is not installed (apt-get install -y chromium chromium-driver)")?;
    let driver = which(&["chromedriver"])
        .ok_or("chromedriver is not installed (apt-get install -y chromium-driver)")?;
    Ok((chromium, driver))
}

/// A chromedriver process and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    pub async fn start(chromium: &str, driver: &str) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut browser = Browser {
            driver: child,
            base,
            session: String::new(),
            http,
            _profile: TempDir(std::env::temp_dir().join(format!(
                "manifold-dashboard-{}-{}",
                std::process::id(),
                fastrand_suffix()
            ))),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = browser._profile.0.display().to_string();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={profile}"),
                ],
            },
        }}});
        let answer = browser.call("POST", "/session", caps).await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let answer: Value = request
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("chromedriver reachable")
            .json()
            .await
            .expect("WebDriver JSON");
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {method} {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        self.call("POST", &path, json!({ "url": url })).await;
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/sync", self.session);
        self.call("POST", &path, json!({ "script": script, "args": [] }))
            .await
    }

    /// Types `text` into the element `css` selects, as keystrokes (so the page's own input
    /// handlers see it, as with a person typing).
    pub async fn type_into(&self, css: &str, text: &str) {
        let path = format!("/session/{}/element", self.session);
        let found = self
            .call(
                "POST",
                &path,
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        let element = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned();
        let path = format!("/session/{}/element/{element}/value", self.session);
        self.call("POST", &path, json!({ "text": text })).await;
    }

    /// Evaluates `script` until `done` accepts its value, for at most `limit`.
    pub async fn wait_for(
        &self,
        script: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.eval(script).await;
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed it; last seen: {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let path = format!("/session/{}/screenshot", self.session);
        let encoded = self.call("GET", &path, Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 screenshot"))
            .expect("valid base64")
    }
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Chromium and chromedriver for a browser test, or `None` after printing why the test is
/// skipped; under CI a missing browser fails the test instead.
pub fn browser_or_skip() -> Option<(String, String)> {
    match find_browser() {
        Ok(found) => Some(found),
        Err(reason) if std::env::var_os("CI").is_none() => {
            println!("SKIPPED: {reason}");
            None
        }
        Err(reason) => panic!("CI must run the browser test: {reason}"),
    }
}

impl Browser {
    /// Saves a PNG of the viewport as `target/<name>` (or under `CARGO_TARGET_DIR`), for a
    /// person to look at what the test saw.
    pub async fn save_screenshot(&self, name: &str) {
        let png = self.screenshot().await;
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join(name), png).unwrap();
    }

    /// Closes the browser; the driver stops on drop.
    pub async fn quit(mut self) {
        let path = format!("/session/{}", self.session);
        self.call("DELETE", &path, Value::Null).await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Only the driver we started, by its handle.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
