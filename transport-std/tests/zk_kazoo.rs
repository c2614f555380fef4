//! Cross-check with kazoo, the Python ZooKeeper client: nodes sinew writes read back the same
//! through kazoo (data, stat, children), and nodes kazoo writes read back the same through
//! sinew.
//!
//! Ignored by default: needs a server (SINEW_ZK_SERVER, see `zk_interop.rs`) and kazoo
//! (`pip install kazoo`, or Debian's python3-kazoo):
//!
//! ```text
//! SINEW_ZK_SERVER=127.0.0.1:$(cat /tmp/sinew-zk/port) \
//!     cargo test -p sinew-transport-std --test zk_kazoo -- --include-ignored
//! ```

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use sinew_proto::zk::{Acl, CreateMode, ErrorCode};
use sinew_transport_std::Error;
use sinew_transport_std::zk::{ClientConfig, ZkClient};

const OPEN: &[Acl<'static>] = Acl::OPEN_ACL_UNSAFE;

fn server() -> String {
    match std::env::var("SINEW_ZK_SERVER") {
        Ok(addr) if !addr.trim().is_empty() => addr,
        _ => panic!(
            "SINEW_ZK_SERVER is not set. Start a server with `scripts/zookeeper.sh start DIR` \
             and run with SINEW_ZK_SERVER=127.0.0.1:$(cat DIR/port)"
        ),
    }
}

/// What kazoo printed for one node.
#[derive(Debug)]
struct Seen {
    data: Vec<u8>,
    version: i32,
    czxid: i64,
    mzxid: i64,
    data_length: i32,
    num_children: i32,
    ephemeral_owner: i64,
    children: Vec<String>,
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn parse(stdout: &str) -> BTreeMap<String, Seen> {
    let mut nodes = BTreeMap::new();
    for line in stdout.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.first() != Some(&"node") {
            continue;
        }
        assert_eq!(f.len(), 10, "{line}");
        nodes.insert(
            f[1].to_string(),
            Seen {
                data: unhex(f[2]),
                version: f[3].parse().unwrap(),
                czxid: f[4].parse().unwrap(),
                mzxid: f[5].parse().unwrap(),
                data_length: f[6].parse().unwrap(),
                num_children: f[7].parse().unwrap(),
                ephemeral_owner: f[8].parse().unwrap(),
                children: if f[9] == "-" {
                    Vec::new()
                } else {
                    f[9].split('/').map(str::to_string).collect()
                },
            },
        );
    }
    nodes
}

#[test]
#[ignore = "needs a ZooKeeper server (SINEW_ZK_SERVER) and kazoo (pip install kazoo)"]
fn sinew_and_kazoo_read_each_others_nodes() {
    let server = server();
    let mut zk = ZkClient::connect(&server, ClientConfig::default()).unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let root = format!("/sinew-kazoo-{}-{nanos}", std::process::id());

    // sinew writes.
    let binary: Vec<u8> = (0..=255).collect();
    let mut expect: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |zk: &mut ZkClient, path: &str, data: &[u8], mode: CreateMode| {
        let created = zk.create(path, data, OPEN, mode).unwrap();
        expect.insert(created.clone(), data.to_vec());
        created
    };
    put(&mut zk, &root, b"root", CreateMode::Persistent);
    put(
        &mut zk,
        &format!("{root}/text"),
        "héllo wörld ✓ 𝄞".as_bytes(),
        CreateMode::Persistent,
    );
    put(
        &mut zk,
        &format!("{root}/binary"),
        &binary,
        CreateMode::Persistent,
    );
    put(
        &mut zk,
        &format!("{root}/empty"),
        b"",
        CreateMode::Persistent,
    );
    put(
        &mut zk,
        &format!("{root}/knöten"),
        b"umlaut",
        CreateMode::Persistent,
    );
    put(&mut zk, &format!("{root}/dir"), b"", CreateMode::Persistent);
    put(
        &mut zk,
        &format!("{root}/dir/a"),
        b"a",
        CreateMode::Persistent,
    );
    let eph = put(
        &mut zk,
        &format!("{root}/eph"),
        b"mine",
        CreateMode::Ephemeral,
    );
    let seq = put(
        &mut zk,
        &format!("{root}/seq-"),
        b"s",
        CreateMode::PersistentSequential,
    );
    zk.set_data(&format!("{root}/dir/a"), b"a2", 0).unwrap();
    expect.insert(format!("{root}/dir/a"), b"a2".to_vec());

    // kazoo reads them, then writes its own.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zk_kazoo.py");
    let output = Command::new("python3")
        .args([script, &server, &root])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("done"),
        "kazoo script failed (is kazoo installed? pip install kazoo)\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let seen = parse(&stdout);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        expect.keys().collect::<Vec<_>>(),
        "kazoo saw other nodes"
    );
    for (path, data) in &expect {
        let by_kazoo = &seen[path];
        assert_eq!(&by_kazoo.data, data, "data of {path}");
        let stat = zk.exists(path, None).unwrap().unwrap();
        assert_eq!(
            (
                by_kazoo.version,
                by_kazoo.czxid,
                by_kazoo.mzxid,
                by_kazoo.data_length,
                by_kazoo.ephemeral_owner
            ),
            (
                stat.version,
                stat.czxid,
                stat.mzxid,
                stat.data_length,
                stat.ephemeral_owner
            ),
            "stat of {path}"
        );
        if path != &root {
            // The root gained kazoo's subtree since.
            assert_eq!(by_kazoo.num_children, stat.num_children, "{path}");
            let mut children = zk.get_children(path, None).unwrap();
            children.sort();
            assert_eq!(by_kazoo.children, children, "children of {path}");
        }
    }
    assert_eq!(seen[&eph].ephemeral_owner, zk.session_id());
    assert!(seq.ends_with("seq-0000000006"), "{seq}");

    // sinew reads what kazoo wrote.
    let base = format!("{root}/kazoo");
    assert_eq!(zk.get_data(&base, None).unwrap().0, b"from kazoo");
    let (text, stat) = zk.get_data(&format!("{base}/text"), None).unwrap();
    assert_eq!(String::from_utf8(text).unwrap(), "grüße ✓ 𝄞 v2");
    assert_eq!(stat.version, 1);
    assert_eq!(
        zk.get_data(&format!("{base}/binary"), None).unwrap().0,
        binary
    );
    assert_eq!(zk.get_data(&format!("{base}/empty"), None).unwrap().0, b"");
    let mut children = zk.get_children(&base, None).unwrap();
    children.sort();
    assert_eq!(
        children,
        [
            "binary",
            "empty",
            "knöten",
            "secret",
            "seq-0000000003",
            "text"
        ]
    );
    assert_eq!(
        zk.get_data(&format!("{base}/knöten"), None).unwrap().0,
        b"umlaut path"
    );
    assert_eq!(
        zk.get_data(&format!("{base}/seq-0000000003"), None)
            .unwrap()
            .0,
        b"s"
    );
    // kazoo's digest ACL: refused until sinew authenticates as carol.
    let secret = format!("{base}/secret");
    match zk.get_data(&secret, None) {
        Err(Error::Zk(ErrorCode::NoAuth)) => {}
        other => panic!("{other:?}"),
    }
    // (Since 3.6 reading an ACL needs READ or ADMIN on the node too.)
    match zk.get_acl(&secret) {
        Err(Error::Zk(ErrorCode::NoAuth)) => {}
        other => panic!("{other:?}"),
    }
    zk.add_auth("digest", b"carol:pw").unwrap();
    assert_eq!(zk.get_data(&secret, None).unwrap().0, b"s3cret");
    let (acl, _) = zk.get_acl(&secret).unwrap();
    assert_eq!(acl[0].scheme, "digest");
    // kazoo's make_digest_acl hashes as ZooKeeper does: base64(sha1("carol:pw")).
    assert_eq!(acl[0].id, "carol:RffyCdXXV1Js0ywLAoP5/l25yKs=");

    // Clean up.
    for path in [
        format!("{base}/text"),
        format!("{base}/binary"),
        format!("{base}/empty"),
        format!("{base}/knöten"),
        format!("{base}/secret"),
        format!("{base}/seq-0000000003"),
        base.clone(),
        format!("{root}/dir/a"),
        format!("{root}/dir"),
        format!("{root}/text"),
        format!("{root}/binary"),
        format!("{root}/empty"),
        format!("{root}/knöten"),
        seq,
        eph,
        root.clone(),
    ] {
        zk.delete(&path, -1).unwrap();
    }
    zk.close().unwrap();
}
