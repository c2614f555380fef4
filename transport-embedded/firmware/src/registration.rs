//! The firmware's registration in ZooKeeper: an ephemeral node `/sinew/firmware-<MAC>` holding
//! the firmware's health address, alive exactly as long as its session.
//!
//! The node is created once the session is up (with its parent `/sinew`, which may exist
//! already). A create whose outcome is unknown (its connection was lost) is followed by a check
//! after the session is re-attached; a node that exists already is ours if its
//! `ephemeralOwner` is our session, else it belongs to an earlier boot whose session has not
//! expired yet, and the create is retried every second until the server removes it.

use core::fmt::Write;
use core::net::SocketAddr;
use core::time::Duration;

use sinew_proto::heapless::String;
use sinew_proto::time::Instant;
use sinew_proto::zk::session::{Event, SessionState, Xid};
use sinew_proto::zk::{Acl, CreateMode, ErrorCode, ReplyBody};
use sinew_transport_embedded::ZkClient;
use sinew_transport_embedded::embedded_nal::TcpClientStack;

/// The parent of every device's node.
pub const PARENT: &str = "/sinew";
/// How long to wait before trying again after a refusal.
const RETRY: Duration = Duration::from_secs(1);

/// What to ask the server next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
enum Want {
    Nothing,
    Create,
    Check,
}

/// The registration's state, fed with the client's events.
pub struct Registration {
    path: String<40>,
    data: String<32>,
    session_id: i64,
    want: Want,
    retry_at: Instant,
    parent_xid: Option<Xid>,
    create_xid: Option<Xid>,
    exists_xid: Option<Xid>,
    registered: bool,
    ever_registered: bool,
    closed: bool,
}

