//! The nemesis (Jepsen's combined packages, as Maelstrom composes them): every
//! `--nemesis-interval` on average (uniform in `[0, 2 × interval]`) one of the enabled faults
//! flips — a partition starts or heals, nodes are killed or restarted, paused or resumed.
//! Partitions are Jepsen's `:one` (one node alone), `:majority` (random halves, a majority
//! and a minority) and `:minority-third`; kills and pauses hit `:one` node or a `:minority`.
//! Before the final phase everything is healed.

use std::time::{Duration, Instant};

use super::later;
use super::rng::Rng;

/// The faults of `--nemesis` (a comma-separated list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Faults {
    /// `partition`: node↔node messages across a cut are dropped.
    pub partition: bool,
    /// `kill`: processes are killed, and later restarted with a fresh `init`.
    pub kill: bool,
    /// `pause`: processes are stopped (SIGSTOP) and later continued (SIGCONT).
    pub pause: bool,
}

impl Faults {
    /// No faults.
    pub const NONE: Faults = Faults {
        partition: false,
        kill: false,
        pause: false,
    };

    /// Whether any fault is enabled.
    pub fn any(self) -> bool {
        self.partition || self.kill || self.pause
    }
}

impl std::str::FromStr for Faults {
    type Err = String;

    fn from_str(s: &str) -> Result<Faults, String> {
        let mut faults = Faults::NONE;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "partition" => faults.partition = true,
                "kill" => faults.kill = true,
                "pause" => faults.pause = true,
                _ => return Err(format!("unknown fault {name:?}; partition, kill or pause")),
            }
        }
        Ok(faults)
    }
}

/// What the nemesis does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Cut the nodes into sides (`sides[node]`); the spec's name for the log.
    Partition(Vec<u8>, &'static str),
    /// Heal the partition.
    Heal,
    /// Kill these nodes.
    Kill(Vec<usize>),
    /// Restart the killed nodes.
    Restart,
    /// Pause these nodes.
    Pause(Vec<usize>),
    /// Resume the paused nodes.
    Resume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Partition,
    Kill,
    Pause,
}

/// The schedule of faults.
#[derive(Debug)]
pub(crate) struct Nemesis {
    kinds: Vec<Kind>,
    interval: Duration,
    nodes: usize,
    rng: Rng,
    next_at: Option<Instant>,
    active: Vec<Kind>,
}

impl Nemesis {
    pub(crate) fn new(faults: Faults, interval: Duration, nodes: usize, seed: u64) -> Nemesis {
        let kinds = [
            (faults.partition, Kind::Partition),
            (faults.kill, Kind::Kill),
            (faults.pause, Kind::Pause),
        ]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
        Nemesis {
            kinds,
            interval,
            nodes,
            rng: Rng::new(seed, 3),
            next_at: None,
            active: Vec::new(),
        }
    }

    /// Starts the schedule at `now`.
    pub(crate) fn start(&mut self, now: Instant) {
        if !self.kinds.is_empty() {
            self.next_at = Some(later(now, self.rng.stagger(self.interval)));
        }
    }

    /// When the next fault flips.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.next_at
    }

    /// The action due by `now`, if any.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Action> {
        let at = self.next_at?;
        if at > now {
            return None;
        }
        self.next_at = Some(later(now, self.rng.stagger(self.interval)));
        let kind = self.kinds[self.rng.below(self.kinds.len() as u64) as usize];
        if let Some(i) = self.active.iter().position(|k| *k == kind) {
            self.active.remove(i);
            return Some(match kind {
                Kind::Partition => Action::Heal,
                Kind::Kill => Action::Restart,
                Kind::Pause => Action::Resume,
            });
        }
        self.active.push(kind);
        Some(match kind {
            Kind::Partition => {
                let (sides, name) = self.partition_sides();
                Action::Partition(sides, name)
            }
            Kind::Kill => Action::Kill(self.targets()),
            Kind::Pause => Action::Pause(self.targets()),
        })
    }

    /// Stops the schedule; the actions that undo every active fault.
    pub(crate) fn heal_all(&mut self) -> Vec<Action> {
        self.next_at = None;
        self.active
            .drain(..)
            .map(|k| match k {
                Kind::Partition => Action::Heal,
                Kind::Kill => Action::Restart,
                Kind::Pause => Action::Resume,
            })
            .collect()
    }

    /// `:one`, `:majority` or `:minority-third`: which nodes are cut from the rest.
    fn partition_sides(&mut self) -> (Vec<u8>, &'static str) {
        let order = self.rng.shuffled(self.nodes);
        let (alone, name) = match self.rng.below(3) {
            0 => (1, "one"),
            1 => (self.nodes / 2, "majority"),
            _ => (
                self.nodes.div_ceil(3).saturating_sub(1).max(1),
                "minority-third",
            ),
        };
        let mut sides = vec![0; self.nodes];
        for &n in order.iter().take(alone) {
            sides[n] = 1;
        }
        (sides, name)
    }

    /// `:one` node or a `:minority` (fewer than half, at least one).
    fn targets(&mut self) -> Vec<usize> {
        let order = self.rng.shuffled(self.nodes);
        let count = if self.rng.coin() {
            1
        } else {
            (self.nodes.saturating_sub(1) / 2).max(1)
        };
        let mut t: Vec<usize> = order.into_iter().take(count).collect();
        t.sort_unstable();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_faults_parse_from_maelstroms_list() {
        let f: Faults = "partition, kill".parse().unwrap();
        assert!(f.partition && f.kill && !f.pause);
        assert_eq!("".parse::<Faults>(), Ok(Faults::NONE));
        assert!("clock".parse::<Faults>().unwrap_err().contains("clock"));
    }

    #[test]
    fn test_faults_flip_and_heal() {
        let faults = Faults {
            partition: true,
            kill: true,
            pause: true,
        };
        let mut n = Nemesis::new(faults, Duration::from_millis(10), 5, 4);
        let t0 = Instant::now();
        assert_eq!(n.poll(t0), None);
        n.start(t0);
        let mut partitions = 0;
        let mut heals = 0;
        let mut t = t0;
        for _ in 0..200 {
            t += Duration::from_millis(20);
            match n.poll(t) {
                Some(Action::Partition(sides, _)) => {
                    partitions += 1;
                    let cut = sides.iter().filter(|s| **s == 1).count();
                    assert!((1..=2).contains(&cut), "{sides:?}");
                }
                Some(Action::Heal) => heals += 1,
                Some(Action::Kill(t) | Action::Pause(t)) => assert!((1..=2).contains(&t.len())),
                _ => {}
            }
            assert!(
                n.next_at()
                    .is_some_and(|at| at <= t + Duration::from_millis(20))
            );
        }
        assert!(partitions > 5 && (partitions - heals) <= 1);
        let undo = n.heal_all();
        assert!(undo.len() <= 3);
        assert_eq!(n.poll(t + Duration::from_secs(1)), None);
    }
}
