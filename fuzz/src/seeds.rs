//! The committed seed corpus, generated: `tests/seeds.rs` checks `corpus/` against it and
//! rewrites it (and `corpus/README.md`) with `SINEW_WRITE_SEEDS=1`.
//!
//! Valid datagrams are made with the crate's own encoders, and every defect from one byte
//! changed in a valid one, so that each seed says what it is in code rather than in hex.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sinew_proto::health::{
    Health, HealthCheck, HealthKind, MAX_DATAGRAM_LEN, MAX_ENTRIES_PER_PAGE, PeerEntry,
    PeerTableRequest, PeerTableWriter,
};
use sinew_proto::nonce::Nonce;

use arbitrary::{Arbitrary, Unstructured};

use crate::health_node::{
    self, Advance, NonceChoice, Op, Page, Script, ScriptConfig, Source, Summary,
};
use crate::roundtrip_health as roundtrip;

/// One seed file: `corpus/<target>/seed-<name>`.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The fuzz target.
    pub target: &'static str,
    /// The file name after `seed-`.
    pub name: &'static str,
    /// What it is, for `corpus/README.md`.
    pub what: String,
    /// The contents.
    pub bytes: Vec<u8>,
}

const NONCE: Nonce = Nonce::from_bytes([
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
]);

fn health(kind: HealthKind) -> Vec<u8> {
    let mut buf = [0; 17];
    let len = HealthCheck { kind, nonce: NONCE }.encode(&mut buf).unwrap();
    buf[..len].to_vec()
}

fn request(start: u16, len: u16) -> Vec<u8> {
    let mut buf = [0; MAX_DATAGRAM_LEN];
    let len = PeerTableRequest {
        nonce: NONCE,
        start,
        len,
    }
    .encode(&mut buf)
    .unwrap();
    buf[..len].to_vec()
}

fn entry(addr: &str, lives: u8) -> PeerEntry {
    PeerEntry {
        addr: addr.parse().unwrap(),
        health: Health::from_lives(lives).unwrap(),
    }
}

fn page(start: u16, total: u16, entries: &[PeerEntry]) -> Vec<u8> {
    let mut buf = [0; MAX_DATAGRAM_LEN];
    let mut writer = PeerTableWriter::new(&mut buf, NONCE, start, total).unwrap();
    for entry in entries {
        writer.push(entry).unwrap();
    }
    let len = writer.finish();
    buf[..len].to_vec()
}

/// Three entries: IPv4 (healthy), IPv6 (at risk), IPv4 (unhealthy).
fn three() -> [PeerEntry; 3] {
    [
        entry("10.0.0.1:7000", 3),
        entry("[2001:db8::1]:7001", 1),
        entry("192.0.2.9:65535", 0),
    ]
}

fn with(mut bytes: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
    bytes[at] = value;
    bytes
}

/// Byte offsets in a peer-table response, for the seeds that break one field.
const COUNT: usize = 21;
const FIRST_ENTRY: usize = 22;
const PORT: usize = 16;
const LIVES: usize = 18;