impl Registration {
    /// The registration of the device with Ethernet address `mac`, whose node holds `addr`.
    pub fn new(mac: [u8; 6], addr: SocketAddr) -> Registration {
        let mut path = String::new();
        let mut data = String::new();
        // Both fit: 16 + 12 characters, and at most 21 for an IPv4 socket address.
        let _ = write!(path, "{PARENT}/firmware-");
        for byte in mac {
            let _ = write!(path, "{byte:02x}");
        }
        let _ = write!(data, "{addr}");
        Registration {
            path,
            data,
            session_id: 0,
            want: Want::Nothing,
            retry_at: Instant::ZERO,
            parent_xid: None,
            create_xid: None,
            exists_xid: None,
            registered: false,
            ever_registered: false,
            closed: false,
        }
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the node exists now, as far as the session knows.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Whether the node was created at some point of this run.
    pub fn was_registered(&self) -> bool {
        self.ever_registered
    }

    /// Whether the session was closed (the server removed the node then).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Takes one event of the client.
    pub fn on_event(&mut self, now: Instant, event: &Event<'_>) {
        match *event {
            Event::Connected {
                session_id,
                timeout_ms,
                reattached,
                ..
            } => {
                defmt::info!(
                    "zk: session {=i64:#x} {=str}, timeout {=i32} ms",
                    session_id,
                    if reattached {
                        "re-attached"
                    } else {
                        "established"
                    },
                    timeout_ms
                );
                self.session_id = session_id;
                if !self.registered && self.want == Want::Nothing && self.create_xid.is_none() {
                    self.want = Want::Create;
                }
            }
            Event::Disconnected { reason } => defmt::warn!("zk: disconnected: {}", reason),
            Event::Expired => {
                defmt::error!(
                    "zk: the session expired; {=str} is gone",
                    self.path.as_str()
                );
                self.registered = false;
            }
            Event::AuthFailed => defmt::error!("zk: authentication failed"),
            Event::Closed => {
                defmt::info!(
                    "zk: session closed; the server removes {=str}",
                    self.path.as_str()
                );
                self.registered = false;
                self.closed = true;
            }
            Event::Watch(watch) => defmt::info!("zk: {}", watch),
            Event::Reply(reply) if Some(reply.xid) == self.parent_xid => {
                self.parent_xid = None;
                match reply.result {
                    Ok(_) | Err(ErrorCode::NodeExists) => {}
                    Err(code) => defmt::warn!("zk: create {=str}: {}", PARENT, code),
                }
            }
            Event::Reply(reply) if Some(reply.xid) == self.create_xid => {
                self.create_xid = None;
                match reply.result {
                    Ok(ReplyBody::Path(path)) => {
                        defmt::info!(
                            "zk: registered {=[u8]:a} = {=str} (ephemeral)",
                            path.as_bytes(),
                            self.data.as_str()
                        );
                        self.set_registered();
                    }
                    Ok(other) => defmt::warn!("zk: unexpected create reply {}", other),
                    // Ours, from before a lost connection, or an earlier boot's.
                    Err(ErrorCode::NodeExists) => self.want = Want::Check,
                    // Unknown outcome: look once the session is back.
                    Err(ErrorCode::ConnectionLoss) => self.want = Want::Check,
                    Err(code) => {
                        defmt::warn!("zk: create {=str}: {}", self.path.as_str(), code);
                        self.retry(now);
                    }
                }
            }
            Event::Reply(reply) if Some(reply.xid) == self.exists_xid => {
                self.exists_xid = None;
                match reply.result {
                    Ok(ReplyBody::Stat(stat)) if stat.ephemeral_owner == self.session_id => {
                        defmt::info!("zk: {=str} is ours already", self.path.as_str());
                        self.set_registered();
                    }
                    Ok(ReplyBody::Stat(stat)) => {
                        defmt::warn!(
                            "zk: {=str} is held by session {=i64:#x}; retrying until it expires",
                            self.path.as_str(),
                            stat.ephemeral_owner
                        );
                        self.retry(now);
                    }
                    Err(ErrorCode::NoNode) => self.want = Want::Create,
                    Err(ErrorCode::ConnectionLoss) => self.want = Want::Check,
                    other => {
                        defmt::warn!("zk: exists {=str}: {}", self.path.as_str(), other);
                        self.retry(now);
                    }
                }
            }
            Event::Reply(reply) => defmt::debug!("zk: reply {}", reply),
            other => defmt::debug!("zk: {}", other),
        }
    }

    fn set_registered(&mut self) {
        self.registered = true;
        self.ever_registered = true;
        self.want = Want::Nothing;
    }

    fn retry(&mut self, now: Instant) {
        self.want = Want::Create;
        self.retry_at = now + RETRY;
    }

    /// Submits what the registration needs next, if the session is up.
    pub fn poll<S, const P: usize, const W: usize, const WB: usize>(
        &mut self,
        now: Instant,
        zk: &mut ZkClient<'_, S, P, W, WB>,
    ) where
        S: TcpClientStack,
        S::Error: defmt::Format,
    {
        if zk.state() != SessionState::Connected || now < self.retry_at {
            return;
        }
        match self.want {
            Want::Nothing => {}
            Want::Create => {
                if self.parent_xid.is_none() {
                    match zk.create(
                        now,
                        PARENT,
                        b"",
                        Acl::OPEN_ACL_UNSAFE,
                        CreateMode::Persistent,
                    ) {
                        Ok(xid) => self.parent_xid = Some(xid),
                        Err(error) => {
                            defmt::warn!("zk: submit: {}", error);
                            self.retry_at = now + RETRY;
                            return;
                        }
                    }
                }
                match zk.create(
                    now,
                    &self.path,
                    self.data.as_bytes(),
                    Acl::OPEN_ACL_UNSAFE,
                    CreateMode::Ephemeral,
                ) {
                    Ok(xid) => {
                        self.create_xid = Some(xid);
                        self.want = Want::Nothing;
                    }
                    Err(error) => {
                        defmt::warn!("zk: submit: {}", error);
                        self.retry_at = now + RETRY;
                    }
                }
            }
            Want::Check => match zk.exists(now, &self.path, false) {
                Ok(xid) => {
                    self.exists_xid = Some(xid);
                    self.want = Want::Nothing;
                }
                Err(error) => {
                    defmt::warn!("zk: submit: {}", error);
                    self.retry_at = now + RETRY;
                }
            },
        }
    }
}
