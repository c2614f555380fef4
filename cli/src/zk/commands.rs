//! What each `sinew zk` command does on the session, and what it prints.

use std::collections::VecDeque;
use std::io::Read;

use sinew_proto::zk::path::validate_path;
use sinew_proto::zk::{
    Acl, AddWatchMode, CreateMode, CreateRequest, CreateTtlRequest, Id, List, MultiOp, PathRequest,
    PathVersionRequest, PathWatchRequest, RequestBody, SetDataRequest, Stat, WatcherType, ZkStr,
};
use sinew_transport_std::zk::{OpResult, OwnedReply, WatchNotification};

use super::args::{AclArg, ZkCommand, parse_acl, read_data};
use super::output::{Output, acl_json, data_fields, render_data, stat_json, write_acl, write_stat};
use super::{WATCHER, Zk, quota};
use crate::error::Failure;
use crate::json::Json;

/// Runs one command on the session.
pub(super) fn run(
    zk: &mut Zk<'_>,
    command: &ZkCommand,
    out: &mut Output<'_>,
    stdin: &mut dyn Read,
) -> Result<(), Failure> {
    match command {
        ZkCommand::Create {
            ephemeral,
            sequential,
            container,
            ttl,
            file,
            path,
            rest,
        } => {
            let (data_arg, acl_arg) = match (file.is_some(), rest.as_slice()) {
                (_, []) => (None, None),
                (true, [acl]) => (None, Some(acl.as_str())),
                (false, [data]) => (Some(data.as_str()), None),
                (false, [data, acl]) => (Some(data.as_str()), Some(acl.as_str())),
                _ => {
                    return Err(Failure::usage(
                        "create: give `path [data] [acl]`, or with -f FILE `path [acl]`",
                    ));
                }
            };
            let data = read_data(data_arg, file.as_deref(), stdin)?;
            let acl = match acl_arg {
                Some(text) => parse_acl(text)?,
                None => open_acl(),
            };
            let mode = match (*ephemeral, *sequential, *container, ttl.is_some()) {
                (_, _, true, _) => CreateMode::Container,
                (false, false, _, true) => CreateMode::PersistentWithTtl,
                (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
                (false, false, _, _) => CreateMode::Persistent,
                (true, false, _, _) => CreateMode::Ephemeral,
                (false, true, _, _) => CreateMode::PersistentSequential,
                (true, true, _, _) => CreateMode::EphemeralSequential,
            };
            let created = create(zk, path, data.as_deref(), &acl, mode, *ttl)?;
            if out.json {
                out.json(&Json::object([("created", Json::str(&created))]))?;
            } else {
                out.line(format_args!("Created {created}"))?;
            }
        }
        ZkCommand::Get { stat, watch, path } => {
            let reply = zk.call(RequestBody::GetData(path_watch(path, *watch)), path)?;
            let OwnedReply::Data { data, stat: node } = reply else {
                return Err(unexpected(path));
            };
            if out.json {
                let mut fields = vec![("path".to_string(), Json::str(path))];
                fields.extend(data_fields(data.as_deref()));
                if *stat {
                    fields.push(("stat".to_string(), stat_json(&node)));
                }
                out.json(&Json::Object(fields))?;
            } else {
                out.line(render_data(data.as_deref()))?;
                if *stat {
                    write_stat(&node, out.out)?;
                }
            }
            if *watch {
                wait_one_watch(zk, out, path)?;
            }
        }
        ZkCommand::Set {
            stat,
            version,
            file,
            path,
            data,
        } => {
            let data = read_data(data.as_deref(), file.as_deref(), stdin)?.unwrap_or_default();
            let body = RequestBody::SetData(SetDataRequest {
                path: ZkStr::new(path),
                data: Some(&data),
                version: version.unwrap_or(-1),
            });
            let node = expect_stat(zk.call(body, path)?, path)?;
            if out.json {
                out.json(&Json::object([
                    ("path", Json::str(path)),
                    ("stat", stat_json(&node)),
                ]))?;
            } else if *stat {
                write_stat(&node, out.out)?;
            }
        }
        ZkCommand::Delete { version, path } => {
            let body = RequestBody::Delete(PathVersionRequest {
                path: ZkStr::new(path),
                version: version.unwrap_or(-1),
            });
            zk.call(body, path)?;
            if out.json {
                out.json(&Json::object([("deleted", Json::strings([path.as_str()]))]))?;
            }
        }
        ZkCommand::Deleteall { batch, path } => {
            let deleted = delete_all(zk, path, *batch as usize)?;
            if out.json {
                out.json(&Json::object([("deleted", Json::strings(deleted))]))?;
            }
        }
        ZkCommand::Ls {
            stat,
            watch,
            recursive,
            path,
        } => {
            if *recursive {
                let all = subtree(zk, path)?;
                if out.json {
                    out.json(&Json::object([("paths", Json::strings(all))]))?;
                } else {
                    for p in &all {
                        out.line(p)?;
                    }
                }
            } else {
                let body = RequestBody::GetChildren2(path_watch(path, *watch));
                let OwnedReply::Children2 {
                    mut children,
                    stat: node,
                } = zk.call(body, path)?
                else {
                    return Err(unexpected(path));
                };
                children.sort();
                if out.json {
                    let mut fields = vec![
                        ("path".to_string(), Json::str(path)),
                        ("children".to_string(), Json::strings(children)),
                    ];
                    if *stat {
                        fields.push(("stat".to_string(), stat_json(&node)));
                    }
                    out.json(&Json::Object(fields))?;
                } else {
                    out.line(format_args!("[{}]", children.join(", ")))?;
                    if *stat {
                        write_stat(&node, out.out)?;
                    }
                }
            }
            if *watch {
                wait_one_watch(zk, out, path)?;
            }
        }
        ZkCommand::Stat { watch, path } => {
            let body = RequestBody::Exists(path_watch(path, *watch));
            let node = expect_stat(zk.call(body, path)?, path)?;
            if out.json {
                out.json(&Json::object([
                    ("path", Json::str(path)),
                    ("stat", stat_json(&node)),
                ]))?;
            } else {
                write_stat(&node, out.out)?;
            }
            if *watch {
                wait_one_watch(zk, out, path)?;
            }
        }
        ZkCommand::GetAcl { stat, path } => {
            let (acl, node) = zk.client.get_acl(path).map_err(|e| zk.failure(e, path))?;
            if out.json {
                let mut fields = vec![
                    ("path".to_string(), Json::str(path)),
                    ("acl".to_string(), acl_json(&acl)),
                ];
                if *stat {
                    fields.push(("stat".to_string(), stat_json(&node)));
                }
                out.json(&Json::Object(fields))?;
            } else {
                write_acl(&acl, out.out)?;
                if *stat {
                    write_stat(&node, out.out)?;
                }
            }
        }
        ZkCommand::SetAcl {
            stat,
            version,
            recursive,
            path,
            acl,
        } => {
            let acl = parse_acl(acl)?;
            let entries = acls(&acl);
            let version = version.unwrap_or(-1);
            let paths = if *recursive {
                subtree(zk, path)?
            } else {
                vec![path.clone()]
            };
            let mut first = None;
            for p in &paths {
                let node = zk
                    .client
                    .set_acl(p, &entries, version)
                    .map_err(|e| zk.failure(e, p))?;
                first.get_or_insert(node);
            }
            if out.json {
                let mut fields = vec![("paths".to_string(), Json::strings(paths))];
                if let Some(node) = first {
                    fields.push(("stat".to_string(), stat_json(&node)));
                }
                out.json(&Json::Object(fields))?;
            } else if let (true, Some(node)) = (*stat, first) {
                write_stat(&node, out.out)?;
            }
        }
        ZkCommand::Sync { path } => {
            zk.client.sync(path).map_err(|e| zk.failure(e, path))?;
            if out.json {
                out.json(&Json::object([("synced", Json::str(path))]))?;
            } else {
                out.line("Sync is OK")?;
            }
        }
        ZkCommand::GetEphemerals { path } => {
            let body = RequestBody::GetEphemerals(PathRequest {
                path: ZkStr::new(path),
            });
            let OwnedReply::Children(mut paths) = zk.call(body, path)? else {
                return Err(unexpected(path));
            };
            paths.sort();
            if out.json {
                out.json(&Json::object([("ephemerals", Json::strings(paths))]))?;
            } else {
                out.line(format_args!("[{}]", paths.join(", ")))?;
            }
        }
        ZkCommand::GetAllChildrenNumber { path } => {
            let n = zk
                .client
                .get_all_children_number(path)
                .map_err(|e| zk.failure(e, path))?;
            if out.json {
                out.json(&Json::object([
                    ("path", Json::str(path)),
                    ("count", Json::from(n)),
                ]))?;
            } else {
                out.line(n)?;
            }
        }
        ZkCommand::Whoami => {
            let ids = zk.client.whoami().map_err(|e| zk.failure(e, "whoami"))?;
            if out.json {
                let list = ids
                    .iter()
                    .map(|id| {
                        Json::object([
                            ("scheme", Json::str(&id.scheme)),
                            ("user", Json::str(&id.user)),
                        ])
                    })
                    .collect();
                out.json(&Json::object([("identities", Json::Array(list))]))?;
            } else {
                out.line("Auth scheme: User")?;
                for id in &ids {
                    out.line(format_args!("{}: {}", id.scheme, id.user))?;
                }
            }
        }
        ZkCommand::Removewatches {
            child, data, path, ..
        } => {
            let kind = match (child, data) {
                (true, _) => WatcherType::Children,
                (_, true) => WatcherType::Data,
                _ => WatcherType::Any,
            };
            zk.client
                .remove_watches(path, kind)
                .map_err(|e| zk.failure(e, path))?;
            if out.json {
                out.json(&Json::object([("removed", Json::str(path))]))?;
            }
        }
        ZkCommand::Config {
            client,
            watch,
            stat,
        } => config(zk, out, *client, *watch, *stat)?,
        ZkCommand::Setquota { limits, path } => quota::set(zk, out, limits, path)?,
        ZkCommand::Listquota { path } => quota::list(zk, out, path)?,
        ZkCommand::Delquota {
            count,
            bytes,
            count_hard,
            bytes_hard,
            path,
        } => quota::delete(zk, out, [*count, *bytes, *count_hard, *bytes_hard], path)?,
        ZkCommand::Watch {
            path,
            recursive,
            count,
        } => {
            let mode = if *recursive {
                AddWatchMode::PersistentRecursive
            } else {
                AddWatchMode::Persistent
            };
            zk.client
                .add_watch(path, mode, WATCHER)
                .map_err(|e| zk.failure(e, path))?;
            if out.json {
                out.json(&Json::object([
                    ("watching", Json::str(path)),
                    ("recursive", Json::Bool(*recursive)),
                ]))?;
            } else {
                out.line(format_args!(
                    "watching {path}{}",
                    if *recursive { " and below" } else { "" }
                ))?;
                out.out.flush()?;
            }
            let mut seen = 0u64;
            if count.is_some_and(|c| c == 0) {
                return Ok(());
            }
            zk.watch_events(out, path, |w, out| {
                if out.json {
                    out.json(&event_json(w))?;
                } else {
                    out.line(format_args!("{} {}", w.event_type, w.path))?;
                    out.out.flush()?;
                }
                seen += 1;
                Ok(count.is_some_and(|c| seen >= c))
            })?;
        }
    }
    Ok(())
}

/// Checks the command's paths and ACL before any connection is made: a usage error needs no
/// server (the session would refuse the path anyway, before sending anything).
pub(super) fn precheck(command: &ZkCommand) -> Result<(), Failure> {
    let (path, sequential) = match command {
        ZkCommand::Create {
            path,
            sequential,
            rest,
            file,
            ..
        } => {
            let acl = if file.is_some() {
                rest.first()
            } else {
                rest.get(1)
            };
            if let Some(acl) = acl {
                parse_acl(acl)?;
            }
            (path, *sequential)
        }
        ZkCommand::SetAcl { path, acl, .. } => {
            parse_acl(acl)?;
            (path, false)
        }
        ZkCommand::Get { path, .. }
        | ZkCommand::Set { path, .. }
        | ZkCommand::Delete { path, .. }
        | ZkCommand::Deleteall { path, .. }
        | ZkCommand::Ls { path, .. }
        | ZkCommand::Stat { path, .. }
        | ZkCommand::GetAcl { path, .. }
        | ZkCommand::Sync { path }
        | ZkCommand::GetEphemerals { path }
        | ZkCommand::GetAllChildrenNumber { path }
        | ZkCommand::Removewatches { path, .. }
        | ZkCommand::Setquota { path, .. }
        | ZkCommand::Listquota { path }
        | ZkCommand::Delquota { path, .. }
        | ZkCommand::Watch { path, .. } => (path, false),
        ZkCommand::Whoami | ZkCommand::Config { .. } => return Ok(()),
    };
    validate_path(path.as_bytes(), sequential)
        .map_err(|e| Failure::usage(e.with_path(path).to_string()))
}

/// The default ACL of a create: `world:anyone:cdrwa`.
fn open_acl() -> Vec<AclArg> {
    vec![AclArg {
        scheme: "world".into(),
        id: "anyone".into(),
        perms: sinew_proto::zk::Perms::ALL,
    }]
}

/// The wire form of parsed ACL entries (borrowing them).
fn acls(acl: &[AclArg]) -> Vec<Acl<'_>> {
    acl.iter()
        .map(|a| Acl {
            perms: a.perms,
            id: Id {
                scheme: ZkStr::new(&a.scheme),
                id: ZkStr::new(&a.id),
            },
        })
        .collect()
}