fn parse_health() -> Vec<Seed> {
    let seed = |name, what: &str, bytes| Seed {
        target: "parse_health",
        name,
        what: what.to_string(),
        bytes,
    };
    let full_page: Vec<PeerEntry> = (0..MAX_ENTRIES_PER_PAGE)
        .map(|i| {
            let ip = Ipv4Addr::new(10, 1, 0, i as u8 + 1);
            PeerEntry {
                addr: SocketAddr::new(IpAddr::V4(ip), 7000),
                health: Health::HEALTHY,
            }
        })
        .collect();
    let mut mapped_unspecified = page(0, 3, &three());
    // Entry 0's address becomes ::ffff:0.0.0.0 (IPv4-mapped unspecified).
    let mapped = Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets();
    mapped_unspecified[FIRST_ENTRY..FIRST_ENTRY + 16].copy_from_slice(&mapped);
    let mut zero_address = page(0, 3, &three());
    zero_address[FIRST_ENTRY..FIRST_ENTRY + 16].copy_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    let mut truncated_table = page(0, 3, &three());
    truncated_table.pop();
    let mut padded_table = page(0, 3, &three());
    padded_table.push(0);
    let mut too_large = request(0, MAX_DATAGRAM_LEN as u16);
    too_large.push(0);
    let empty_past_end = {
        let mut bytes = page(0, 0, &[]);
        bytes[17..19].copy_from_slice(&5u16.to_be_bytes());
        bytes
    };

    vec![
        seed(
            "health-request",
            "valid health request (type 0x01, nonce 00112233…ff)",
            health(HealthKind::Request),
        ),
        seed(
            "health-response",
            "valid health response (type 0x02, same nonce)",
            health(HealthKind::Response),
        ),
        seed(
            "table-request-min",
            "valid peer-table request, shortest: 22 bytes, start 0 (budget 0 entries)",
            request(0, 22),
        ),
        seed(
            "table-request-full",
            "valid peer-table request, 508 bytes of zero padding, start 7 (a full page)",
            request(7, 508),
        ),
        seed(
            "table-3",
            "valid peer-table response: start 0, total 3, 3 entries (IPv4 healthy, IPv6 at risk, IPv4 unhealthy port 65535)",
            page(0, 3, &three()),
        ),
        seed(
            "table-empty",
            "valid peer-table response with no entries (start 0, total 0)",
            page(0, 0, &[]),
        ),
        seed(
            "table-middle-page",
            "valid peer-table response: entries 40..43 of 100 (next_start 43)",
            page(40, 100, &three()),
        ),
        seed(
            "table-full-page",
            "valid peer-table response with the most entries a page holds (25, IPv4), 497 bytes",
            page(0, 25, &full_page),
        ),
        seed(
            "truncated-health",
            "health request one byte short (16 bytes): Truncated",
            health(HealthKind::Request)[..16].to_vec(),
        ),
        seed(
            "truncated-header",
            "the type byte alone: Truncated",
            health(HealthKind::Request)[..1].to_vec(),
        ),
        seed(
            "truncated-table",
            "table-3 minus its last byte: Truncated",
            truncated_table,
        ),
        seed(
            "padded-health",
            "health request with one trailing zero byte (18 bytes): TrailingBytes",
            [health(HealthKind::Request), vec![0]].concat(),
        ),
        seed(
            "padded-table",
            "table-3 with one trailing zero byte: TrailingBytes",
            padded_table,
        ),
        seed(
            "bad-version",
            "health request with version bits 1 (type 0x21): UnsupportedVersion(1)",
            with(health(HealthKind::Request), 0, 0x21),
        ),
        seed(
            "unknown-type",
            "version 0, kind 5 (type 0x05): UnknownType",
            with(health(HealthKind::Request), 0, 0x05),
        ),
        seed(
            "bad-status",
            "table-3 with entry 0's lives byte 4: BadStatus(4)",
            with(page(0, 3, &three()), FIRST_ENTRY + LIVES, 4),
        ),
        seed(
            "bad-port",
            "table-3 with entry 0's port 0: BadAddress",
            with(
                with(page(0, 3, &three()), FIRST_ENTRY + PORT, 0),
                FIRST_ENTRY + PORT + 1,
                0,
            ),
        ),
        seed(
            "zero-address",
            "table-3 with entry 0's address all zero (::): BadAddress",
            zero_address,
        ),
        seed(
            "mapped-unspecified",
            "table-3 with entry 0's address ::ffff:0.0.0.0 (IPv4-mapped unspecified): BadAddress (accepted before 3521763, and then not re-encodable)",
            mapped_unspecified,
        ),
        seed(
            "count-mismatch",
            "table-3 with count 4: Truncated",
            with(page(0, 3, &three()), COUNT, 4),
        ),
        seed(
            "past-total",
            "table-3 with total 2 (start + count > total): BadLength",
            with(page(0, 3, &three()), 20, 2),
        ),
        seed(
            "empty-past-end",
            "empty page with start 5 > total 0: BadLength (what a node answered to a request past its table's end before 3521763)",
            empty_past_end,
        ),
        seed(
            "nonzero-padding",
            "table-request-full with one padding byte 0x01: NonZeroPadding",
            with(request(7, 508), 300, 1),
        ),
        seed(
            "too-large",
            "509-byte peer-table request: TooLarge",
            too_large,
        ),
        seed("empty", "no bytes: Truncated", vec![]),
    ]
}

