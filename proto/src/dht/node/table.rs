//! Prefix routing beside the leaf set (Pastry's shape): a table of far nodes, by the number of
//! leading hexadecimal digits their id shares with this node's, that lets a request reach its
//! owner in about log16(N) hops instead of walking the ring through leaf sets.
//!
//! Row `r` holds, for each value `c` of digit `r`, one node whose id shares this node's first `r`
//! digits and has `c` as digit `r` (the cell of this node's own digit stays empty). Of the
//! candidates for a cell the one nearest this node's *target* for the cell is kept: this node's
//! id with digit `r` replaced by `c` (the remaining digits its own), so that each node points
//! into a block at a place of its own. Were every node to keep the same node of a block (say its
//! largest id), the first hops of all requests for that block would go to that one node, whose
//! table of validated addresses would overflow (requests re-challenged) and whose load would
//! grow with the ring. A fixed rule, not "first come", also means a node cannot take a cell by
//! answering first (only by having an id near the target, which costs an address).
//!
//! Only nodes that proved themselves to this node enter (they answered one of its requests at
//! their address, matched by message id, or echoed its Challenge with their id bound to that
//! address); nodes named by others are hints, probed with a RouteRequest before they are taken.
//! An entry that fails [`Config::max_failures`](super::Config::max_failures) requests in a row is
//! removed, and the cell is refilled from later answers. The owner of a key is still decided by
//! the leaf set alone.

use heapless::Vec;
use rand_core::CryptoRng;

use super::io::Out;
use super::routing::{Pending, Task};
use super::{DhtNode, Disposition};
use crate::dht::{NodeAddr, NodeId, NodeSet, ROUTE_LIST};
use crate::time::Instant;

/// Bits per digit of the routing table (b): ids are read as 32 hexadecimal digits.
pub const DIGIT_BITS: u32 = 4;
/// Cells per row of the routing table: one per value of a digit (2^b).
pub const COLUMNS: usize = 1 << DIGIT_BITS;
/// How many nodes heard of a node keeps to probe before they may enter its routing table.
pub const ROUTE_HINTS: usize = 8;
/// How many RouteRequests (probes and refreshes) a node has in flight at once.
const ROUTE_PROBES: usize = 2;
/// How many RouteRequests a node sends per stabilization interval (the refresh included): the
/// background traffic of the routing table is bounded whatever the traffic it learns from.
pub(super) const ROUTE_BUDGET: u8 = 4;

#[derive(Clone, Copy, Debug)]
struct Cell {
    node: NodeAddr,
    failures: u8,
}

/// The prefix routing table of a node: `ROWS` rows of [`COLUMNS`] cells, fixed in size.
///
/// `ROWS` rows resolve the first `ROWS` digits of a key; past them the leaf set finishes. Four
/// rows (the default of [`DhtNode`]) are enough for rings of up to about 16^4 × leaf size
/// nodes.
#[derive(Clone, Debug)]
pub struct RouteTable<const ROWS: usize> {
    me: NodeId,
    cells: [[Option<Cell>; COLUMNS]; ROWS],
}

/// The number of leading digits `a` and `b` share (32 for equal ids).
pub fn shared_digits(a: NodeId, b: NodeId) -> usize {
    ((a.to_u128() ^ b.to_u128()).leading_zeros() / DIGIT_BITS) as usize
}

/// Digit `row` of `id` (0 is the most significant), for `row < 32`.
pub fn digit(id: NodeId, row: usize) -> usize {
    let shift = 128u32
        .saturating_sub(DIGIT_BITS.saturating_mul(row as u32 + 1))
        .min(127);
    ((id.to_u128() >> shift) & (COLUMNS as u128 - 1)) as usize
}

/// How far `id` is from `target`, either way round the ring.
fn gap(id: NodeId, target: u128) -> u128 {
    let d = id.to_u128().wrapping_sub(target);
    d.min(d.wrapping_neg())
}

impl<const ROWS: usize> RouteTable<ROWS> {
    /// An empty table of the node `me`.
    pub fn new(me: NodeId) -> Self {
        RouteTable {
            me,
            cells: [[None; COLUMNS]; ROWS],
        }
    }

