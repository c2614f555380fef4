//! `sinew zk`: zkCli's commands on one session per run, and the ZooKeeper frame decoders
//! behind `sinew decode zk-request` / `zk-reply`.
//!
//! `args` is the command line, `commands` runs it, `quota` holds the quota commands,
//! `output` renders results (zkCli's text or `--json`), `frames` decodes frames.

pub mod args;
mod commands;
pub mod frames;
pub mod output;
mod quota;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sinew_proto::zk::session::WatcherId;
use sinew_proto::zk::{ErrorCode, RequestBody};
use sinew_transport_std::Error;
use sinew_transport_std::zk::{ClientConfig, OwnedReply, WatchNotification, ZkClient, ZkEvent};

pub use args::{ZkArgs, ZkCommand};
pub use frames::{DecodeError, ReplyOp, parse_op, write_reply, write_request};
pub use output::utc;

use crate::error::{EXIT_FAILED, EXIT_TEMPFAIL, EXIT_UNAVAILABLE, Failure};
use crate::is_set;
use crate::json::Json;
use output::Output;

/// The watcher every watch of a `sinew zk` run is left for.
const WATCHER: WatcherId = WatcherId(1);

/// Runs `sinew zk`; returns the exit code. Results go to `out` (with `--json`, also the
/// `{"error": …}` of a failure); notices about the connection go to `err`; `stdin` is read
/// for data given as `-`.
///
/// # Errors
/// The failure, classified ([`crate::error`]): the caller prints it.
pub fn run(
    args: &ZkArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stdin: &mut dyn Read,
    stop: &AtomicBool,
) -> Result<u8, Failure> {
    let json = args.json;
    let result = run_session(args, out, err, stdin, stop);
    if let (Err(failure), true) = (&result, json) {
        let _ = writeln!(
            out,
            "{}",
            Json::object([(
                "error",
                Json::object([
                    ("message", Json::str(&failure.message)),
                    ("exit", Json::Int(failure.code.into())),
                ]),
            )])
        );
    }
    let _ = out.flush();
    result
}

fn run_session(
    args: &ZkArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stdin: &mut dyn Read,
    stop: &AtomicBool,
) -> Result<u8, Failure> {
    commands::precheck(&args.command)?;
    let timeout = Duration::from_millis(args.timeout);
    let config = ClientConfig::new()
        .with_session_timeout(timeout)
        .with_operation_timeout(timeout);
    let client = ZkClient::connect(&args.server, config).map_err(|e| connect_failure(e, args))?;
    let mut zk = Zk {
        client,
        server: args.server.clone(),
        last_server: None,
        timeout,
        stop,
        err,
    };
    zk.last_server = zk.client.current_server();
    // The first Connected event is no news.
    while let Ok(Some(_)) = zk.client.next_event(Duration::ZERO) {}
    if let Some(auth) = &args.auth {
        zk.client
            .add_auth("digest", auth.as_bytes())
            .map_err(|e| zk.failure(e, "--auth"))?;
    }
    let mut output = Output {
        out,
        json: args.json,
    };
    let result = commands::run(&mut zk, &args.command, &mut output, stdin);
    output.out.flush()?;
    // The work is done (or failed) by now: a close the server does not confirm changes
    // nothing of it, and the session expires on its own.
    let _ = zk.client.close();
    result.map(|()| 0)
}

/// A connected session and what failures name.
pub(crate) struct Zk<'a> {
    pub(crate) client: ZkClient,
    /// The connect string, for messages.
    server: String,
    /// The server of the last connection.
    last_server: Option<SocketAddr>,
    /// The session timeout: also the longest wait for a reply or a reconnection.
    pub(crate) timeout: Duration,
    stop: &'a AtomicBool,
    err: &'a mut dyn Write,
}

