//! The stdin/stdout runtime: one line in, the node, lines out (flushed); logs on stderr.
//!
//! A reader thread hands lines to the loop, which waits for the next line or the node's next
//! deadline, whichever comes first. A line that is not a message is answered with an error when
//! it names a sender and a `msg_id`, and otherwise dropped and counted on stderr; nothing in a
//! line can end the process. A line longer than [`MAX_LINE_LEN`] is cut there (the rest, to its
//! newline, is skipped without being stored), so it fails to parse and is treated the same way:
//! no input can make the node hold more than that per line. End of input ends it, with a
//! summary on stderr.

use std::io::{self, BufRead, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant as StdInstant};

use sinew_proto::time::Instant;

use crate::{Node, Workload};

/// The longest line kept: 8 MiB, far above any message of Maelstrom's workloads (a read of
/// every broadcast value of a long run is a few hundred KiB).
pub const MAX_LINE_LEN: usize = 8 << 20;

/// Runs `node` on the process's stdin and stdout until stdin ends.
pub fn run<W: Workload>(node: Node<W>) -> io::Result<()> {
    let stdin = io::stdin();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || read_lines(stdin.lock(), MAX_LINE_LEN, &tx));
    let stdout = io::stdout();
    let stderr = io::stderr();
    drive(node, rx, &mut stdout.lock(), &mut stderr.lock())
}

/// Sends every line of `input` (without cutting it from its newline) on `tx`, each cut at
/// `max` bytes, until the input ends, fails, or the receiver is gone. The part of a line past
/// `max` is read and thrown away as it comes, never stored.
pub fn read_lines(mut input: impl BufRead, max: usize, tx: &mpsc::Sender<Vec<u8>>) {
    loop {
        let mut line = Vec::new();
        match io::Read::take(&mut input, max as u64).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.len() == max && line.last() != Some(&b'\n') && !skip_line(&mut input) {
            // The input ended inside the overlong line: it is still a line.
            let _ = tx.send(line);
            return;
        }
        if tx.send(line).is_err() {
            return;
        }
    }
}

/// Reads and drops the input up to and including the next newline; `false` if the input
/// ended (or failed) first.
fn skip_line(input: &mut impl BufRead) -> bool {
    loop {
        let (used, found) = match input.fill_buf() {
            Ok([]) | Err(_) => return false,
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            },
        };
        input.consume(used);
        if found {
            return true;
        }
    }
}

/// The loop of [`run`], on any line source and writers (for tests).
pub fn drive<W: Workload>(
    mut node: Node<W>,
    lines: mpsc::Receiver<Vec<u8>>,
    out: &mut impl Write,
    log: &mut impl Write,
) -> io::Result<()> {
    let epoch = StdInstant::now();
    let now =
        || Instant::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX));
    let mut dropped = 0;
    loop {
        let wait = match node.poll_timeout() {
            Some(deadline) => deadline.saturating_duration_since(now()),
            None => Duration::from_secs(3600),
        };
        let sent = match lines.recv_timeout(wait) {
            Ok(line) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                node.handle_line(now(), &line)
            }
            Err(RecvTimeoutError::Timeout) => node.handle_timeout(now()),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for line in &sent {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        let stats = node.stats();
        if stats.dropped != dropped {
            dropped = stats.dropped;
            let _ = writeln!(
                log,
                "sinew-maelstrom: dropped a line that could not be answered ({dropped} so far)"
            );
        }
    }
    let stats = node.stats();
    let _ = writeln!(
        log,
        "sinew-maelstrom: end of input: {} lines, {} malformed answered, {} dropped, {} refused",
        stats.lines, stats.answered_malformed, stats.dropped, stats.rejected
    );
    Ok(())
}

/// The body of a workload binary: runs the node, and on an i/o error prints it in the CLI's
/// style and exits 69 (output closed) or 1.
pub fn main<W: Workload>(node: Node<W>) -> std::process::ExitCode {
    match run(node) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "sinew: stdout: {e}");
            let code = if e.kind() == io::ErrorKind::BrokenPipe {
                69
            } else {
                1
            };
            std::process::ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        // A tiny buffer, so that lines cross buffer boundaries.
        read_lines(io::BufReader::with_capacity(3, input), max, &tx);
        drop(tx);
        rx.iter().collect()
    }

    #[test]
    fn test_lines_are_cut_at_the_limit_and_the_rest_skipped() {
        let got = lines(b"short\n0123456789abcdef\nnext\n", 8);
        assert_eq!(got, [&b"short\n"[..], b"01234567", b"next\n"]);
        // A line of exactly the limit, newline included, is whole.
        assert_eq!(lines(b"1234567\nx", 8), [&b"1234567\n"[..], b"x"]);
        // The input ends inside an overlong line.
        assert_eq!(lines(b"0123456789", 8), [&b"01234567"[..]]);
        assert!(lines(b"", 8).is_empty());
    }

    #[test]
    fn test_an_overlong_request_is_dropped_and_counted_and_the_node_goes_on() {
        use crate::echo::Echo;
        let (tx, rx) = mpsc::channel();
        let mut input = br#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1"]}}"#.to_vec();
        input.push(b'\n');
        // An echo whose body runs past the limit: cut, it no longer parses, and a cut line
        // names no sender to answer.
        let big = format!(
            r#"{{"src":"c1","dest":"n1","body":{{"type":"echo","msg_id":2,"echo":"{}"}}}}"#,
            "x".repeat(4096)
        );
        input.extend_from_slice(big.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(
            br#"{"src":"c1","dest":"n1","body":{"type":"echo","msg_id":3,"echo":"ok"}}"#,
        );
        input.push(b'\n');
        read_lines(&input[..], 1024, &tx);
        drop(tx);
        let (mut out, mut log) = (Vec::new(), Vec::new());
        drive(Node::new(Echo), rx, &mut out, &mut log).unwrap();
        let out = String::from_utf8(out).unwrap();
        let replies: Vec<&str> = out.lines().collect();
        assert_eq!(replies.len(), 2, "{out}");
        assert!(replies[0].contains("init_ok"));
        assert!(replies[1].contains(r#""in_reply_to":3"#), "{}", replies[1]);
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.contains("3 lines, 0 malformed answered, 1 dropped"),
            "{log}"
        );
    }
}
