//! The command line of `sinew zk`: zkCli's commands and flags, and the parsers of its ACL and
//! data arguments.

use std::io::Read;

use clap::{Args, Subcommand};
use sinew_proto::zk::Perms;

use crate::error::{EXIT_CODES_HELP, Failure};

/// Options of `sinew zk`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ZkArgs {
    /// The servers, as ZooKeeper's connect string: `host:port[,host:port…][/chroot]`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2181")]
    pub server: String,
    /// Session timeout in milliseconds; also the longest wait for a connection, a reply, or
    /// a reconnection after the connection is lost.
    #[arg(long, value_name = "MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=u64::from(i32::MAX as u32)))]
    pub timeout: u64,
    /// Authenticate with digest `user:password` first (zkCli's `addauth digest`).
    #[arg(long, value_name = "USER:PASSWORD")]
    pub auth: Option<String>,
    /// Print results as JSON, one document per result (per line for events); on failure
    /// `{"error": …}` on stdout too.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: ZkCommand,
}

/// The `sinew zk` subcommands, named and flagged as zkCli's.
#[derive(Debug, Clone, Subcommand)]
#[command(rename_all = "verbatim")]
pub enum ZkCommand {
    /// Create a node; prints the created path. `create [-s] [-e] [-c] [-t ttl] path [data] [acl]`.
    #[command(name = "create")]
    Create {
        /// Ephemeral: deleted when this command's session ends (right after it).
        #[arg(short = 'e')]
        ephemeral: bool,
        /// Sequential: a sequence number is appended to the name.
        #[arg(short = 's')]
        sequential: bool,
        /// Container: deleted by the server once its last child is gone.
        #[arg(short = 'c', conflicts_with_all = ["ephemeral", "ttl"])]
        container: bool,
        /// Time to live in milliseconds: deleted once it has no children and has not changed
        /// for this long (the server needs `extendedTypesEnabled=true`).
        #[arg(short = 't', value_name = "TTL", conflicts_with = "ephemeral")]
        ttl: Option<i64>,
        /// The data from this file (`-`: stdin) instead of an argument.
        #[arg(short = 'f', value_name = "FILE")]
        file: Option<String>,
        /// The node.
        path: String,
        /// `[data] [acl]`: the data (`-`: stdin; none: null, as zkCli), then the ACL as zkCli takes
        /// it, `scheme:id:perms[,…]` (default `world:anyone:cdrwa`); with -f, only the ACL.
        #[arg(num_args = 0..=2, value_name = "DATA/ACL")]
        rest: Vec<String>,
    },
    /// Print a node's data (`null` for null data; bytes that are not text as `\xNN`).
    #[command(name = "get")]
    Get {
        /// Print its stat too.
        #[arg(short = 's')]
        stat: bool,
        /// Leave a watch and wait for it to fire; print the event.
        #[arg(short = 'w')]
        watch: bool,
        /// The node.
        path: String,
    },
    /// Set a node's data.
    #[command(name = "set")]
    Set {
        /// Print the new stat.
        #[arg(short = 's')]
        stat: bool,
        /// Only if the node's version is this.
        #[arg(short = 'v', allow_negative_numbers = true)]
        version: Option<i32>,
        /// The data from this file (`-`: stdin) instead of an argument.
        #[arg(short = 'f', value_name = "FILE", conflicts_with = "data")]
        file: Option<String>,
        /// The node.
        path: String,
        /// The new data (`-`: stdin).
        #[arg(required_unless_present = "file")]
        data: Option<String>,
    },
    /// Delete a node.
    #[command(name = "delete")]
    Delete {
        /// Only if the node's version is this.
        #[arg(short = 'v', allow_negative_numbers = true)]
        version: Option<i32>,
        /// The node.
        path: String,
    },
    /// Delete a node and everything below it.
    #[command(name = "deleteall")]
    Deleteall {
        /// Deletes per transaction (multi).
        #[arg(short = 'b', value_name = "BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// The node.
        path: String,
    },
    /// List a node's children.
    #[command(name = "ls")]
    Ls {
        /// Print its stat too.
        #[arg(short = 's')]
        stat: bool,
        /// Leave a child watch and wait for it to fire; print the event.
        #[arg(short = 'w')]
        watch: bool,
        /// Recursive: every path below it, the node first.
        #[arg(short = 'R')]
        recursive: bool,
        /// The node.
        path: String,
    },
    /// Print a node's stat.
    #[command(name = "stat")]
    Stat {
        /// Leave a watch and wait for it to fire; print the event.
        #[arg(short = 'w')]
        watch: bool,
        /// The node.
        path: String,
    },
    /// Print a node's ACL.
    #[command(name = "getAcl", alias = "getacl")]
    GetAcl {
        /// Print its stat too.
        #[arg(short = 's')]
        stat: bool,
        /// The node.
        path: String,
    },
    /// Set a node's ACL (`scheme:id:perms[,…]`).
    #[command(name = "setAcl", alias = "setacl")]
    SetAcl {
        /// Print the new stat.
        #[arg(short = 's')]
        stat: bool,
        /// Only if the node's ACL version is this.
        #[arg(short = 'v', allow_negative_numbers = true)]
        version: Option<i32>,
        /// Every node below it too.
        #[arg(short = 'R')]
        recursive: bool,
        /// The node.
        path: String,
        /// The ACL: `world:anyone:r,digest:user:BASE64SHA1:cdrwa,ip:10.0.0.0/8:rw,auth::cdrwa`.
        acl: String,
    },
    /// Wait until the server has caught up with the leader for this path.
    #[command(name = "sync")]
    Sync {
        /// The node.
        path: String,
    },
    /// List this session's ephemeral nodes under a path (a one-shot session has only those
    /// it creates).
    #[command(name = "getEphemerals", alias = "getephemerals")]
    GetEphemerals {
        /// The prefix.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Print how many nodes are below a node.
    #[command(name = "getAllChildrenNumber", alias = "getallchildrennumber")]
    GetAllChildrenNumber {
        /// The node.
        path: String,
    },
    /// Print the identities this session is authenticated as.
    #[command(name = "whoami")]
    Whoami,
    /// Remove this session's watches on a path (a one-shot session has none: the server
    /// answers NoWatcher).
    #[command(name = "removewatches")]
    Removewatches {
        /// Child watches.
        #[arg(short = 'c', conflicts_with_all = ["data", "any"])]
        child: bool,
        /// Data watches.
        #[arg(short = 'd', conflicts_with = "any")]
        data: bool,
        /// Any watch (the default).
        #[arg(short = 'a')]
        any: bool,
        /// Remove locally even without a connection (accepted for zkCli's sake: watches are
        /// always removed locally first).
        #[arg(short = 'l')]
        local: bool,
        /// The node.
        path: String,
    },
    /// Print the ensemble's configuration (`/zookeeper/config`).
    #[command(name = "config")]
    Config {
        /// Only the client connection string (`host:port,…`).
        #[arg(short = 'c')]
        client: bool,
        /// Leave a watch and wait for it to fire; print the event.
        #[arg(short = 'w')]
        watch: bool,
        /// Print the stat too.
        #[arg(short = 's')]
        stat: bool,
    },
    /// Set a quota on a node (`/zookeeper/quota`): -n/-b soft (logged by the server), -N/-B
    /// hard (refused with QuotaExceeded when the server has `enforceQuota`).
    #[command(name = "setquota")]
    Setquota {
        /// The limits to set.
        #[command(flatten)]
        limits: QuotaLimits,
        /// The node (it must exist).
        path: String,
    },
    /// Print a node's quota and its current usage.
    #[command(name = "listquota")]
    Listquota {
        /// The node.
        path: String,
    },
    /// Remove a node's quota, or with a flag only that limit.
    #[command(name = "delquota")]
    Delquota {
        /// Only the soft node-count limit.
        #[arg(short = 'n')]
        count: bool,
        /// Only the soft byte limit.
        #[arg(short = 'b')]
        bytes: bool,
        /// Only the hard node-count limit.
        #[arg(short = 'N')]
        count_hard: bool,
        /// Only the hard byte limit.
        #[arg(short = 'B')]
        bytes_hard: bool,
        /// The node.
        path: String,
    },
    /// Print a node's changes as they happen (zkCli's `addWatch`: a persistent watch), until
    /// Ctrl-C or --count events.
    #[command(name = "watch", alias = "addWatch")]
    Watch {
        /// The node.
        path: String,
        /// Watch every node below it too (addWatch -m PERSISTENT_RECURSIVE).
        #[arg(long)]
        recursive: bool,
        /// Stop after this many events.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
}

/// The limits of `setquota`: at least one.
#[derive(Debug, Clone, Copy, Args)]
#[group(required = true, multiple = true)]
pub struct QuotaLimits {
    /// Soft limit on the number of nodes (the node included).
    #[arg(short = 'n', value_name = "COUNT", allow_negative_numbers = true)]
    pub count: Option<i64>,
    /// Soft limit on the bytes of data.
    #[arg(short = 'b', value_name = "BYTES", allow_negative_numbers = true)]
    pub bytes: Option<i64>,
    /// Hard limit on the number of nodes.
    #[arg(short = 'N', value_name = "COUNT", allow_negative_numbers = true)]
    pub count_hard: Option<i64>,
    /// Hard limit on the bytes of data.
    #[arg(short = 'B', value_name = "BYTES", allow_negative_numbers = true)]
    pub bytes_hard: Option<i64>,
}

/// One ACL entry as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclArg {
    /// The scheme (`world`, `digest`, `ip`, `auth`, …).
    pub scheme: String,
    /// The identity.
    pub id: String,
    /// The permissions.
    pub perms: Perms,
}

/// Parses an ACL as zkCli takes it: entries `scheme:id:perms` separated by commas; the id is
/// everything between the first and the last colon (so IPv6 addresses and `auth::cdrwa`
/// work); perms are letters of `cdrwa`.
///
/// # Errors
/// A usage failure naming the entry and what is wrong with it.
pub fn parse_acl(text: &str) -> Result<Vec<AclArg>, Failure> {
    let mut acl = Vec::new();
    for entry in text.split(',') {
        let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
            return Err(bad_acl(entry, "it does not have the form scheme:id:perms"));
        };
        if first == last {
            return Err(bad_acl(entry, "it does not have the form scheme:id:perms"));
        }
        let scheme = &entry[..first];
        if scheme.is_empty() {
            return Err(bad_acl(entry, "the scheme is empty"));
        }
        let mut perms = Perms::NONE;
        for c in entry[last + 1..].chars() {
            perms = perms
                | match c {
                    'r' => Perms::READ,
                    'w' => Perms::WRITE,
                    'c' => Perms::CREATE,
                    'd' => Perms::DELETE,
                    'a' => Perms::ADMIN,
                    other => {
                        return Err(bad_acl(
                            entry,
                            &format!("unknown perm {other:?} (perms are letters of cdrwa)"),
                        ));
                    }
                };
        }
        acl.push(AclArg {
            scheme: scheme.to_string(),
            id: entry[first + 1..last].to_string(),
            perms,
        });
    }
    Ok(acl)
}

