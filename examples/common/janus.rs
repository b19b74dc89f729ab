//! Janus 1.1.2's REST API, as the Janus load clients use it (`janus_load`: streaming
//! viewers; `janus_meeting_load`: videoroom publishers and subscribers). Every request
//! carries a transaction; asynchronous answers (a plugin's events, its JSEP) come from the
//! session's long poll. See `benches/janus/README.md` for the flows.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One Janus session: its URL and the HTTP client that talks to it.
#[derive(Clone)]
pub struct Session {
    pub http: reqwest::Client,
    pub url: String,
}

/// Posts `body` to `url`; a `"janus": "error"` answer is an error.
pub async fn post(http: &reqwest::Client, url: &str, body: Value) -> Result<Value, String> {
    let r = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let v: Value = r.json().await.map_err(|e| format!("{url}: {e}"))?;
    if v["janus"] == "error" {
        return Err(format!("{url}: {v}"));
    }
    Ok(v)
}

impl Session {
    /// Creates a session on Janus at `base` (`http://127.0.0.2:8088`).
    pub async fn create(base: &str) -> Result<Session, String> {
        let http = reqwest::Client::new();
        let id = post(
            &http,
            &format!("{base}/janus"),
            json!({"janus": "create", "transaction": "c"}),
        )
        .await?["data"]["id"]
            .as_u64()
            .ok_or("no session id")?;
        Ok(Session {
            http,
            url: format!("{base}/janus/{id}"),
        })
    }

    /// Attaches `plugin` (`janus.plugin.videoroom`): the handle's id.
    pub async fn attach(&self, plugin: &str) -> Result<u64, String> {
        post(
            &self.http,
            &self.url,
            json!({"janus": "attach", "plugin": plugin, "transaction": "a"}),
        )
        .await?["data"]["id"]
            .as_u64()
            .ok_or_else(|| "no handle id".to_string())
    }

    /// Sends a plugin message (with a JSEP when given); returns Janus's immediate answer
    /// (`ack` for asynchronous requests, `success` with `plugindata` for synchronous ones).
    pub async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<Value, String> {
        let mut m = json!({"janus": "message", "transaction": "m", "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let v = post(&self.http, &format!("{}/{handle}", self.url), m).await?;
        if let Some(e) = v["plugindata"]["data"]["error"].as_str() {
            return Err(format!("{}: {e}", body_request(&v)));
        }
        Ok(v)
    }

    /// Long-polls the session until an event from `handle` satisfies `want`, for at most
    /// `within`; events before it are dropped (the callers wait for one thing at a time).
    pub async fn event(
        &self,
        handle: u64,
        within: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        loop {
            let r = self
                .http
                .get(format!("{}?maxev=10", self.url))
                .timeout(Duration::from_secs(35))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let events: Value = r.json().await.map_err(|e| e.to_string())?;
            let list = match events {
                Value::Array(a) => a,
                one => vec![one],
            };
            for e in list {
                if e["sender"].as_u64() == Some(handle) {
                    if let Some(err) = e["plugindata"]["data"]["error"].as_str() {
                        return Err(err.to_string());
                    }
                    if want(&e) {
                        return Ok(e);
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no awaited event from handle {handle} in {within:?}"
                ));
            }
        }
    }

    /// Keeps the session alive (Janus ends one silent for 60 s) until the task is aborted.
    pub fn keepalive(&self) -> tokio::task::JoinHandle<()> {
        let s = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let _ = post(
                    &s.http,
                    &s.url,
                    json!({"janus": "keepalive", "transaction": "k"}),
                )
                .await;
            }
        })
    }

    /// Ends the session (and its handles); whether Janus acknowledged it.
    pub async fn destroy(&self) -> bool {
        post(
            &self.http,
            &self.url,
            json!({"janus": "destroy", "transaction": "d"}),
        )
        .await
        .is_ok()
    }
}

fn body_request(v: &Value) -> String {
    v["plugindata"]["plugin"]
        .as_str()
        .unwrap_or("janus")
        .to_string()
}

/// The SDP of an event's JSEP, if it has one.
pub fn sdp_of(e: &Value) -> Option<String> {
    e["jsep"]["sdp"].as_str().map(str::to_string)
}