/// A search goal: the seed's name, what it shows, and whether a run's summary reached it.
pub(crate) type Goal<S> = (&'static str, &'static str, fn(&S) -> bool);

const ROUNDTRIP_GOALS: [Goal<roundtrip::Summary>; 6] = [
    ("health", "health checks round-tripped", |s| {
        s.health_checks >= 2
    }),
    ("request", "peer-table requests round-tripped", |s| {
        s.requests >= 2
    }),
    (
        "table-mixed",
        "a page with IPv4 and IPv6 entries round-tripped",
        |s| s.mixed_pages > 0,
    ),
    (
        "table-5",
        "a page of at least 5 entries round-tripped",
        |s| s.max_entries >= 5,
    ),
    (
        "short-buffer",
        "an encoding refused for a buffer too short, leaving it untouched",
        |s| s.short_buffers > 0,
    ),
    ("page-full", "entries refused by a full page", |s| {
        s.full_pages > 0
    }),
];

/// `roundtrip_health` seeds: the shortest input of the search that reaches each goal.
fn roundtrip_health() -> Vec<Seed> {
    search(
        "roundtrip_health",
        &ROUNDTRIP_GOALS,
        |data| Some(roundtrip::check(data)),
        |s| {
            let counts = [
                s.health_checks,
                s.requests,
                s.pages,
                s.mixed_pages,
                s.short_buffers,
            ];
            let mut m: Vec<u64> = counts.iter().map(|&n| u64::from(n)).collect();
            m.push(s.max_entries as u64);
            m
        },
        0x7e57,
        100_000,
    )
}

/// The shortest input, in a fixed pseudo-random sequence, that reaches each goal.
///
/// A tiny feedback-driven search, deterministic so that the files change only when a harness
/// does: every other candidate extends an input kept in a pool with random bytes (for
/// `health_node`, the ops are the input's tail, so this appends steps to a script), and an
/// input joins the pool when it sets a new high for one of `measures`. So goals that need a
/// long prefix (a full table before an eviction) are reached by steps.
pub(crate) fn search<S>(
    target: &'static str,
    goals: &[Goal<S>],
    run: impl Fn(&[u8]) -> Option<S>,
    measures: impl Fn(&S) -> Vec<u64>,
    seed: u64,
    attempts: usize,
) -> Vec<Seed> {
    let mut found: Vec<Option<Vec<u8>>> = vec![None; goals.len()];
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut best: Vec<u64> = Vec::new();
    let mut rng = Bytes(seed);
    let mut pick = [0u8; 4];
    for attempt in 0..attempts {
        rng.fill(&mut pick);
        let mut data = if attempt % 2 == 1 && !pool.is_empty() {
            let from = u32::from_le_bytes(pick) as usize;
            pool[from % pool.len()].clone()
        } else {
            Vec::new()
        };
        let extra = 8 + usize::from(pick[3]) % 64;
        let at = data.len();
        data.resize(at + extra, 0);
        rng.fill(&mut data[at..]);
        if data.len() > 2000 {
            continue;
        }
        let Some(summary) = run(&data) else { continue };
        for (slot, (_, _, goal)) in found.iter_mut().zip(goals) {
            if goal(&summary) && slot.as_ref().is_none_or(|s| s.len() > data.len()) {
                *slot = Some(data.clone());
            }
        }
        let measured = measures(&summary);
        best.resize(measured.len(), 0);
        if measured.iter().zip(&best).any(|(m, b)| m > b) {
            for (b, m) in best.iter_mut().zip(&measured) {
                *b = (*b).max(*m);
            }
            pool.push(data);
        }
    }
    goals
        .iter()
        .zip(found)
        .filter_map(|((name, what, _), bytes)| {
            Some(Seed {
                target,
                name,
                what: format!("found by the seed search: {what}"),
                bytes: bytes?,
            })
        })
        .collect()
}

