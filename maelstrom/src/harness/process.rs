//! A node's process: the executable started with piped stdin and stdout, stderr appended to
//! the node's log file; a writer thread per process (so that a paused node that stops reading
//! never blocks the harness) and a reader thread that turns its stdout into [`Event`]s.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use crate::runtime;

/// What a node's process did.
#[derive(Debug)]
pub(crate) enum Event {
    /// It wrote a line on stdout (without the `\n`).
    Line {
        node: usize,
        incarnation: u32,
        line: String,
    },
    /// Its stdout ended (it exited, or was killed).
    Exited { node: usize, incarnation: u32 },
}

/// One running incarnation of a node.
#[derive(Debug)]
pub(crate) struct NodeProcess {
    child: Child,
    stdin: Option<Sender<String>>,
}

/// The command line that starts a node.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) bin: PathBuf,
    pub(crate) args: Vec<String>,
}

impl Launch {
    /// Starts incarnation `incarnation` of node `node`; its lines go to `events`, its stderr
    /// is appended to `log`.
    pub(crate) fn spawn(
        &self,
        node: usize,
        incarnation: u32,
        log: &Path,
        events: Sender<Event>,
    ) -> io::Result<NodeProcess> {
        let stderr: File = OpenOptions::new().create(true).append(true).open(log)?;
        let mut child = Command::new(&self.bin)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(io::Error::other("child without pipes"));
        };
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in rx {
                let written = stdin
                    .write_all(line.as_bytes())
                    .and_then(|()| stdin.write_all(b"\n"))
                    .and_then(|()| stdin.flush());
                if written.is_err() {
                    break;
                }
            }
        });
        // Lines are cut at the runtime's limit, so a node cannot grow the harness unboundedly;
        // a cut line does not parse and is counted as malformed.
        let (lines_tx, lines) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            runtime::read_lines(BufReader::new(stdout), runtime::MAX_LINE_LEN, &lines_tx);
        });
        std::thread::spawn(move || {
            for buf in lines {
                let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                let event = Event::Line {
                    node,
                    incarnation,
                    line,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
            let _ = events.send(Event::Exited { node, incarnation });
        });
        Ok(NodeProcess {
            child,
            stdin: Some(tx),
        })
    }
}

impl NodeProcess {
    /// Queues `line` for the node's stdin (lost if the process is gone).
    pub(crate) fn send(&self, line: String) {
        if let Some(stdin) = &self.stdin {
            let _ = stdin.send(line);
        }
    }

    /// SIGKILL, and reaps it.
    pub(crate) fn kill(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes its stdin: a well-behaved node exits.
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until `until` for it to exit, then kills it.
    pub(crate) fn wait_until(&mut self, until: Instant) {
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill();
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    #[cfg(unix)]
    pub(crate) fn pause(&self, stop: bool) -> io::Result<()> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = i32::try_from(self.child.id()).map_err(io::Error::other)?;
        let signal = if stop {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        kill(Pid::from_raw(pid), signal).map_err(io::Error::from)
    }

    /// Pausing needs Unix signals.
    #[cfg(not(unix))]
    pub(crate) fn pause(&self, _stop: bool) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pausing a process needs Unix signals",
        ))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            #[cfg(unix)]
            let _ = self.pause(false);
            self.kill();
        }
    }
}