impl Zk<'_> {
    /// The server to name: the one connected to last, else the connect string.
    fn server(&self) -> String {
        self.last_server
            .map_or_else(|| self.server.clone(), |a| a.to_string())
    }

    /// Submits `body` (leaving its watch, if it asks for one, for [`WATCHER`]) and waits for
    /// its reply.
    pub(crate) fn call(
        &mut self,
        body: RequestBody<'_>,
        path: &str,
    ) -> Result<OwnedReply, Failure> {
        if let Some(now) = self.client.current_server() {
            self.last_server = Some(now);
        }
        let xid = self
            .client
            .submit_watched(body, WATCHER)
            .map_err(|e| self.failure(e, path))?;
        let timeout = self.timeout;
        let done = self
            .client
            .wait(xid, timeout)
            .map_err(|e| self.failure(e, path))?;
        done.result
            .map_err(|code| self.failure(Error::Zk(code), path))
    }

    /// A blocking operation's error as a failure concerning `path`.
    pub(crate) fn failure(&self, e: Error, path: &str) -> Failure {
        match e {
            Error::Zk(code) => self.zk_failure(code, path),
            Error::Proto(sinew_proto::Error::InvalidPath(p)) => {
                Failure::usage(p.with_path(path).to_string())
            }
            Error::Proto(e) => Failure::failed(format!("{path}: refused locally: {e}")),
            Error::Timeout => Failure::new(
                EXIT_TEMPFAIL,
                format!(
                    "{path}: no reply from {} within {} ms",
                    self.server(),
                    self.timeout.as_millis()
                ),
            ),
            Error::Connect(e) => connect_class(&e),
            Error::Io(e) => Failure::io(self.server(), &e),
            other => Failure::failed(format!("{path}: {other}")),
        }
    }

    /// A ZooKeeper error code as zkCli words it, with its exit class.
    fn zk_failure(&self, code: ErrorCode, path: &str) -> Failure {
        let text = match code {
            ErrorCode::NoNode => format!("Node does not exist: {path}"),
            ErrorCode::NodeExists => format!("Node already exists: {path}"),
            ErrorCode::BadVersion => format!("version No is not valid : {path}"),
            ErrorCode::NotEmpty => format!("Node not empty: {path}"),
            ErrorCode::NoAuth => format!("Insufficient permission : {path}"),
            ErrorCode::ConnectionLoss => {
                return Failure::new(
                    EXIT_UNAVAILABLE,
                    format!(
                        "lost the connection to {} (ConnectionLoss): {path}",
                        self.server()
                    ),
                );
            }
            ErrorCode::SessionExpired | ErrorCode::OperationTimeout | ErrorCode::RequestTimeout => {
                return Failure::new(
                    EXIT_TEMPFAIL,
                    format!("KeeperErrorCode = {code} for {path}"),
                );
            }
            other => format!("KeeperErrorCode = {other} for {path}"),
        };
        Failure::failed(text)
    }

    /// Prints a notice about the connection on stderr (text mode) or as a JSON line.
    fn notice(&mut self, out: &mut Output<'_>, kind: &str, text: &str) -> io::Result<()> {
        if out.json {
            out.json(&Json::object([
                ("connection", Json::str(kind)),
                ("detail", Json::str(text)),
            ]))
        } else {
            writeln!(self.err, "sinew: {text}")
        }
    }

    /// Drives the session until `on_watch` says it has seen what it waited for (`Ok(true)`),
    /// Ctrl-C, or a failure: the session expired, or the connection was lost and not
    /// re-established within the timeout. A lost connection is reported once, and its
    /// re-establishment once.
    pub(crate) fn watch_events(
        &mut self,
        out: &mut Output<'_>,
        path: &str,
        mut on_watch: impl FnMut(&WatchNotification, &mut Output<'_>) -> io::Result<bool>,
    ) -> Result<(), Failure> {
        let mut lost: Option<(Instant, String)> = None;
        loop {
            if let Some((since, why)) = &lost {
                let ending = if is_set(self.stop) {
                    Some(format!(
                        "interrupted after {} ms",
                        since.elapsed().as_millis()
                    ))
                } else if since.elapsed() >= self.timeout {
                    Some(format!(
                        "could not re-establish the session within {} ms",
                        self.timeout.as_millis()
                    ))
                } else {
                    None
                };
                if let Some(ending) = ending {
                    return Err(Failure::new(
                        EXIT_TEMPFAIL,
                        format!(
                            "{path}: lost the connection to {} ({why}) and {ending}",
                            self.server()
                        ),
                    ));
                }
            } else if is_set(self.stop) {
                return Ok(());
            }
            let event = self
                .client
                .next_event(Duration::from_millis(100))
                .map_err(|e| self.failure(e, path))?;
            match event {
                None => {}
                Some(ZkEvent::Watch(w)) if on_watch(&w, out)? => return Ok(()),
                Some(ZkEvent::Watch(_)) => {}
                Some(ZkEvent::Disconnected(_)) if lost.is_some() => {}
                Some(ZkEvent::Disconnected(reason)) => {
                    let why = reason.to_string();
                    let text = format!(
                        "lost the connection to {} ({why}); reconnecting for up to {} ms",
                        self.server(),
                        self.timeout.as_millis()
                    );
                    self.notice(out, "lost", &text)?;
                    lost = Some((Instant::now(), why));
                }
                Some(ZkEvent::Connected { reattached, .. }) => {
                    self.last_server = self.client.current_server();
                    if lost.take().is_some() {
                        let text = format!(
                            "reconnected to {}{}",
                            self.server(),
                            if reattached {
                                " (session re-attached, watches kept)"
                            } else {
                                ""
                            }
                        );
                        self.notice(out, "reconnected", &text)?;
                    }
                }
                Some(ZkEvent::Expired) => {
                    return Err(Failure::new(
                        EXIT_TEMPFAIL,
                        format!("{path}: the session expired (its watches are gone)"),
                    ));
                }
                Some(ZkEvent::AuthFailed) => {
                    return Err(Failure::failed(format!(
                        "{path}: authentication failed (the session is over)"
                    )));
                }
                Some(ZkEvent::Closed) => {
                    return Err(Failure::new(
                        EXIT_UNAVAILABLE,
                        format!("{path}: the session was closed"),
                    ));
                }
                // An event this version does not know of is no reason to stop watching.
                Some(_) => {}
            }
        }
    }
}