/// A deterministic byte source for the seed search (SplitMix64).
struct Bytes(u64);

impl Bytes {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *b = (z ^ (z >> 31)) as u8;
        }
    }
}

/// A `health_node` seed: a script, what it shows, and what its run must reach (checked by the
/// seed test, so that a seed cannot silently stop doing what its line in the README says).
struct NodeSeed {
    name: &'static str,
    what: &'static str,
    script: Script,
    reaches: fn(&Summary) -> bool,
}

fn config(default_capacities: bool, local: bool) -> (bool, ScriptConfig) {
    let config = ScriptConfig {
        check_ms: 1000,
        timeout_ms: 500,
        table_ms: 5000,
        learn_from_requests: true,
        local,
    };
    (default_capacities, config)
}

fn script((default_capacities, config): (bool, ScriptConfig), ops: Vec<Op>) -> Script {
    Script {
        seed: 0x5eed,
        default_capacities,
        config,
        ops,
    }
}

const fn known(i: u8) -> Source {
    Source::Known(i)
}

fn answer(which: u8, from: Option<Source>) -> Op {
    Op::Answer {
        which,
        from,
        page: Page {
            start: None,
            beyond: Some(0),
            entries: vec![],
        },
        flips: vec![],
    }
}

fn sleeps(n: usize) -> impl Iterator<Item = Op> {
    std::iter::repeat_n(Op::Sleep, n)
}