    /// The id cell (`row`, `col`) would ideally hold: this node's id with digit `row` replaced by
    /// `col` and the two bits after it set — a place of this node's own in the last quarter of
    /// the block. Requests move toward the first node at or after the key, so an entry late in
    /// the block is after most keys of the block (and closer to them than anything outside it),
    /// while a quarter of the block still holds enough nodes to spread the load.
    pub fn target(&self, row: usize, col: usize) -> u128 {
        let shift = 128u32
            .saturating_sub(DIGIT_BITS.saturating_mul(row as u32 + 1))
            .min(127);
        let mask = (COLUMNS as u128 - 1) << shift;
        let late = (3u128 << shift) >> 2;
        (self.me.to_u128() & !mask) | ((col as u128) << shift) | late
    }

    /// Whether `a` is a better entry of cell (`row`, `col`) than `b`: nearer the cell's target
    /// (ties, which need equal distances on both sides, go to the smaller id).
    fn better(&self, row: usize, col: usize, a: NodeId, b: NodeId) -> bool {
        let t = self.target(row, col);
        (gap(a, t), a.to_u128()) < (gap(b, t), b.to_u128())
    }

    /// The cell `node` belongs in, if the table has one for it (not this node, not past the
    /// last row).
    fn slot(&self, id: NodeId) -> Option<(usize, usize)> {
        let row = shared_digits(self.me, id);
        (row < ROWS).then(|| (row, digit(id, row)))
    }

    /// Whether `node` would enter (its cell is empty or holds a node farther from the cell's
    /// target), or is already there.
    pub fn wants(&self, node: NodeAddr) -> bool {
        match self.slot(node.id) {
            None => false,
            Some((r, c)) => self.cells[r][c]
                .is_none_or(|x| x.node.id == node.id || self.better(r, c, node.id, x.node.id)),
        }
    }

    /// Takes `node`, which proved itself; whether the table changed.
    pub fn insert(&mut self, node: NodeAddr) -> bool {
        let Some((r, c)) = self.slot(node.id) else {
            return false;
        };
        let better = self.cells[r][c].is_none_or(|x| self.better(r, c, node.id, x.node.id));
        match &mut self.cells[r][c] {
            Some(x) if x.node == node => {
                x.failures = 0;
                false
            }
            Some(_) if !better => false,
            cell => {
                *cell = Some(Cell { node, failures: 0 });
                true
            }
        }
    }

    /// Removes the node with this id; whether it was there.
    pub fn remove(&mut self, id: NodeId) -> bool {
        let Some((r, c)) = self.slot(id) else {
            return false;
        };
        if self.cells[r][c].is_some_and(|x| x.node.id == id) {
            self.cells[r][c] = None;
            return true;
        }
        false
    }

    /// The entry with this id.
    pub fn get(&self, id: NodeId) -> Option<NodeAddr> {
        let (r, c) = self.slot(id)?;
        self.cells[r][c].filter(|x| x.node.id == id).map(|x| x.node)
    }

    /// The entry at this address.
    pub fn get_by_addr(&self, addr: core::net::SocketAddr) -> Option<NodeAddr> {
        self.nodes().find(|n| n.addr == addr)
    }

    /// Counts a failure of the entry with this id; the new count (0 if it is not there).
    pub fn note_failure(&mut self, id: NodeId) -> u8 {
        let Some((r, c)) = self.slot(id) else {
            return 0;
        };
        match &mut self.cells[r][c] {
            Some(x) if x.node.id == id => {
                x.failures = x.failures.saturating_add(1);
                x.failures
            }
            _ => 0,
        }
    }

    /// Forgets the failures of the entry with this id (it answered).
    pub fn note_alive(&mut self, id: NodeId) {
        if let Some((r, c)) = self.slot(id)
            && let Some(x) = &mut self.cells[r][c]
            && x.node.id == id
        {
            x.failures = 0;
        }
    }