fn path_watch(path: &str, watch: bool) -> PathWatchRequest<'_> {
    PathWatchRequest {
        path: ZkStr::new(path),
        watch,
    }
}

fn unexpected(path: &str) -> Failure {
    Failure::failed(format!("{path}: unexpected reply from the server"))
}

fn expect_stat(reply: OwnedReply, path: &str) -> Result<Stat, Failure> {
    match reply {
        OwnedReply::Stat(stat) => Ok(stat),
        _ => Err(unexpected(path)),
    }
}

/// Creates a node with the request its mode needs (create, createContainer, createTTL).
pub(super) fn create(
    zk: &mut Zk<'_>,
    path: &str,
    data: Option<&[u8]>,
    acl: &[AclArg],
    mode: CreateMode,
    ttl: Option<i64>,
) -> Result<String, Failure> {
    let entries = acls(acl);
    let request = CreateRequest {
        path: ZkStr::new(path),
        data,
        acl: List::from_slice(&entries),
        mode,
    };
    let body = match (mode, ttl) {
        (CreateMode::Container, _) => RequestBody::CreateContainer(request),
        (_, Some(ttl)) => RequestBody::CreateTtl(CreateTtlRequest {
            create: request,
            ttl,
        }),
        _ => RequestBody::Create(request),
    };
    match zk.call(body, path)? {
        OwnedReply::Path(created) | OwnedReply::Created { path: created, .. } => Ok(created),
        _ => Err(unexpected(path)),
    }
}

