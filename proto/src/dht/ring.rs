//! Ring geometry: who owns an id, and the leaf set a node keeps of its neighbours.
//!
//! Ids live on a ring of 2^128 values. **The owner of an id `k` is the node whose id is the first
//! at or after `k` going clockwise** (its successor, as in Chord): the node `n` with the smallest
//! clockwise distance `k.distance_to(n)`. Ids are unique, so the owner is unique; a node whose id
//! equals `k` owns it (distance 0); past the largest id the ring wraps to the smallest. A node owns
//! the arc `(left neighbour, itself]`.
//!
//! A key's id is [`NodeId::from_name`]`(key)`; its replicas are its owner's nearest clockwise
//! neighbours, so that when an owner dies its right neighbour, the new owner, already holds the
//! keys.
//!
//! ```
//! use sinew_proto::dht::ring::{LeafSet, owner_among};
//! use sinew_proto::dht::{NodeAddr, NodeId};
//!
//! let id = NodeId::from_u128;
//! let ids = [id(100), id(200), id(u128::MAX - 5)];
//! assert_eq!(owner_among(id(150), ids), Some(id(200))); // the first node clockwise
//! assert_eq!(owner_among(id(200), ids), Some(id(200))); // a node owns its own id
//! assert_eq!(owner_among(id(u128::MAX - 1), ids), Some(id(100))); // past the top, wrap
//!
//! // Node 200's view of that ring: one neighbour on each side, and both sides wrap.
//! let node = |n, port| NodeAddr { id: id(n), addr: ([127, 0, 0, 1], port).into() };
//! let mut leaf: LeafSet<1> = LeafSet::new(node(200, 7200), 1);
//! assert!(leaf.insert(node(100, 7100)));
//! assert!(leaf.insert(node(u128::MAX - 5, 7300)));
//! assert_eq!(leaf.nearest_left(), Some(node(100, 7100)));
//! assert_eq!(leaf.nearest_right(), Some(node(u128::MAX - 5, 7300)));
//! assert_eq!(leaf.owner(id(150)), node(200, 7200));
//! assert_eq!(leaf.owner(id(250)), node(u128::MAX - 5, 7300));
//! ```

use heapless::Vec;

use super::{NodeAddr, NodeId, Side};

/// Whether `a` is strictly closer to `key` than `b` under the ownership rule (clockwise
/// distance from `key` to the node).
pub fn is_closer(key: NodeId, a: NodeId, b: NodeId) -> bool {
    key.distance_to(a) < key.distance_to(b)
}

/// The owner of `key` among `nodes` (the first node at or after `key` clockwise), or `None` for
/// no nodes.
pub fn owner_among<I: IntoIterator<Item = NodeId>>(key: NodeId, nodes: I) -> Option<NodeId> {
    nodes.into_iter().min_by_key(|n| key.distance_to(*n))
}

#[derive(Clone, Copy, Debug)]
struct Member {
    node: NodeAddr,
    failures: u8,
}

/// A node's view of the ring around it: up to `size` nodes on each side (`size ≤ L`), nearest
/// first.
///
/// The left side is ordered by counter-clockwise distance (predecessors), the right side by
/// clockwise distance (successors). In a ring of fewer than `2 × size + 1` nodes a node appears on
/// both sides: in a ring of two, each node is the other's left *and* right neighbour.
#[derive(Clone, Debug)]
pub struct LeafSet<const L: usize> {
    me: NodeAddr,
    size: usize,
    left: Vec<Member, L>,
    right: Vec<Member, L>,
}

/// Inserts `m` into `side` (ordered by `dist`, nearest first, at most `cap` long); whether it
/// went in.
fn insert_sorted<const L: usize>(
    side: &mut Vec<Member, L>,
    cap: usize,
    m: Member,
    dist: impl Fn(NodeId) -> u128,
) -> bool {
    if side.iter().any(|x| x.node.id == m.node.id) {
        return false;
    }
    let d = dist(m.node.id);
    let pos = side
        .iter()
        .position(|x| dist(x.node.id) > d)
        .unwrap_or(side.len());
    if pos >= cap {
        return false;
    }
    if side.len() >= cap || side.is_full() {
        side.pop();
    }
    side.insert(pos, m).is_ok()
}

