//! Network namespaces for tests: a test that runs itself again in a private namespace
//! (where `tc` may shape traffic without touching the machine's), and processes started in
//! namespaces of their own, joined to the test's by a veth pair with documentation
//! addresses (198.51.100.0/24).

/// Runs the test named `test` in a network namespace of its own (a fresh loopback, where
/// `tc` may shape traffic without touching the machine's): the test binary runs itself
/// again under `unshare --net` with `XASO_IN_NETNS` set. Returns Some(true) inside the
/// namespace (go on), Some(false) outside once the run inside passed, and None where it
/// cannot (not root); either way the caller returns unless it got Some(true).
pub fn in_netns(test: &str) -> Option<bool> {
    if std::env::var_os("XASO_IN_NETNS").is_some() {
        return Some(true);
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        eprintln!("skipped: needs root for a network namespace");
        return None;
    }
    let me = std::env::current_exe().unwrap();
    let status = std::process::Command::new("unshare")
        .args(["--net", "--"])
        .arg(me)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("XASO_IN_NETNS", "1")
        .status()
        .expect("unshare runs");
    assert!(status.success(), "{test} failed in its network namespace");
    Some(false)
}

pub fn sh(cmd: &str) {
    let st = std::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
}

/// A command that runs `program args…` in a new network namespace of its own, once the
/// interface `dev` has been moved into it (see [`veth_into`]): it then gives `dev` the
/// address `addr` (a /24), brings it and loopback up, shapes what leaves through it with a
/// token bucket of `rate` (e.g. `6mbit`), and execs the program.
pub fn in_new_netns(
    program: &std::path::Path,
    dev: &str,
    addr: &str,
    rate: &str,
) -> std::process::Command {
    let script = format!(
        "while ! ip link show {dev} >/dev/null 2>&1; do sleep 0.05; done; \
         ip link set lo up && ip addr add {addr}/24 dev {dev} && ip link set {dev} up && \
         tc qdisc add dev {dev} root tbf rate {rate} burst 32kbit latency 50ms && exec \"$@\""
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["--net", "--", "sh", "-c", &script, "sh"])
        .arg(program);
    c
}

/// Joins the namespace of process `pid` (started by [`in_new_netns`] with `ns_dev`) to this
/// one: a veth pair, `host_dev` here with `host_addr`/24, shaped to `rate` toward the other
/// side like the other end.
pub fn veth_into(pid: u32, host_dev: &str, ns_dev: &str, host_addr: &str, rate: &str) {
    sh(&format!(
        "ip link add {host_dev} type veth peer name {ns_dev} && ip link set {ns_dev} netns {pid} && \
         ip addr add {host_addr}/24 dev {host_dev} && ip link set {host_dev} up && \
         tc qdisc add dev {host_dev} root tbf rate {rate} burst 32kbit latency 50ms"
    ));
}

/// For a test that runs in its own namespace ([`in_netns`]): inside it, brings loopback up
/// and gives a runtime to run the test on; outside (the run inside is over), None.
pub fn runtime_in_netns(test: &str) -> Option<tokio::runtime::Runtime> {
    if in_netns(test) != Some(true) {
        return None;
    }
    sh("ip link set lo up");
    Some(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// Runs `f` on a thread of its own inside the network namespace of process `pid` (one
/// started by [`in_new_netns`]), on a runtime of that thread, so that every socket it
/// opens is that namespace's: a client on the far side of the veth, as a commune's own
/// user would be.
pub fn run_in_netns_of<T, F, Fut>(pid: u32, f: F) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("the namespace");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

/// Bytes received and sent through interface `dev` of this namespace, from its own
/// counters (`/proc/net/dev` is the namespace's; sysfs would be the machine's).
pub fn dev_bytes(dev: &str) -> (u64, u64) {
    let all = std::fs::read_to_string("/proc/net/dev").unwrap();
    let line = all
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{dev}:")))
        .unwrap_or_else(|| panic!("{dev} in /proc/net/dev"));
    // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
    let f: Vec<u64> = line
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (f[0], f[8])
}