/// The node and every node below it, breadth first (children in name order), as zkCli's
/// `ls -R` lists them.
fn subtree(zk: &mut Zk<'_>, path: &str) -> Result<Vec<String>, Failure> {
    let mut all = vec![path.to_string()];
    let mut queue = VecDeque::from([path.to_string()]);
    while let Some(node) = queue.pop_front() {
        let mut children = zk
            .client
            .get_children(&node, None)
            .map_err(|e| zk.failure(e, &node))?;
        children.sort();
        for child in children {
            let full = if node == "/" {
                format!("/{child}")
            } else {
                format!("{node}/{child}")
            };
            all.push(full.clone());
            queue.push_back(full);
        }
    }
    Ok(all)
}

/// Deletes a subtree, deepest first, `batch` deletes per multi; returns the deleted paths.
fn delete_all(zk: &mut Zk<'_>, path: &str, batch: usize) -> Result<Vec<String>, Failure> {
    // Validated first: "/" passes the path check but cannot be deleted.
    let mut all = subtree(zk, path)?;
    all.reverse();
    for chunk in all.chunks(batch.max(1)) {
        let ops: Vec<MultiOp<'_>> = chunk
            .iter()
            .map(|p| {
                MultiOp::Delete(PathVersionRequest {
                    path: ZkStr::new(p),
                    version: -1,
                })
            })
            .collect();
        let results = zk.client.multi(&ops).map_err(|e| zk.failure(e, path))?;
        let failed = results.iter().zip(chunk).find(|(r, _)| {
            matches!(r, OpResult::Error(code) if *code != sinew_proto::zk::ErrorCode::Ok
                && *code != sinew_proto::zk::ErrorCode::RuntimeInconsistency)
        });
        if let Some((OpResult::Error(code), p)) = failed {
            return Err(zk.failure(sinew_transport_std::Error::Zk(*code), p));
        }
    }
    Ok(all)
}

