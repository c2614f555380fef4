//! The blocking operations of a [`ZkClient`]: each drives the client on this thread with a
//! `Poll` of its own ([`ZkClient::run_until`]) until its outcome has come, and refuses, before
//! sending anything, on a client registered with a caller's `Poll`.

use std::time::Duration;

use sinew_proto::zk::session::{SessionState, WatcherId, Xid};
use sinew_proto::zk::{
    Acl, AddWatchMode, AddWatchRequest, CreateMode, CreateRequest, ErrorCode, List, MultiOp,
    OpCode, PathRequest, PathVersionRequest, PathWatchRequest, RequestBody, SetAclRequest,
    SetDataRequest, Stat, WatcherType, WatchesRequest, ZkStr,
};

use super::{AclEntry, ClientIdentity, Completion, OpResult, OwnedReply, ZkClient, ZkEvent};
use crate::adapter;
use crate::{Error, Result};

impl ZkClient {
    /// Gives the error [`run_until`](Self::run_until) gives on a client registered with a
    /// caller's `Poll`, before a blocking operation submits anything.
    fn refuse_if_shared(&mut self) -> Result<()> {
        if self.core.registration.is_shared() {
            // It refuses at once, without a step.
            adapter::run_until(self, Duration::ZERO, |_| true)?;
        }
        Ok(())
    }

    /// Drives the client until request `xid`'s outcome has come and returns it; it is kept
    /// for this call even with a handler. Given up after `timeout`: the outcome is then
    /// dropped when it comes.
    fn await_outcome(&mut self, xid: Xid, timeout: Duration) -> Result<Completion> {
        self.outcomes.claimed.insert(xid);
        let came = self.run_until(timeout, |zk| zk.outcomes.completions.contains_key(&xid));
        if let Ok(true) = came
            && let Some(done) = self.outcomes.completions.remove(&xid)
        {
            return Ok(done);
        }
        self.outcomes.claimed.remove(&xid);
        self.outcomes.abandoned.insert(xid);
        Err(came.err().unwrap_or(Error::Timeout))
    }

    /// The outcome of request `xid`, if it has been kept (taken once). With a handler set,
    /// only outcomes kept before it was set are found here.
    pub fn take_completion(&mut self, xid: Xid) -> Option<Completion> {
        self.outcomes.completions.remove(&xid)
    }

    /// Drives the client until request `xid` has its outcome, and takes it.
    ///
    /// # Errors
    /// [`Error::Timeout`] after `timeout` (the request's outcome is then dropped when it
    /// comes, on every path); [`Error::Io`] of kind `Unsupported` with a handler set (unless
    /// the outcome was kept before it was set), and as [`run_until`](Self::run_until).
    pub fn wait(&mut self, xid: Xid, timeout: Duration) -> Result<Completion> {
        if let Some(done) = self.outcomes.completions.remove(&xid) {
            return Ok(done);
        }
        self.outcomes.refuse_if_handler()?;
        self.refuse_if_shared()?;
        self.await_outcome(xid, timeout)
    }

    /// The next event other than a reply (watch notifications, connection changes), driving
    /// the client at most `timeout` for one (one step if it is zero).
    ///
    /// # Errors
    /// [`Error::Io`] of kind `Unsupported` with a handler set (unless events were kept before
    /// it was set), and as [`run_until`](Self::run_until).
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<ZkEvent>> {
        if let Some(event) = self.outcomes.events.pop_front() {
            return Ok(Some(event));
        }
        self.outcomes.refuse_if_handler()?;
        self.run_until(timeout, |zk| !zk.outcomes.events.is_empty())?;
        Ok(self.outcomes.events.pop_front())
    }

    /// Drives the client until the session is connected, every server has failed, or
    /// `timeout` passes.
    ///
    /// A server that refuses the connection or cannot be reached fails at once and the next
    /// is tried at once; a silent one fails after the connect timeout
    /// ([`ClientConfig::connect_timeout`](super::ClientConfig::connect_timeout)).
    ///
    /// # Errors
    /// [`Error::Connect`] with what happened at each server (a server still silent, or never
    /// tried, when `timeout` passed: a timeout error) once every server failed since this
    /// call, or after `timeout`; [`Error::Zk`] with [`ErrorCode::SessionExpired`],
    /// [`ErrorCode::AuthFailed`] or [`ErrorCode::ConnectionLoss`] (closed) if the session
    /// ended; as [`run_until`](Self::run_until).
    pub fn wait_connected(&mut self, timeout: Duration) -> Result<()> {
        self.core.attempts.clear();
        self.run_until(timeout, |zk| {
            zk.state() == SessionState::Connected
                || ended(zk.state()).is_some()
                || zk.core.attempts.covers(&zk.core.servers)
        })?;
        if self.state() == SessionState::Connected {
            return Ok(());
        }
        if let Some(code) = ended(self.state()) {
            return Err(Error::Zk(code));
        }
        let core = &mut self.core;
        Err(Error::Connect(core.attempts.take(
            &core.servers,
            core.current,
            timeout,
        )))
    }

