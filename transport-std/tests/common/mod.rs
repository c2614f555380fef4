//! What the ZooKeeper test files share: a TCP proxy to the server that the tests control.
#![allow(dead_code)] // each test file uses a part

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A TCP proxy to `upstream` that can hold every byte, cut every connection (a close both
/// ways), or reset it (on Linux a reset, so that the client's next write fails).
pub struct CuttingProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    held: Arc<AtomicBool>,
    resetting: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl CuttingProxy {
    pub fn start(upstream: SocketAddr) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(AtomicBool::new(false));
        let resetting = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (held2, resetting2, conns2) = (
            Arc::clone(&held),
            Arc::clone(&resetting),
            Arc::clone(&conns),
        );
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                conns2
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (held, resetting) = (Arc::clone(&held2), Arc::clone(&resetting2));
                    thread::spawn(move || pump(from, to, &held, &resetting));
                }
            }
        });
        CuttingProxy {
            addr,
            held,
            resetting,
            conns,
        }
    }

    /// Holds every byte in both directions (`true`) or lets them through again.
    pub fn hold(&self, on: bool) {
        self.held.store(on, Ordering::SeqCst);
    }

    /// Closes every connection, both ways.
    pub fn cut(&self) {
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Cuts every connection with a reset on Linux: the pumps stop and the sockets close
    /// without a FIN, so the client's next write fails.
    pub fn reset(&self) {
        self.resetting.store(true, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            #[cfg(target_os = "linux")]
            rustix::net::sockopt::set_socket_linger(&conn, Some(Duration::ZERO)).unwrap();
            // Ends the pumps' reads without sending anything; the last close sends the reset.
            let _ = conn.shutdown(Shutdown::Read);
        }
    }
}

/// Moves bytes from `from` to `to` while `held` is off; when `from` ends, closes `to` too
/// (but sends nothing while a reset is under way).
fn pump(mut from: TcpStream, mut to: TcpStream, held: &AtomicBool, resetting: &AtomicBool) {
    let mut buf = [0u8; 65536];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        while held.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if !resetting.load(Ordering::SeqCst) {
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    }
}