/// Inserts `node` into a list ordered by `dist` (nearest first, at most `cap` long).
fn insert_list<const L: usize>(
    list: &mut Vec<NodeAddr, L>,
    cap: usize,
    node: NodeAddr,
    dist: impl Fn(NodeId) -> u128,
) {
    if list.iter().any(|x| x.id == node.id) {
        return;
    }
    let d = dist(node.id);
    let pos = list
        .iter()
        .position(|x| dist(x.id) > d)
        .unwrap_or(list.len());
    if pos >= cap {
        return;
    }
    if list.len() >= cap || list.is_full() {
        list.pop();
    }
    let _ = list.insert(pos, node);
}

impl<const L: usize> LeafSet<L> {
    /// An empty leaf set of `me`, keeping `size` nodes on each side (clamped to `1..=L`).
    pub fn new(me: NodeAddr, size: usize) -> Self {
        LeafSet {
            me,
            size: size.clamp(1, L.max(1)),
            left: Vec::new(),
            right: Vec::new(),
        }
    }

    /// The node this view belongs to.
    pub fn me(&self) -> NodeAddr {
        self.me
    }

    /// Nodes kept on each side.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The left side (predecessors), nearest first.
    pub fn left(&self) -> impl ExactSizeIterator<Item = NodeAddr> + '_ {
        self.left.iter().map(|m| m.node)
    }

    /// The right side (successors), nearest first.
    pub fn right(&self) -> impl ExactSizeIterator<Item = NodeAddr> + '_ {
        self.right.iter().map(|m| m.node)
    }

    /// Every node of the view once: the left side, then right-side nodes not on the left.
    pub fn nodes(&self) -> impl Iterator<Item = NodeAddr> + '_ {
        self.left().chain(
            self.right
                .iter()
                .filter(|r| !self.left.iter().any(|l| l.node.id == r.node.id))
                .map(|m| m.node),
        )
    }

    /// Whether the view holds no other node (a ring of one).
    pub fn is_empty(&self) -> bool {
        self.left.is_empty() && self.right.is_empty()
    }

    /// The nearest predecessor.
    pub fn nearest_left(&self) -> Option<NodeAddr> {
        self.left.first().map(|m| m.node)
    }

    /// The nearest successor.
    pub fn nearest_right(&self) -> Option<NodeAddr> {
        self.right.first().map(|m| m.node)
    }

    /// The node of the view with this id.
    pub fn get(&self, id: NodeId) -> Option<NodeAddr> {
        self.left
            .iter()
            .chain(self.right.iter())
            .find(|m| m.node.id == id)
            .map(|m| m.node)
    }

    /// The node of the view at this address.
    pub fn get_by_addr(&self, addr: core::net::SocketAddr) -> Option<NodeAddr> {
        self.left
            .iter()
            .chain(self.right.iter())
            .find(|m| m.node.addr == addr)
            .map(|m| m.node)
    }

    /// Adds `node` where it belongs (each side keeps its nearest `size`); whether the view
    /// changed. The node itself, an id already known (under any address) and an address already
    /// known (under another id) are ignored: one member per id and per address.
    pub fn insert(&mut self, node: NodeAddr) -> bool {
        if node.id == self.me.id
            || node.addr == self.me.addr
            || self.get(node.id).is_some()
            || self.get_by_addr(node.addr).is_some()
        {
            return false;
        }
        let me = self.me.id;
        let m = Member { node, failures: 0 };
        let l = insert_sorted(&mut self.left, self.size, m, |id| id.distance_to(me));
        let r = insert_sorted(&mut self.right, self.size, m, |id| me.distance_to(id));
        l || r
    }

    /// Removes the node with this id; whether it was there.
    pub fn remove(&mut self, id: NodeId) -> bool {
        let before = self.left.len() + self.right.len();
        self.left.retain(|m| m.node.id != id);
        self.right.retain(|m| m.node.id != id);
        before != self.left.len() + self.right.len()
    }

    /// Counts one more consecutive failure of the node with this id; the new count (0 if the node
    /// is not in the view).
    pub fn note_failure(&mut self, id: NodeId) -> u8 {
        let mut count = 0;
        for m in self.left.iter_mut().chain(self.right.iter_mut()) {
            if m.node.id == id {
                m.failures = m.failures.saturating_add(1);
                count = m.failures;
            }
        }
        count
    }

    /// Forgets the failures of the node with this id (it was heard from).
    pub fn note_alive(&mut self, id: NodeId) {
        for m in self.left.iter_mut().chain(self.right.iter_mut()) {
            if m.node.id == id {
                m.failures = 0;
            }
        }
    }

    /// The owner of `key` as far as this view knows: the node of the view, or this node, that is
    /// first at or after `key` clockwise.
    pub fn owner(&self, key: NodeId) -> NodeAddr {
        let mut best = self.me;
        for m in self.left.iter().chain(self.right.iter()) {
            if is_closer(key, m.node.id, best.id) {
                best = m.node;
            }
        }
        best
    }

    /// Where to send a request for `key`: the node of the view closest to it, if it is strictly
    /// closer than this node (`None`: this node owns `key` by its view). Every hop strictly
    /// decreases the distance to the key, so a request can never loop.
    pub fn next_hop(&self, key: NodeId) -> Option<NodeAddr> {
        let owner = self.owner(key);
        (owner.id != self.me.id).then_some(owner)
    }

    /// This node's `r` nearest successors: the replicas of the keys it owns.
    pub fn replicas(&self, r: usize) -> impl Iterator<Item = NodeAddr> + '_ {
        self.right.iter().take(r).map(|m| m.node)
    }

    /// How many nodes lie between `owner` and this node counter-clockwise (0: `owner` is the left
    /// neighbour), if `owner` is on the left side: this node is then the `rank + 1`-th successor
    /// of `owner`, and one of its `r` replicas if `rank < r`.
    pub fn rank_after(&self, owner: NodeId) -> Option<usize> {
        self.left.iter().position(|m| m.node.id == owner)
    }

    /// The nearest nodes on `side` of `node` that this view knows (this node included, `node`
    /// excluded), nearest first, at most `size`: what `node` should take as neighbours there.
    pub fn view_for(&self, node: NodeAddr, side: Side) -> Vec<NodeAddr, L> {
        let mut out = Vec::new();
        let dist = |id: NodeId| match side {
            Side::Left => id.distance_to(node.id),
            Side::Right => node.id.distance_to(id),
        };
        let all = core::iter::once(self.me).chain(self.left().chain(self.right()));
        for n in all {
            if n.id != node.id {
                insert_list(&mut out, self.size, n, dist);
            }
        }
        out
    }

    /// Which side of `node` `other` is on: right if it is less than half the ring away clockwise.
    pub fn side_of(node: NodeId, other: NodeId) -> Side {
        if node.distance_to(other) <= other.distance_to(node) {
            Side::Right
        } else {
            Side::Left
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::SocketAddr;

    fn n(id: u128) -> NodeAddr {
        NodeAddr {
            id: NodeId::from_u128(id),
            addr: SocketAddr::from(([10, 0, 0, 1], (id % 60000) as u16 + 1)),
        }
    }

    #[test]
    fn owner_is_the_successor_with_wrap_around() {
        let nodes = [10u128, 20, 30].map(NodeId::from_u128);
        let own = |k| owner_among(NodeId::from_u128(k), nodes).unwrap().to_u128();
        assert_eq!(own(15), 20);
        assert_eq!(own(20), 20, "a node owns its own id");
        assert_eq!(own(5), 10);
        assert_eq!(own(31), 10, "past the largest id the ring wraps");
        assert_eq!(own(u128::MAX), 10);
        assert_eq!(owner_among(NodeId::from_u128(1), []), None);
    }

    #[test]
    fn leaf_set_keeps_nearest_on_each_side() {
        let mut ls: LeafSet<4> = LeafSet::new(n(100), 2);
        for id in [90, 80, 70, 110, 120, 130, 105] {
            ls.insert(n(id));
        }
        assert!(ls.left().map(|x| x.id.to_u128()).eq([90, 80]));
        assert!(ls.right().map(|x| x.id.to_u128()).eq([105, 110]));
        assert!(!ls.insert(n(100)), "never itself");
        assert!(!ls.insert(n(90)), "no duplicates");
        assert_eq!(ls.owner(NodeId::from_u128(95)).id.to_u128(), 100);
        assert_eq!(ls.owner(NodeId::from_u128(101)).id.to_u128(), 105);
        assert_eq!(ls.next_hop(NodeId::from_u128(95)), None);
        assert_eq!(ls.rank_after(NodeId::from_u128(80)), Some(1));
        assert!(ls.remove(NodeId::from_u128(90)));
        assert!(ls.left().map(|x| x.id.to_u128()).eq([80]));
    }

    #[test]
    fn two_nodes_are_each_others_left_and_right() {
        let mut ls: LeafSet<4> = LeafSet::new(n(5), 4);
        ls.insert(n(u128::MAX - 3));
        assert_eq!(ls.nearest_left(), Some(n(u128::MAX - 3)));
        assert_eq!(ls.nearest_right(), Some(n(u128::MAX - 3)));
        assert_eq!(ls.nodes().count(), 1);
        let view = ls.view_for(n(u128::MAX - 3), Side::Right);
        assert_eq!(&view[..], &[n(5)]);
    }
}
