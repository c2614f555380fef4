//! What a one-hop [`DhtClient`](super::DhtClient) knows of the ring: the neighbourhood one node
//! told it in a [`Body::View`](crate::dht::Body::View), checked before it is believed, and the
//! owner of a key within it.

use heapless::Vec;

use crate::dht::ring::owner_among;
use crate::dht::{NodeAddr, NodeId, VIEW_SIDE};
use crate::time::Instant;

/// The most nodes of one view: the answering node and both of its sides.
pub(super) const VIEW_NODES: usize = 2 * VIEW_SIDE + 1;

/// Why a View was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// An id that is not the one bound to its address (ids are checked).
    Unbound,
    /// Not a leaf set: an empty side, a side out of ring order, or the sender listed in it.
    Disordered,
}

/// One node's neighbourhood as it told it.
#[derive(Clone, Debug)]
pub(super) struct LearnedView {
    /// The answering node first, then its left and right sides (each node once).
    nodes: Vec<NodeAddr, VIEW_NODES>,
    /// The keys whose owner is among `nodes`: ids in `(start, end]` clockwise; `None`: every
    /// key (the two sides met: the view is the whole ring).
    arc: Option<(NodeId, NodeId)>,
    /// When it expires (it is asked again then).
    pub(super) until: Instant,
}

/// Whether `side` lists nodes at strictly growing distance `dist` from the sender, none of
/// them the sender.
fn ordered(side: &[NodeAddr], sender: NodeAddr, dist: impl Fn(NodeId) -> u128) -> bool {
    let mut last = 0u128;
    side.iter().all(|n| {
        let d = dist(n.id);
        let ok = d > last && n.addr != sender.addr;
        last = d;
        ok
    })
}

impl LearnedView {
    /// The view `sender` sent, checked: every id bound to its address when `bind_ids`, each
    /// side non-empty and in ring order around the sender (nearest first), the sender in
    /// neither. A view that passes says which nodes own the keys between its farthest
    /// nodes; one that does not is refused whole.
    pub(super) fn check(
        sender: NodeAddr,
        left: impl Iterator<Item = NodeAddr>,
        right: impl Iterator<Item = NodeAddr>,
        bind_ids: bool,
        until: Instant,
    ) -> Result<LearnedView, Refusal> {
        let mut l: Vec<NodeAddr, VIEW_SIDE> = Vec::new();
        let mut r: Vec<NodeAddr, VIEW_SIDE> = Vec::new();
        for n in left {
            l.push(n).map_err(|_| Refusal::Disordered)?;
        }
        for n in right {
            r.push(n).map_err(|_| Refusal::Disordered)?;
        }
        if bind_ids
            && !core::iter::once(&sender)
                .chain(&l)
                .chain(&r)
                .all(|n| n.is_bound())
        {
            return Err(Refusal::Unbound);
        }
        let me = sender.id;
        if l.is_empty()
            || r.is_empty()
            || !ordered(&l, sender, |id| id.distance_to(me))
            || !ordered(&r, sender, |id| me.distance_to(id))
        {
            return Err(Refusal::Disordered);
        }
        let mut nodes: Vec<NodeAddr, VIEW_NODES> = Vec::new();
        let mut met = false;
        for n in core::iter::once(sender)
            .chain(l.iter().copied())
            .chain(r.iter().copied())
        {
            match nodes.iter().find(|m| m.id == n.id) {
                // The same id at two addresses: a forgery.
                Some(m) if m.addr != n.addr => return Err(Refusal::Disordered),
                Some(_) => met = true,
                None => {
                    if nodes.iter().any(|m| m.addr == n.addr) {
                        return Err(Refusal::Disordered);
                    }
                    // Room for every node: VIEW_NODES = 2 × VIEW_SIDE + 1.
                    let _ = nodes.push(n);
                }
            }
        }
        // Both sides are non-empty (checked above).
        let far_left = l.last().map_or(me, |n| n.id);
        let far_right = r.last().map_or(me, |n| n.id);
        Ok(LearnedView {
            nodes,
            arc: if met {
                None
            } else {
                Some((far_left, far_right))
            },
            until,
        })
    }

    /// The owner of `key` by the leaf set's rule (the first node at or after it clockwise),
    /// if the view covers it.
    pub(super) fn owner(&self, key: NodeId) -> Option<NodeAddr> {
        if let Some((start, end)) = self.arc {
            let d = start.distance_to(key);
            if d == 0 || d > start.distance_to(end) {
                return None;
            }
        }
        let id = owner_among(key, self.nodes.iter().map(|n| n.id))?;
        self.nodes.iter().find(|n| n.id == id).copied()
    }

    /// Whether the view names a node at `addr`.
    pub(super) fn contains(&self, addr: core::net::SocketAddr) -> bool {
        self.nodes.iter().any(|n| n.addr == addr)
    }
}
