//! What a local `health_node` corpus reaches, goal by goal (not run by default):
//! `cargo test --release --test reach -- --ignored --nocapture` (reads `corpus/health_node/`).

use std::fs;
use std::path::Path;

use sinew_fuzz::health_node;

#[test]
#[ignore = "reads the local fuzz corpus"]
fn health_node_corpus_reach() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/health_node");
    let mut inputs = 0;
    let mut totals = [0u64; 8];
    let names = [
        "hosts_added",
        "pongs",
        "evictions",
        "tables_received",
        "queue_full",
        "table_full",
        "late",
        "self_detected",
    ];
    for file in fs::read_dir(dir).unwrap() {
        let data = fs::read(file.unwrap().path()).unwrap();
        let Some(s) = health_node::check(&data) else {
            continue;
        };
        inputs += 1;
        let seen = [
            s.hosts_added,
            s.pongs,
            s.evictions,
            s.stats.tables_received,
            s.stats.queue_full,
            s.stats.table_full,
            s.stats.late,
            s.stats.self_detected,
        ];
        for (total, n) in totals.iter_mut().zip(seen) {
            *total += u64::from(n > 0);
        }
    }
    println!("{inputs} inputs");
    for (name, total) in names.iter().zip(totals) {
        println!("{name:>16}: reached by {total} inputs");
    }
}

/// `cargo test --release --test reach dht_node -- --ignored --nocapture` (reads
/// `corpus/dht_node/`).
#[test]
#[ignore = "reads the local fuzz corpus"]
fn dht_node_corpus_reach() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/dht_node");
    let (mut inputs, mut messages, mut sent, mut outcomes, mut joined) = (0, 0, 0, 0, 0);
    for file in fs::read_dir(dir).unwrap() {
        let s = sinew_fuzz::dht_node::check(&fs::read(file.unwrap().path()).unwrap());
        inputs += 1;
        messages += s.messages;
        sent += s.sent;
        outcomes += s.outcomes;
        joined += u64::from(s.had_neighbours);
    }
    println!(
        "{inputs} inputs: {messages} messages in, {sent} out, {outcomes} outcomes, \
         {joined} inputs with neighbours"
    );
}