fn bad_acl(entry: &str, why: &str) -> Failure {
    Failure::usage(format!("ACL {entry:?}: {why}"))
}

/// The bytes of a data argument (`-`: all of stdin) or of `-f FILE` (`-`: stdin); `None`
/// when neither is given (zkCli then sends null data).
///
/// # Errors
/// A failure naming the file that cannot be read.
pub fn read_data(
    arg: Option<&str>,
    file: Option<&str>,
    stdin: &mut dyn Read,
) -> Result<Option<Vec<u8>>, Failure> {
    let from_stdin = |stdin: &mut dyn Read| {
        let mut data = Vec::new();
        stdin
            .read_to_end(&mut data)
            .map_err(|e| Failure::io("stdin", &e))?;
        Ok(Some(data))
    };
    match (file, arg) {
        (Some("-"), _) | (None, Some("-")) => from_stdin(stdin),
        (Some(path), _) => std::fs::read(path)
            .map(Some)
            .map_err(|e| Failure::io(path, &e)),
        (None, Some(text)) => Ok(Some(text.as_bytes().to_vec())),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_acl() {
        let acl = parse_acl("world:anyone:r,ip:::1:cdrwa,auth::cd,digest:u:aGFzaA=:ra").unwrap();
        assert_eq!(
            acl,
            [
                AclArg {
                    scheme: "world".into(),
                    id: "anyone".into(),
                    perms: Perms::READ
                },
                AclArg {
                    scheme: "ip".into(),
                    id: "::1".into(),
                    perms: Perms::ALL
                },
                AclArg {
                    scheme: "auth".into(),
                    id: String::new(),
                    perms: Perms::CREATE | Perms::DELETE
                },
                AclArg {
                    scheme: "digest".into(),
                    id: "u:aGFzaA=".into(),
                    perms: Perms::READ | Perms::ADMIN
                },
            ]
        );
        for (bad, why) in [
            ("world:anyone", "form"),
            ("world", "form"),
            (":x:r", "scheme"),
            ("world:anyone:rx", "'x'"),
        ] {
            let e = parse_acl(bad).unwrap_err();
            assert_eq!(e.code, crate::error::EXIT_USAGE);
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn test_read_data() {
        let read = |arg, file, mut stdin: &[u8]| read_data(arg, file, &mut stdin).unwrap();
        assert_eq!(
            read(Some("-"), None, &[0xff, 0, 0xfe]),
            Some(vec![0xff, 0, 0xfe])
        );
        assert_eq!(read(None, Some("-"), b"in"), Some(b"in".to_vec()));
        assert_eq!(read(Some("0xff"), None, b"in"), Some(b"0xff".to_vec()));
        assert_eq!(read(None, None, b"in"), None);
        let mut stdin: &[u8] = b"";
        let e = read_data(None, Some("/nonexistent/x"), &mut stdin).unwrap_err();
        assert!(e.message.starts_with("/nonexistent/x: "), "{}", e.message);
    }
}