    /// The nodes of row `row`, by column.
    pub fn row(&self, row: usize) -> impl Iterator<Item = NodeAddr> + '_ {
        self.cells
            .get(row)
            .into_iter()
            .flatten()
            .filter_map(|c| c.map(|c| c.node))
    }

    /// The columns of row `row` that are empty, as a bit set (bit `c` for column `c`; this
    /// node's own column excluded): what to ask another node for.
    pub fn empty_columns(&self, row: usize) -> u16 {
        let Some(cells) = self.cells.get(row) else {
            return 0;
        };
        let own = digit(self.me, row);
        let mut set = 0u16;
        for (c, cell) in cells.iter().enumerate() {
            if cell.is_none() && c != own {
                set |= 1 << c;
            }
        }
        set
    }

    /// Every entry.
    pub fn nodes(&self) -> impl Iterator<Item = NodeAddr> + '_ {
        self.cells
            .iter()
            .flatten()
            .filter_map(|c| c.map(|c| c.node))
    }

    /// How many entries the table holds.
    pub fn len(&self) -> usize {
        self.nodes().count()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.nodes().next().is_none()
    }

    /// The entry closest to `key` under the ownership rule (the smallest clockwise distance
    /// from `key`), if it is strictly closer than `than`. An entry whose last request went
    /// unanswered is passed over until it is heard from again, so that the next attempt of a
    /// request goes around it at once.
    pub fn closest(&self, key: NodeId, than: NodeId) -> Option<NodeAddr> {
        let mut best: Option<NodeAddr> = None;
        let mut best_distance = key.distance_to(than);
        let healthy = self
            .cells
            .iter()
            .flatten()
            .flatten()
            .filter(|c| c.failures == 0)
            .map(|c| c.node);
        for n in healthy {
            let d = key.distance_to(n.id);
            if d < best_distance {
                best = Some(n);
                best_distance = d;
            }
        }
        best
    }
}

impl<
    R: CryptoRng,
    const L: usize,
    const KEYS: usize,
    const KEY: usize,
    const VALUE: usize,
    const PENDING: usize,