/// A failure to connect at all, classified.
fn connect_failure(e: Error, args: &ZkArgs) -> Failure {
    match e {
        Error::Connect(e) => connect_class(&e),
        Error::Proto(sinew_proto::Error::InvalidPath(p)) => {
            let chroot = args.server.find('/').map_or("", |i| &args.server[i..]);
            Failure::usage(format!(
                "--server {}: chroot {}",
                args.server,
                p.with_path(chroot)
            ))
        }
        Error::Io(e) if e.kind() == io::ErrorKind::InvalidInput => {
            Failure::usage(format!("--server {}: {e}", args.server))
        }
        Error::Io(e) => Failure::new(EXIT_UNAVAILABLE, format!("--server {}: {e}", args.server)),
        Error::Zk(code) => Failure::new(
            EXIT_TEMPFAIL,
            format!("{}: {code} while connecting", args.server),
        ),
        other => Failure::failed(format!("{}: {other}", args.server)),
    }
}

/// Every server failed: unreachable (69), or timed out (75) when every attempt timed out.
fn connect_class(e: &sinew_transport_std::ConnectError) -> Failure {
    let all_timed_out = !e.attempts.is_empty()
        && e.attempts
            .iter()
            .all(|(_, e)| e.kind() == io::ErrorKind::TimedOut);
    let code = if all_timed_out {
        EXIT_TEMPFAIL
    } else {
        EXIT_UNAVAILABLE
    };
    Failure::new(code, e.to_string())
}

/// Whether a failure is the protocol's no (exit 1), for callers that tolerate some.
pub(crate) fn is_refusal(f: &Failure) -> bool {
    f.code == EXIT_FAILED
}
