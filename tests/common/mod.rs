//! Shared test harness: a fresh database in a temporary directory, simulated clocks, the real
//! router driven with `oneshot` (no socket), and helpers to log in and call the API.

#![allow(dead_code)]

pub mod camera;
pub mod netns;
pub mod nodes;
pub mod probe;
pub mod proc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use xaso::api::{AppState, app};
use xaso::config::Config;
use xaso_base::SimulatedClocks;

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "password-of-user";

pub struct Harness {
    pub app: Router,
    pub st: AppState,
    pub clocks: SimulatedClocks,
    pub dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub json: Value,
    pub headers: HeaderMap,
    pub text: String,
}

/// With `TEST_POSTGRES_URL` (a server `scripts/pg-test-server` started), every harness gets
/// its own new database on that server, so the same tests prove the SQL portable.
async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection;
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    sqlx::any::install_default_drivers();
    let name = format!(
        "xaso_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let mut c = sqlx::AnyConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

impl Harness {
    pub async fn new() -> Harness {
        Self::with_config(Config::default()).await
    }

    pub async fn with_config(mut cfg: Config) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        cfg.data_dir = dir.path().to_owned();
        if let Ok(url) = std::env::var("TEST_POSTGRES_URL") {
            cfg.database_url = fresh_postgres_database(&url).await;
        }
        let db = xaso::db::open(&cfg.database_url()).await.unwrap();
        let clocks = SimulatedClocks::new(1_795_000_000_000);
        xaso::serve::bootstrap_admin(&db, &clocks, Some(ADMIN_PASSWORD.into()), 8)
            .await
            .unwrap()
            .expect("first start creates admin");
        let st = AppState::new(db, cfg, Arc::new(clocks.clone()));
        Harness {
            app: app(st.clone()),
            st,
            clocks,
            dir,
        }
    }

    pub fn advance(&self, d: Duration) {
        self.clocks.advance(d);
    }

    /// Sends a request; `auth` is a `Cookie` value or `Bearer ...`.
    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            json,
            headers,
            text,
        }
    }

    pub fn request(
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> Request<Body> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = auth {
            b = if a.starts_with("Bearer ") {
                b.header("authorization", a)
            } else {
                b.header("cookie", a)
            };
        }
        let mut req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        req
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.raw(Self::request(method, path, auth, body.as_ref()))
            .await
    }

    pub async fn get(&self, path: &str, auth: &str) -> Resp {
        self.call(Method::GET, path, Some(auth), None).await
    }

    pub async fn delete(&self, path: &str, auth: &str) -> Resp {
        self.call(Method::DELETE, path, Some(auth), None).await
    }

    /// Logs in and returns the `Cookie` header value.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/login",
                None,
                Some(serde_json::json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login {user}: {}", r.text);
        let set = r.headers.get("set-cookie").unwrap().to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    }

    pub async fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Creates a user as admin; returns its id.
    pub async fn add_user(&self, admin: &str, name: &str, role: &str) -> i64 {
        let r = self
            .call(
                Method::POST,
                "/api/users",
                Some(admin),
                Some(serde_json::json!({"username": name, "password": PASSWORD, "role": role})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["id"].as_i64().unwrap()
    }

    pub async fn add_camera(&self, admin: &str, name: &str) -> i64 {
        let r = self
            .call(
                Method::POST,
                "/api/cameras",
                Some(admin),
                Some(
                    serde_json::json!({"name": name, "url": "rtsp://cam:s3cret@127.0.0.1:8554/x"}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["id"].as_i64().unwrap()
    }
}