fn node_seeds() -> Vec<NodeSeed> {
    let alive = |i| Op::Alive(known(i), true);
    let dead = |i| Op::Alive(known(i), false);
    let table_request = |from, start, len| Op::Request {
        from,
        nonce: NonceChoice::Fresh(Nonce::from_bytes([0x42; 16])),
        table: Some((start, len)),
    };
    let health_request = |from, byte| Op::Request {
        from,
        nonce: NonceChoice::Fresh(Nonce::from_bytes([byte; 16])),
        table: None,
    };
    vec![
        NodeSeed {
            name: "probe-joins",
            what: "add_seed(10.0.0.1:7000), the probe goes out and is answered from that address: \
                   the host joins the table, and a table request follows",
            script: script(
                config(false, false),
                vec![
                    Op::AddSeed(known(0)),
                    Op::Drain,
                    answer(0, None),
                    Op::Drain,
                    Op::PollEvents,
                ],
            ),
            reaches: |s| s.hosts_added == 1 && s.stats.tables_requested == 1,
        },
        NodeSeed {
            name: "pong",
            what: "ping(10.0.0.2:7000) answered 10 ms later: a Pong event",
            script: script(
                config(false, false),
                vec![
                    Op::Ping(known(1)),
                    Op::Drain,
                    Op::Advance(Advance::Millis(10)),
                    answer(0, None),
                    Op::PollEvents,
                ],
            ),
            reaches: |s| s.pongs == 1,
        },
        NodeSeed {
            name: "network",
            what: "five live peers (IPv4, another port, IPv6, dual-stack form) and the node's own \
                   address in every page; one seed, then 12 rounds of the adapter's loop: tables \
                   are exchanged, the table fills (3 hosts) and the rest is refused, never itself",
            script: script(
                config(false, true),
                [
                    alive(0),
                    alive(1),
                    alive(2),
                    alive(3),
                    alive(4),
                    Op::AddSeed(known(0)),
                ]
                .into_iter()
                .chain(sleeps(12))
                .chain([Op::PollEvents])
                .collect(),
            ),
            reaches: |s| s.max_hosts == 3 && s.stats.tables_received > 0 && s.stats.table_full > 0,
        },
        NodeSeed {
            name: "eviction",
            what: "a full table of three live peers, one dies and loses its lives, a fourth comes \
                   alive and is learned from a table: the dead host is evicted for it",
            script: script(
                config(false, false),
                [alive(0), alive(1), alive(2), Op::AddSeed(known(0))]
                    .into_iter()
                    .chain(sleeps(10))
                    .chain([dead(1), alive(3)])
                    .chain(sleeps(40))
                    .chain([Op::PollEvents])
                    .collect(),
            ),
            reaches: |s| s.evictions > 0 && s.unhealthy > 0,
        },
        NodeSeed {
            name: "host-dies",
            what: "a host joins, then stops answering: its checks are missed and it goes \
                   Healthy → AtRisk → Unhealthy",
            script: script(
                config(false, false),
                [Op::AddSeed(known(0)), Op::Drain, answer(0, None)]
                    .into_iter()
                    .chain(sleeps(10))
                    .chain([Op::PollEvents])
                    .collect(),
            ),
            reaches: |s| s.unhealthy > 0 && s.stats.checks_missed >= 3,
        },
        NodeSeed {
            name: "late",
            what: "ping answered 5 s later, past its 500 ms deadline: dropped as late, PingTimeout",
            script: script(
                config(false, false),
                vec![
                    Op::Ping(known(1)),
                    Op::Drain,
                    Op::Advance(Advance::Secs(5)),
                    answer(0, None),
                    Op::PollEvents,
                ],
            ),
            reaches: |s| s.stats.late == 1,
        },
        NodeSeed {
            name: "wrong-source",
            what: "a ping's response with the right nonce from another address (10.0.0.1:7001): \
                   dropped; then from the dual-stack form of the right address: dropped too",
            script: script(
                config(false, false),
                vec![
                    Op::Ping(known(0)),
                    Op::Drain,
                    answer(0, Some(known(2))),
                    answer(0, Some(known(4))),
                    Op::PollEvents,
                ],
            ),
            reaches: |s| s.stats.wrong_source == 2 && s.pongs == 0,
        },
        NodeSeed {
            name: "self-talk",
            what: "the node's own probe comes back to it as a request: its own address is found",
            script: script(
                config(false, false),
                vec![
                    Op::AddSeed(known(1)),
                    Op::Drain,
                    Op::Request {
                        from: known(3),
                        nonce: NonceChoice::Recent(0),
                        table: None,
                    },
                    Op::Drain,
                ],
            ),
            reaches: |s| s.stats.self_detected == 1,
        },
        NodeSeed {
            name: "answered",
            what: "a health request and a 60-byte peer-table request (budget 2 entries) to a node \
                   with a full table: both answered, the page no longer than its request",
            script: script(
                config(false, false),
                [alive(0), alive(1), alive(2), Op::AddSeed(known(0))]
                    .into_iter()
                    .chain(sleeps(8))
                    .chain([
                        health_request(known(3), 7),
                        table_request(known(3), 0, 60),
                        Op::Drain,
                    ])
                    .collect(),
            ),
            reaches: |s| s.stats.requests_answered >= 2 && s.max_hosts == 3,
        },
        NodeSeed {
            name: "table-past-end",
            what: "a peer-table request for entries from 5 to a node with an empty table: an \
                   empty last page (start 0, total 0; before 3521763, start 5 > total 0, which \
                   did not parse)",
            script: script(
                config(false, false),
                vec![table_request(known(2), 5, 508), Op::Drain],
            ),
            reaches: |s| s.stats.requests_answered == 1,
        },
        NodeSeed {
            name: "queue-full",
            what: "three requests while the transmit queue holds two: the third is dropped",
            script: script(
                config(false, false),
                vec![
                    health_request(known(0), 1),
                    health_request(known(1), 2),
                    health_request(known(2), 3),
                    Op::Drain,
                ],
            ),
            reaches: |s| s.stats.queue_full == 1 && s.stats.requests_answered == 2,
        },
        NodeSeed {
            name: "flipped",
            what: "ping answers with one bit flipped: in the version bits (malformed), in the \
                   nonce (unmatched), in the type (a request with the ping's nonce: answered, as a ping of \
                   its own address must be)",
            script: script(
                config(false, false),
                vec![
                    Op::Ping(known(1)),
                    Op::Drain,
                    Op::Answer {
                        which: 0,
                        from: None,
                        page: Page {
                            start: None,
                            beyond: None,
                            entries: vec![],
                        },
                        // Version 2 (version 1 would be a sealed datagram, counted apart).
                        flips: vec![(0, 0x40)],
                    },
                    Op::Answer {
                        which: 0,
                        from: None,
                        page: Page {
                            start: None,
                            beyond: None,
                            entries: vec![],
                        },
                        flips: vec![(9, 0x01)],
                    },
                    Op::Answer {
                        which: 0,
                        from: None,
                        page: Page {
                            start: None,
                            beyond: None,
                            entries: vec![],
                        },
                        flips: vec![(0, 0x03)],
                    },
                    Op::Drain,
                ],
            ),
            reaches: |s| {
                s.stats.malformed == 1 && s.stats.unmatched == 1 && s.stats.requests_answered == 1
            },
        },
        NodeSeed {
            name: "default-capacities",
            what: "the network seed with the default capacities (32 hosts, 32 pending, 16 queued)",
            script: script(
                config(true, true),
                [
                    alive(0),
                    alive(1),
                    alive(2),
                    alive(3),
                    Op::AddSeed(known(0)),
                ]
                .into_iter()
                .chain(sleeps(12))
                .chain([Op::PollEvents])
                .collect(),
            ),
            reaches: |s| s.max_hosts == 4,
        },
    ]
}

