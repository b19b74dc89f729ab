//! A real RTSP camera for tests: GStreamer's RTSP server through python3-gi
//! (`tests/support/rtsp_camera.py`), on 127.0.0.1 and a free port, stopped on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct TestCamera {
    child: Child,
    /// `rtsp://127.0.0.1:PORT/cam`, without credentials.
    pub url: String,
}

impl Drop for TestCamera {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..30 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestCamera {
    /// Starts a camera with `rtsp_camera.py` flags (see tests/support/README.md).
    pub fn start(args: &[&str]) -> TestCamera {
        Self::spawn(Command::new("/usr/bin/python3"), args)
    }

    /// Starts a camera in the network namespace of process `pid` (its 127.0.0.1 is that
    /// namespace's loopback).
    pub fn start_in_netns_of(pid: u32, args: &[&str]) -> TestCamera {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{pid}/ns/net"))
            .arg("/usr/bin/python3");
        Self::spawn(c, args)
    }

    fn spawn(mut c: Command, args: &[&str]) -> TestCamera {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_camera.py");
        let mut child = c
            .arg(script)
            .args(["--port", "0", "--path", "cam"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 (Debian's, with python3-gi): run scripts/install-test-deps");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("test camera {args:?} did not start"));
        let url = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected camera output: {line}"))
            .to_owned();
        TestCamera { child, url }
    }

    /// The URL with `user:password@` (percent-encoded).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        let enc = |s: &str| {
            s.replace('%', "%25")
                .replace('@', "%40")
                .replace(':', "%3A")
        };
        self.url.replacen(
            "rtsp://",
            &format!("rtsp://{}:{}@", enc(user), enc(password)),
            1,
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