/// A fired watch as zkCli prints it.
fn event_text(w: &WatchNotification) -> String {
    format!(
        "WatchedEvent state:SyncConnected type:{} path:{}",
        w.event_type, w.path
    )
}

fn event_json(w: &WatchNotification) -> Json {
    Json::object([
        ("event", Json::str(w.event_type.to_string())),
        ("path", Json::str(&w.path)),
    ])
}

/// Waits for the one-shot watch a `-w` left to fire, and prints it.
fn wait_one_watch(zk: &mut Zk<'_>, out: &mut Output<'_>, path: &str) -> Result<(), Failure> {
    if !out.json {
        out.out.flush()?;
    }
    zk.watch_events(out, path, |w, out| {
        if out.json {
            out.json(&event_json(w))?;
        } else {
            out.line(event_text(w))?;
        }
        Ok(true)
    })
}

/// `config`: the ensemble's configuration node.
fn config(
    zk: &mut Zk<'_>,
    out: &mut Output<'_>,
    client_only: bool,
    watch: bool,
    stat: bool,
) -> Result<(), Failure> {
    const CONFIG: &str = "/zookeeper/config";
    let reply = zk.call(RequestBody::GetData(path_watch(CONFIG, watch)), CONFIG)?;
    let OwnedReply::Data { data, stat: node } = reply else {
        return Err(unexpected(CONFIG));
    };
    let text = String::from_utf8_lossy(data.as_deref().unwrap_or_default()).into_owned();
    if out.json {
        let mut fields = vec![
            ("config".to_string(), Json::str(&text)),
            (
                "clients".to_string(),
                Json::strings(client_addresses(&text).1),
            ),
        ];
        if stat {
            fields.push(("stat".to_string(), stat_json(&node)));
        }
        out.json(&Json::Object(fields))?;
    } else {
        if client_only {
            let (version, clients) = client_addresses(&text);
            out.line(format_args!("{version} {}", clients.join(",")))?;
        } else {
            write!(out.out, "{text}")?;
            if !text.ends_with('\n') && !text.is_empty() {
                out.line("")?;
            }
        }
        if stat {
            write_stat(&node, out.out)?;
        }
    }
    if watch {
        wait_one_watch(zk, out, CONFIG)?;
    }
    Ok(())
}

/// The config's version and the client addresses of its `server.N=…;client` lines (a
/// client part without a host takes the server's).
fn client_addresses(config: &str) -> (String, Vec<String>) {
    let mut version = String::new();
    let mut clients = Vec::new();
    for line in config.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key == "version" {
            version = value.to_string();
        } else if key.starts_with("server.")
            && let Some((server, client)) = value.split_once(';')
        {
            if client.contains(':') {
                clients.push(client.to_string());
            } else {
                let host = server.split(':').next().unwrap_or_default();
                clients.push(format!("{host}:{client}"));
            }
        }
    }
    (version, clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_client_addresses() {
        let config = "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                      server.2=10.0.0.2:2888:3888:participant;2181\n\
                      version=100000000\n";
        let (version, clients) = client_addresses(config);
        assert_eq!(version, "100000000");
        assert_eq!(clients, ["0.0.0.0:2181", "10.0.0.2:2181"]);
        assert_eq!(client_addresses(""), (String::new(), vec![]));
    }
}