    /// Submits `body` and waits for its reply (the operation timeout at most).
    ///
    /// # Errors
    /// [`Error::Zk`] with the reply's error, and as [`submit`](Self::submit) and
    /// [`wait`](Self::wait).
    pub fn call(&mut self, body: RequestBody<'_>) -> Result<OwnedReply> {
        self.call_watched(body, WatcherId::DEFAULT)
    }

    fn call_watched(&mut self, body: RequestBody<'_>, watcher: WatcherId) -> Result<OwnedReply> {
        self.refuse_if_shared()?;
        let xid = self.submit_watched(body, watcher)?;
        let timeout = self.operation_timeout;
        Ok(self.await_outcome(xid, timeout)?.result?)
    }

    /// Creates a node; returns its path (with the sequence number for a sequential mode).
    ///
    /// # Errors
    /// [`Error::Zk`]: `NodeExists`, `NoNode` (no parent), `NoChildrenForEphemerals`,
    /// `NoAuth`, `InvalidACL`, …
    pub fn create(
        &mut self,
        path: &str,
        data: &[u8],
        acl: &[Acl<'_>],
        mode: CreateMode,
    ) -> Result<String> {
        match self.call(RequestBody::Create(create_request(path, data, acl, mode)))? {
            OwnedReply::Path(path) => Ok(path),
            _ => Err(Error::UnexpectedReply(OpCode::Create)),
        }
    }

    /// Creates a node (create2); returns its path and `Stat`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create2(
        &mut self,
        path: &str,
        data: &[u8],
        acl: &[Acl<'_>],
        mode: CreateMode,
    ) -> Result<(String, Stat)> {
        match self.call(RequestBody::Create2(create_request(path, data, acl, mode)))? {
            OwnedReply::Created { path, stat } => Ok((path, stat)),
            _ => Err(Error::UnexpectedReply(OpCode::Create2)),
        }
    }

    /// A node's data and `Stat`; with `watch`, leaves a one-shot data watch for that watcher.
    ///
    /// # Errors
    /// [`Error::Zk`] with `NoNode`, `NoAuth`, …
    pub fn get_data(&mut self, path: &str, watch: Option<WatcherId>) -> Result<(Vec<u8>, Stat)> {
        let body = RequestBody::GetData(path_watch(path, watch.is_some()));
        match self.call_watched(body, watch.unwrap_or_default())? {
            OwnedReply::Data { data, stat } => Ok((data.unwrap_or_default(), stat)),
            _ => Err(Error::UnexpectedReply(OpCode::GetData)),
        }
    }

    /// Sets a node's data if its version is `version` (-1: any); returns the new `Stat`.
    ///
    /// # Errors
    /// [`Error::Zk`] with `NoNode`, `BadVersion`, `NoAuth`, …
    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> Result<Stat> {
        let body = RequestBody::SetData(SetDataRequest {
            path: ZkStr::new(path),
            data: Some(data),
            version,
        });
        match self.call(body)? {
            OwnedReply::Stat(stat) => Ok(stat),
            _ => Err(Error::UnexpectedReply(OpCode::SetData)),
        }
    }

    /// Deletes a node if its version is `version` (-1: any).
    ///
    /// # Errors
    /// [`Error::Zk`] with `NoNode`, `BadVersion`, `NotEmpty`, `NoAuth`, …
    pub fn delete(&mut self, path: &str, version: i32) -> Result<()> {
        let body = RequestBody::Delete(PathVersionRequest {
            path: ZkStr::new(path),
            version,
        });
        self.call(body).map(|_| ())
    }

    /// A node's `Stat`, `None` if it does not exist; with `watch`, leaves a one-shot watch
    /// (a data watch if the node exists, an exist watch if not).
    ///
    /// # Errors
    /// [`Error::Zk`] for errors other than `NoNode`.
    pub fn exists(&mut self, path: &str, watch: Option<WatcherId>) -> Result<Option<Stat>> {
        let body = RequestBody::Exists(path_watch(path, watch.is_some()));
        match self.call_watched(body, watch.unwrap_or_default()) {
            Ok(OwnedReply::Stat(stat)) => Ok(Some(stat)),
            Ok(_) => Err(Error::UnexpectedReply(OpCode::Exists)),
            Err(Error::Zk(ErrorCode::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A node's children (names); with `watch`, leaves a one-shot child watch.
    ///
    /// # Errors
    /// [`Error::Zk`] with `NoNode`, `NoAuth`, …
    pub fn get_children(&mut self, path: &str, watch: Option<WatcherId>) -> Result<Vec<String>> {
        let body = RequestBody::GetChildren(path_watch(path, watch.is_some()));
        match self.call_watched(body, watch.unwrap_or_default())? {
            OwnedReply::Children(children) => Ok(children),
            _ => Err(Error::UnexpectedReply(OpCode::GetChildren)),
        }
    }

    /// A node's children (names) and its `Stat` (getChildren2).
    ///
    /// # Errors
    /// As [`get_children`](Self::get_children).
    pub fn get_children2(
        &mut self,
        path: &str,
        watch: Option<WatcherId>,
    ) -> Result<(Vec<String>, Stat)> {
        let body = RequestBody::GetChildren2(path_watch(path, watch.is_some()));
        match self.call_watched(body, watch.unwrap_or_default())? {
            OwnedReply::Children2 { children, stat } => Ok((children, stat)),
            _ => Err(Error::UnexpectedReply(OpCode::GetChildren2)),
        }
    }

    /// A node's ACL and `Stat`.
    ///
    /// # Errors
    /// [`Error::Zk`] with `NoNode`, …
    pub fn get_acl(&mut self, path: &str) -> Result<(Vec<AclEntry>, Stat)> {
        let body = RequestBody::GetAcl(PathRequest {
            path: ZkStr::new(path),
        });
        match self.call(body)? {
            OwnedReply::Acl { acl, stat } => Ok((acl, stat)),
            _ => Err(Error::UnexpectedReply(OpCode::GetAcl)),
        }
    }

    /// Sets a node's ACL if its ACL version is `version` (-1: any); returns the new `Stat`.
    ///
    /// # Errors
    /// [`Error::Zk`] with `NoNode`, `BadVersion`, `NoAuth`, `InvalidACL`, …
    pub fn set_acl(&mut self, path: &str, acl: &[Acl<'_>], version: i32) -> Result<Stat> {
        let body = RequestBody::SetAcl(SetAclRequest {
            path: ZkStr::new(path),
            acl: List::from_slice(acl),
            version,
        });
        match self.call(body)? {
            OwnedReply::Stat(stat) => Ok(stat),
            _ => Err(Error::UnexpectedReply(OpCode::SetAcl)),
        }
    }

    /// Runs write operations as one transaction. An aborted transaction is not an error: every
    /// result is then an [`OpResult::Error`] (see there).
    ///
    /// # Errors
    /// [`Error::Zk`] only when the whole request failed (connection loss, …).
    pub fn multi(&mut self, ops: &[MultiOp<'_>]) -> Result<Vec<OpResult>> {
        match self.call(RequestBody::Multi(List::from_slice(ops)))? {
            OwnedReply::Multi(results) => Ok(results),
            _ => Err(Error::UnexpectedReply(OpCode::Multi)),
        }
    }

    /// Runs read operations (getData, getChildren) in one request; each has its own result.
    ///
    /// # Errors
    /// As [`multi`](Self::multi).
    pub fn multi_read(&mut self, ops: &[MultiOp<'_>]) -> Result<Vec<OpResult>> {
        match self.call(RequestBody::MultiRead(List::from_slice(ops)))? {
            OwnedReply::Multi(results) => Ok(results),
            _ => Err(Error::UnexpectedReply(OpCode::MultiRead)),
        }
    }

    /// Adds a persistent (recursive) watch on `path` for `watcher`; it fires until removed and
    /// survives reconnects.
    ///
    /// # Errors
    /// [`Error::Zk`] with the server's error.
    pub fn add_watch(&mut self, path: &str, mode: AddWatchMode, watcher: WatcherId) -> Result<()> {
        let body = RequestBody::AddWatch(AddWatchRequest {
            path: ZkStr::new(path),
            mode,
        });
        match self.call_watched(body, watcher)? {
            OwnedReply::Status(ErrorCode::Ok) | OwnedReply::Empty => Ok(()),
            OwnedReply::Status(code) => Err(Error::Zk(code)),
            _ => Err(Error::UnexpectedReply(OpCode::AddWatch)),
        }
    }

    /// Removes this session's watches of `watcher_type` on `path` (locally at once, then on
    /// the server).
    ///
    /// # Errors
    /// [`Error::Zk`] with `NoWatcher` if the server had none.
    pub fn remove_watches(&mut self, path: &str, watcher_type: WatcherType) -> Result<()> {
        let body = RequestBody::RemoveWatches(WatchesRequest {
            path: ZkStr::new(path),
            watcher_type,
        });
        self.call(body).map(|_| ())
    }

    /// Waits until the server this client is connected to has caught up with the leader.
    ///
    /// # Errors
    /// [`Error::Zk`] with the server's error.
    pub fn sync(&mut self, path: &str) -> Result<String> {
        let body = RequestBody::Sync(PathRequest {
            path: ZkStr::new(path),
        });
        match self.call(body)? {
            OwnedReply::Path(path) => Ok(path),
            _ => Err(Error::UnexpectedReply(OpCode::Sync)),
        }
    }

    /// The identities this session is authenticated as (whoAmI, ZooKeeper 3.7+).
    ///
    /// # Errors
    /// [`Error::Zk`] with `Unimplemented` from older servers (which then close the
    /// connection).
    pub fn whoami(&mut self) -> Result<Vec<ClientIdentity>> {
        match self.call(RequestBody::WhoAmI)? {
            OwnedReply::WhoAmI(ids) => Ok(ids),
            _ => Err(Error::UnexpectedReply(OpCode::WhoAmI)),
        }
    }

    /// This session's ephemeral nodes whose path starts with `prefix`.
    ///
    /// # Errors
    /// [`Error::Zk`] with the server's error.
    pub fn get_ephemerals(&mut self, prefix: &str) -> Result<Vec<String>> {
        let body = RequestBody::GetEphemerals(PathRequest {
            path: ZkStr::new(prefix),
        });
        match self.call(body)? {
            OwnedReply::Children(paths) => Ok(paths),
            _ => Err(Error::UnexpectedReply(OpCode::GetEphemerals)),
        }
    }

    /// The number of descendants of a node.
    ///
    /// # Errors
    /// [`Error::Zk`] with `NoNode`, …
    pub fn get_all_children_number(&mut self, path: &str) -> Result<i32> {
        let body = RequestBody::GetAllChildrenNumber(PathRequest {
            path: ZkStr::new(path),
        });
        match self.call(body)? {
            OwnedReply::Count(n) => Ok(n),
            _ => Err(Error::UnexpectedReply(OpCode::GetAllChildrenNumber)),
        }
    }

    /// Closes the session (ephemeral nodes go at once) and waits for the server to confirm.
    /// On a client registered with a caller's `Poll`, close without waiting with
    /// `session_mut().close(clock().now())`; the close's reply and [`ZkEvent::Closed`] then go
    /// down the chosen path.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the server does not answer within the operation timeout; as
    /// [`run_until`](Self::run_until).
    pub fn close(&mut self) -> Result<()> {
        if self.state().is_terminal() {
            return Ok(());
        }
        self.refuse_if_shared()?;
        let now = self.core.clock.now();
        let xid = self.core.session.close(now)?;
        let timeout = self.operation_timeout;
        let result = self.await_outcome(xid, timeout);
        // Let the socket go.
        self.flush()?;
        match result {
            Ok(_) => Ok(()),
            Err(_) if self.state() == SessionState::Closed => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn path_watch(path: &str, watch: bool) -> PathWatchRequest<'_> {
    PathWatchRequest {
        path: ZkStr::new(path),
        watch,
    }
}

fn create_request<'a>(
    path: &'a str,
    data: &'a [u8],
    acl: &'a [Acl<'a>],
    mode: CreateMode,
) -> CreateRequest<'a> {
    CreateRequest {
        path: ZkStr::new(path),
        data: Some(data),
        acl: List::from_slice(acl),
        mode,
    }
}

/// The [`Error::Zk`] code of a session state that ended the session (or is ending it).
fn ended(state: SessionState) -> Option<ErrorCode> {
    match state {
        SessionState::Expired => Some(ErrorCode::SessionExpired),
        SessionState::AuthFailed => Some(ErrorCode::AuthFailed),
        SessionState::Closed | SessionState::Closing => Some(ErrorCode::ConnectionLoss),
        _ => None,
    }
}