/// `health_node` seeds: scripts written out with [`health_node::encode`], each checked to decode
/// back to itself and to reach what it claims.
fn health_node() -> Vec<Seed> {
    node_seeds()
        .into_iter()
        .map(|seed| {
            let bytes = health_node::encode(&seed.script);
            let decoded = Script::arbitrary_take_rest(Unstructured::new(&bytes))
                .expect("an encoded script decodes");
            assert_eq!(
                decoded, seed.script,
                "seed-{}: encode is not Arbitrary's inverse",
                seed.name
            );
            let summary = health_node::run(&decoded);
            assert!(
                (seed.reaches)(&summary),
                "seed-{} does not reach its goal: {summary:#?}",
                seed.name
            );
            Seed {
                target: "health_node",
                name: seed.name,
                what: seed.what.to_string(),
                bytes,
            }
        })
        .collect()
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = parse_health();
    seeds.extend(roundtrip_health());
    seeds.extend(health_node());
    seeds.extend(crate::seeds_zk::all());
    seeds.extend(crate::seeds_seal::all());
    seeds.extend(crate::seeds_maelstrom::all());
    seeds
}

/// The search goals no seed reached, as `target/name` (reported by the seed test).
pub fn missing_goals(seeds: &[Seed]) -> Vec<String> {
    let goals = ROUNDTRIP_GOALS
        .iter()
        .map(|(name, _, _)| ("roundtrip_health", *name));
    let goals = goals.chain(crate::seeds_zk::goals());
    goals
        .filter(|&(target, name)| !seeds.iter().any(|s| s.target == target && s.name == name))
        .map(|(target, name)| format!("{target}/{name}"))
        .collect()
}