> DhtNode<R, L, KEYS, KEY, VALUE, PENDING>
{
    /// The node's routing table of far nodes.
    pub fn route_table(&self) -> &RouteTable<{ super::ROUTE_ROWS }> {
        &self.table
    }

    /// Where to send a request for `key`: `None` if this node owns it by its leaf set; else
    /// the leaf set's choice, or a routing-table entry strictly closer to the key. Every hop
    /// strictly decreases the clockwise distance to the key, so requests never loop.
    pub(super) fn next_hop(&self, key: NodeId) -> Option<NodeAddr> {
        let hop = self.leaf.next_hop(key)?;
        Some(self.table.closest(key, hop.id).unwrap_or(hop))
    }

    /// Where to forward the insertion of `joining`, whose successor by the leaf set is `hop`
    /// (not this node): a routing-table entry strictly closer to its id, if any, so that joins
    /// take O(log N) hops as requests do.
    pub(super) fn route_insertion_hop(&self, joining: NodeAddr, hop: NodeAddr) -> NodeAddr {
        let mut best = hop;
        for n in self.table.nodes() {
            if n.id != joining.id
                && n.addr != joining.addr
                && joining.id.distance_to(n.id) < joining.id.distance_to(best.id)
            {
                best = n;
            }
        }
        best
    }

    /// `node` proved itself to this node (it answered a request of this node at its address,
    /// or echoed its Challenge with its id bound there): it may enter the routing table.
    pub(super) fn route_learn(&mut self, now: Instant, node: NodeAddr) {
        let me = self.config.local;
        if node.id == me.id || node.addr == me.addr || self.tombstoned(now, node) {
            return;
        }
        self.route_hints.retain(|h| h.id != node.id);
        if self.table.get(node.id).is_none() && self.table.insert(node) {
            self.stats.route_learnt += 1;
        }
    }

    /// A node heard of (in a Route list, or the sender of a message): probed with a
    /// RouteRequest before it may enter the routing table, if it would.
    pub(super) fn route_hint(&mut self, now: Instant, node: NodeAddr) {
        let me = self.config.local;
        if node.id == me.id
            || node.addr == me.addr
            || !self.table.wants(node)
            || self.table.get(node.id).is_some()
            || self.route_hints.iter().any(|h| h.id == node.id)
            || self.tombstoned(now, node)
            || (self.config.bind_ids && !node.is_bound())
        {
            return;
        }
        if self.route_hints.is_full() {
            self.route_hints.remove(0);
        }
        let _ = self.route_hints.push(node);
        self.route_probe(now);
    }

    fn route_probes(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| matches!(p.task, Task::Route { .. }))
            .count()
    }

    /// Sends RouteRequests to waiting hints while fewer than [`ROUTE_PROBES`] are in flight.
    fn route_probe(&mut self, now: Instant) {
        while self.route_budget > 0 && self.route_probes() < ROUTE_PROBES && self.request_room() {
            let Some(node) = self.route_hints.pop() else {
                return;
            };
            if !self.table.wants(node) {
                continue;
            }
            self.ask_shared_row(now, node);
        }
    }

    /// Asks `node` for the row it shares with this node: the columns still empty here, or all.
    fn ask_shared_row(&mut self, now: Instant, node: NodeAddr) {
        let row = shared_digits(self.config.local.id, node.id).min(ROUTE_ROWS);
        let columns = match self.table.empty_columns(row) {
            0 => u16::MAX,
            empty => empty,
        };
        self.ask_row(now, node, row as u8, columns);
    }

    /// Probes routing-table entry `node` (a RouteRequest for the row it shares with this
    /// node) unless one is on its way: an insertion forwarded to it draws no answer, and a
    /// crashed entry is dropped only after `max_failures` unanswered requests. (Found with
    /// `sinew dht sim --churn`: joins near a crashed node failed again and again, every
    /// insertion routed into its stale routing-table cells.)
    pub(super) fn probe_route_entry(&mut self, now: Instant, node: NodeAddr) {
        let busy = self
            .pending
            .iter()
            .any(|p| p.to == node.addr && matches!(p.task, Task::Route { .. }));
        if busy || !self.request_room() {
            return;
        }
        self.ask_shared_row(now, node);
    }

    fn ask_row(&mut self, now: Instant, node: NodeAddr, row: u8, columns: u16) {
        self.route_budget = self.route_budget.saturating_sub(1);
        let message_id = self.fresh_id();
        let _ = self.pending.push(Pending {
            message_id,
            to: node.addr,
            to_id: Some(node.id),
            sent: None,
            deadline: now,
            task: Task::Route { row, columns },
        });
    }

    /// The background repair, at every stabilization: asks one node for one row, round robin
    /// over the rows — the entry of a filled cell of row `r` for its row `r` (whose cells all
    /// belong in this node's row `r`), or a leaf-set member while the row is empty — and probes
    /// waiting hints.
    pub(super) fn route_refresh(&mut self, now: Instant) {
        self.route_budget = ROUTE_BUDGET;
        if self.route_probes() < ROUTE_PROBES && self.request_room() && ROUTE_ROWS > 0 {
            let row = self.route_cursor % ROUTE_ROWS;
            self.route_cursor = self.route_cursor.wrapping_add(1);
            let from_row: Vec<NodeAddr, COLUMNS> = self.table.row(row).collect();
            let pick = self.route_cursor / ROUTE_ROWS;
            let target = if from_row.is_empty() {
                let count = self.leaf.nodes().count();
                self.leaf.nodes().nth(pick % count.max(1))
            } else {
                from_row.get(pick % from_row.len()).copied()
            };
            let columns = match self.table.empty_columns(row) {
                0 => u16::MAX,
                empty => empty,
            };
            if let Some(node) = target {
                self.ask_row(now, node, row as u8, columns);
            }
        }
        self.route_probe(now);
    }

    /// A RouteRequest: the asker is told the entries of the columns `columns` of row `row` of
    /// this table (and proves it receives first, as for InitConnect).
    pub(super) fn on_route_request(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        message_id: u64,
        row: u8,
        columns: u16,
    ) -> Disposition {
        if !self.in_ring() {
            // A node outside a ring (joining, or alone after a failed join) is nobody's route.
            return Disposition::Handled;
        }
        if !self.is_validated(sender.addr) {
            self.stats.challenges_sent += 1;
            self.send(sender.addr, message_id, Out::Withheld);
            return Disposition::Handled;
        }
        // The asker is only a hint: asking proves nothing about its id.
        self.route_hint(now, sender);
        self.send(sender.addr, message_id, Out::Route { row, columns });
        Disposition::Handled
    }

    /// A Route answer: matched to this node's RouteRequest by message id, address and id, its
    /// sender enters the table; the nodes it lists are only hints.
    pub(super) fn on_route(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        message_id: u64,
        nodes: NodeSet<'_>,
    ) -> Disposition {
        let Some(i) = self.pending.iter().position(|p| {
            p.message_id == message_id && p.sent.is_some() && matches!(p.task, Task::Route { .. })
        }) else {
            self.stats.unmatched += 1;
            return Disposition::Dropped(super::DropReason::Unmatched);
        };
        let p = &self.pending[i];
        if p.to != sender.addr || p.to_id.is_some_and(|id| id != sender.id) {
            self.stats.wrong_sender += 1;
            return Disposition::Dropped(super::DropReason::WrongSender);
        }
        self.pending.swap_remove(i);
        self.validate(sender.addr);
        self.table.note_alive(sender.id);
        self.route_learn(now, sender);
        for n in nodes.iter() {
            self.route_hint(now, n);
        }
        self.route_probe(now);
        Disposition::Handled
    }

    /// A request sent to `id` went unanswered: a routing-table entry that fails
    /// [`Config::max_failures`](super::Config::max_failures) times in a row is removed.
    pub(super) fn route_failure(&mut self, id: NodeId) {
        if self.table.note_failure(id) >= self.config.max_failures {
            self.table.remove(id);
            self.stats.route_dropped += 1;
        }
    }

    /// The entries of the columns `columns` of row `row` (at most [`ROUTE_LIST`]), to answer a
    /// RouteRequest.
    pub(super) fn route_row(&self, row: u8, columns: u16) -> Vec<NodeAddr, ROUTE_LIST> {
        let row = usize::from(row);
        self.table
            .row(row)
            .filter(|n| columns & (1 << digit(n.id, row)) != 0)
            .take(ROUTE_LIST)
            .collect()
    }
}

