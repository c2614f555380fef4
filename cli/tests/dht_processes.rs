//! Five `sinew dht node` processes on loopback, driven by `sinew dht put|get|lock|unlock`
//! processes: a put through one node is read through another, the node owning the most keys is
//! killed (SIGKILL) and every value is still there, and a node leaving on SIGTERM hands over
//! without loss.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sinew_proto::dht::{NodeId, ring};

const KEYS: usize = 12;

struct NodeProcess {
    child: Child,
    addr: SocketAddr,
    id: NodeId,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl NodeProcess {
    fn spawn(join: Option<SocketAddr>) -> NodeProcess {
        NodeProcess::spawn_at("127.0.0.1:0", join)
    }

    fn spawn_at(bind: &str, join: Option<SocketAddr>) -> NodeProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sinew"));
        cmd.args([
            "dht",
            "node",
            "--bind",
            bind,
            "--stabilize-ms",
            "100",
            "--timeout-ms",
            "100",
            "--print-s",
            "0",
        ]);
        if let Some(entry) = join {
            cmd.args(["--join", &entry.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sinew dht node");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the node prints its address");
        // "sinew dht node <id> on <addr>"
        let addr: SocketAddr = first
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        assert!(first.starts_with("sinew dht node "), "{first}");
        NodeProcess {
            child,
            addr,
            // The default id is the name of the bound address.
            id: NodeId::from_name(addr.to_string().as_bytes()),
            lines,
            seen: vec![first],
        }
    }

    /// Waits for a line containing `needle`.
    fn expect(&mut self, needle: &str, deadline: Duration) {
        if self.seen.iter().any(|l| l.contains(needle)) {
            return;
        }
        let end = Instant::now() + deadline;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "node {} never printed {needle:?}; it printed:\n{}",
            self.addr,
            self.seen.join("\n")
        );
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sinew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sinew")
}

fn put(node: SocketAddr, key: &str, value: &str) -> Output {
    sinew(&["dht", "put", "--node", &node.to_string(), key, value])
}

fn get(node: SocketAddr, key: &str) -> Output {
    sinew(&["dht", "get", "--node", &node.to_string(), key])
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Reads every key through `node` until all come back right (a read right after a failure may
/// miss a key until the handover reaches its new owner), or the deadline passes.
fn read_all(node: SocketAddr, deadline: Duration) -> Vec<String> {
    let end = Instant::now() + deadline;
    loop {
        let mut wrong = Vec::new();
        for k in 0..KEYS {
            let out = get(node, &format!("key-{k}"));
            let want = format!("value-{k}\n");
            if out.status.code() != Some(0) || out.stdout != want.as_bytes() {
                wrong.push(format!("key-{k}: {}", text(&out)));
            }
        }
        if wrong.is_empty() || Instant::now() >= end {
            return wrong;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn five_node_processes_keep_every_value_through_a_kill_and_a_leave() {
    let mut nodes = vec![NodeProcess::spawn(None)];
    let seed = nodes[0].addr;
    for _ in 1..5 {
        nodes.push(NodeProcess::spawn(Some(seed)));
    }
    for n in &mut nodes[1..] {
        n.expect("joined the ring via", Duration::from_secs(10));
    }
    // Let stabilization spread the leaf sets.
    thread::sleep(Duration::from_millis(600));

    // Put through node 1, read through node 3.
    for k in 0..KEYS {
        let out = put(nodes[1].addr, &format!("key-{k}"), &format!("value-{k}"));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("stored \"key-{k}\"\n")
        );
    }
    let wrong = read_all(nodes[3].addr, Duration::ZERO);
    assert!(wrong.is_empty(), "{wrong:#?}");
    let missing = get(nodes[3].addr, "never written");
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no value"));

    // Kill -9 the node (other than 0, 1 and 3) owning the most keys.
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
    let mut owned = [0usize; 5];
    for k in 0..KEYS {
        let key = NodeId::from_name(format!("key-{k}").as_bytes());
        let owner = ring::owner_among(key, ids.iter().copied()).unwrap();
        owned[ids.iter().position(|&i| i == owner).unwrap()] += 1;
    }
    let victim = if owned[2] >= owned[4] { 2 } else { 4 };
    let other = 6 - victim;
    nodes[victim].child.kill().unwrap();
    nodes[victim].child.wait().unwrap();
    // The ring declares it down (3 unanswered stabilizations of 100 ms) and heals.
    let victim_name = nodes[victim].addr.to_string();
    nodes[0].expect(&format!("@{victim_name} is gone"), Duration::from_secs(10));
    let wrong = read_all(nodes[other].addr, Duration::from_secs(10));
    assert!(
        wrong.is_empty(),
        "after killing node {victim} (owner of {} keys): {wrong:#?}",
        owned[victim]
    );

    // Locks through different nodes.
    let door = |cmd: &str, node: usize, holder: &str| {
        sinew(&[
            "dht",
            cmd,
            "--node",
            &nodes[node].addr.to_string(),
            "door",
            "--holder",
            holder,
        ])
    };
    // An owner that just took keys over grants no lock for one lease (10 s by default): ask
    // until granted.
    let end = Instant::now() + Duration::from_secs(15);
    let locked = loop {
        let out = door("lock", 1, "alice");
        if out.status.code() == Some(0) || Instant::now() >= end {
            break out;
        }
        thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(locked.status.code(), Some(0), "{}", text(&locked));
    assert!(String::from_utf8_lossy(&locked.stdout).starts_with("locked \"door\" for alice"));
    let denied = door("lock", other, "bob");
    assert_eq!(denied.status.code(), Some(1), "{}", text(&denied));
    // Denied without being told who holds it.
    let said = String::from_utf8_lossy(&denied.stdout);
    assert!(
        said.contains("is held by someone else"),
        "{}",
        text(&denied)
    );
    assert!(!said.contains("alice"), "{}", text(&denied));
    let refused = door("unlock", 3, "bob");
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("NotHolder"));
    let unlocked = door("unlock", 0, "alice");
    assert_eq!(unlocked.status.code(), Some(0), "{}", text(&unlocked));

    // Node 3 leaves on SIGTERM: it says so and exits 0; nothing is lost.
    let pid = nodes[3].child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    nodes[3].expect("leaving the ring", Duration::from_secs(5));
    let end = Instant::now() + Duration::from_secs(5);
    let code = loop {
        if let Some(s) = nodes[3].child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < end, "node 3 did not exit on SIGTERM");
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    let wrong = read_all(nodes[0].addr, Duration::from_secs(10));
    assert!(wrong.is_empty(), "after node 3 left: {wrong:#?}");
    // Two of five nodes are gone; every key was still read from the three left.
    let left = format!("@{} is gone", nodes[3].addr);
    nodes[0].expect(&left, Duration::from_secs(5));
}

/// A node started with `--join` through an address where no node runs yet keeps trying: each
/// join that times out is made again ("joining again through"), and once a node starts there
/// the joiner gets in. Before, it printed "join failed" once and stayed alone for good.
#[test]
fn a_node_keeps_joining_until_its_entry_is_up() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let entry: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut joiner = NodeProcess::spawn(Some(entry));
    joiner.expect("joining again through", Duration::from_secs(10));
    let first = NodeProcess::spawn_at(&entry.to_string(), None);
    assert_eq!(first.addr, entry);
    joiner.expect("joined the ring via", Duration::from_secs(20));
}
