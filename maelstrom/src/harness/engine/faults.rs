//! The nemesis's actions: partitions on the network, kills and restarts, pauses and resumes
//! of node processes.

use std::time::Instant;

use super::super::nemesis::Action;
use super::{Engine, NodeSlot, NodeState, Phase};
use crate::history::OpType;

impl Engine {
    pub(super) fn expire_restarts(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Init { .. }) {
            return;
        }
        for i in 0..self.nodes.len() {
            if let NodeState::Starting { deadline, .. } = self.nodes[i].state
                && deadline <= now
            {
                self.note(
                    now,
                    format!("{} did not answer init after restart", self.nodes[i].id),
                );
                self.take_down(i, now);
            }
        }
    }

    pub(super) fn note(&mut self, now: Instant, what: String) {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        self.nemesis_stats.log.push(format!("{ms} ms: {what}"));
    }

    /// Kills node `i`'s process (if any) and completes its clients' operations as `Info`.
    pub(super) fn take_down(&mut self, i: usize, now: Instant) {
        let slot = &mut self.nodes[i];
        if let Some(mut p) = slot.process.take() {
            if slot.paused {
                let _ = p.pause(false);
            }
            p.kill();
        }
        slot.paused = false;
        slot.state = NodeState::Down;
        for c in 0..self.clients.len() {
            if self.clients[c].node == i
                && let Some(p) = &self.clients[c].pending
            {
                let value = p.inv.value.clone();
                let text = "crash: the node was killed".to_owned();
                self.complete(c, now, OpType::Info, value, Some((Some(13), text)));
            }
        }
    }

    pub(super) fn apply(&mut self, action: Action, now: Instant) {
        let names = |nodes: &[NodeSlot], ts: &[usize]| {
            ts.iter()
                .filter_map(|t| nodes.get(*t).map(|n| n.id.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match action {
            Action::Partition(sides, spec) => {
                let cut: Vec<usize> = (0..sides.len()).filter(|i| sides[*i] == 1).collect();
                self.note(
                    now,
                    format!("partition {spec}: [{}] cut off", names(&self.nodes, &cut)),
                );
                self.nemesis_stats.partitions += 1;
                self.net.partition(Some(sides));
            }
            Action::Heal => {
                if self.net.is_partitioned() {
                    self.note(now, "partition healed".into());
                }
                self.net.partition(None);
            }
            Action::Kill(targets) => {
                self.note(now, format!("kill [{}]", names(&self.nodes, &targets)));
                for i in targets {
                    if self.nodes[i].state != NodeState::Down {
                        self.nemesis_stats.kills += 1;
                        self.take_down(i, now);
                    }
                }
            }
            Action::Restart => {
                for i in 0..self.nodes.len() {
                    if self.nodes[i].state == NodeState::Down {
                        let id = self.nodes[i].id.clone();
                        match self.boot(i, now) {
                            Ok(()) => self.note(now, format!("restart {id}")),
                            Err(e) => self.note(now, format!("restart {id} failed: {e}")),
                        }
                    }
                }
            }
            Action::Pause(targets) => {
                self.note(now, format!("pause [{}]", names(&self.nodes, &targets)));
                for i in targets {
                    let slot = &mut self.nodes[i];
                    if let Some(p) = &slot.process
                        && !slot.paused
                        && p.pause(true).is_ok()
                    {
                        slot.paused = true;
                        self.nemesis_stats.pauses += 1;
                    }
                }
            }
            Action::Resume => {
                for slot in &mut self.nodes {
                    if let Some(p) = &slot.process
                        && slot.paused
                    {
                        let _ = p.pause(false);
                        slot.paused = false;
                    }
                }
                self.note(now, "resume".into());
            }
        }
    }
}