use super::ROUTE_ROWS;

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::SocketAddr;

    fn n(id: u128) -> NodeAddr {
        NodeAddr {
            id: NodeId::from_u128(id),
            addr: SocketAddr::from(([10, 0, 0, 1], (id >> 112) as u16 | 1)),
        }
    }

    #[test]
    fn digits_and_prefixes() {
        let a = NodeId::from_u128(0x1234 << 112);
        let b = NodeId::from_u128(0x1239 << 112);
        assert_eq!(shared_digits(a, b), 3);
        assert_eq!(shared_digits(a, a), 32);
        assert_eq!(digit(a, 0), 1);
        assert_eq!(digit(a, 3), 4);
        assert_eq!(digit(b, 3), 9);
        assert_eq!(digit(NodeId::from_u128(0xf), 31), 0xf);
    }

    #[test]
    fn a_cell_keeps_the_node_nearest_its_target() {
        // Row 0, column 5: the target is this node's id with its first digit set to 5 and the
        // next two bits set.
        let mut t: RouteTable<4> = RouteTable::new(NodeId::from_u128(0x1800 << 112));
        assert_eq!(t.target(0, 5), 0x5c00 << 112);
        assert!(t.insert(n(0x5100 << 112)));
        assert!(t.insert(n(0x5a00 << 112)), "one nearer 0x58.. replaces");
        assert!(!t.insert(n(0x5f00 << 112)), "a farther one does not");
        assert!(!t.wants(n(0x5200 << 112)));
        assert!(t.wants(n(0x5d00 << 112)));
        assert_eq!(
            t.row(0).map(|x| x.id.to_u128()).collect::<Vec<_, 16>>()[..],
            [0x5a00 << 112]
        );
        // Another node keeps another node of the same block: in-degree spreads.
        let mut u: RouteTable<4> = RouteTable::new(NodeId::from_u128(0x1300 << 112));
        assert_eq!(u.target(0, 5), 0x5f00 << 112);
        u.insert(n(0x5a00 << 112));
        assert!(u.insert(n(0x5f00 << 112)));
        assert!(t.insert(n(0x1000 << 112)), "row 1: shares one digit");
        assert_eq!(t.row(1).count(), 1);
        assert!(!t.insert(n(0x1800 << 112)), "never itself");
        assert_eq!(t.len(), 2);
        assert_eq!(t.note_failure(NodeId::from_u128(0x5a00 << 112)), 1);
        assert!(t.remove(NodeId::from_u128(0x5a00 << 112)));
        assert!(t.wants(n(0x5100 << 112)), "the emptied cell is refilled");
    }

    #[test]
    fn closest_is_strictly_closer_clockwise() {
        let mut t: RouteTable<4> = RouteTable::new(NodeId::from_u128(0x1000 << 112));
        t.insert(n(0x5f00 << 112));
        t.insert(n(0x9f00 << 112));
        let key = NodeId::from_u128(0x5000 << 112);
        let me = NodeId::from_u128(0x1000 << 112);
        assert_eq!(
            t.closest(key, me).map(|x| x.id.to_u128()),
            Some(0x5f00 << 112)
        );
        // A node just after the key is closer than every entry: none is taken.
        assert_eq!(t.closest(key, NodeId::from_u128((0x5000 << 112) + 1)), None);
    }
}
