//! The unique-ids workload: `generate` → `generate_ok {id}`, ids unique across all nodes, under
//! partitions (no coordination), and across restarts.
//!
//! An id is `<node id>-<boot id>-<counter>`. The node id makes ids unique between nodes and
//! the counter within one run; the boot id is 64 random bits drawn when the process starts,
//! because a killed node loses its counter: a node id and a counter alone repeat every id of
//! the previous run after a restart.

use serde_json::Map;

use crate::echo::not_supported;
use crate::{Ctx, Message, Reject, Workload};

/// Generates ids from the node id, a boot id and a counter.
#[derive(Clone, Debug)]
pub struct UniqueIds {
    boot: u64,
    counter: u64,
}

impl UniqueIds {
    /// A generator for one process lifetime; `boot` must differ between lifetimes (random
    /// bits from the operating system in [`UniqueIds::from_os`]).
    pub fn new(boot: u64) -> UniqueIds {
        UniqueIds { boot, counter: 0 }
    }

    /// A generator whose boot id comes from the operating system's random source.
    pub fn from_os() -> std::io::Result<UniqueIds> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        Ok(UniqueIds::new(u64::from_le_bytes(bytes)))
    }
}

impl Workload for UniqueIds {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        if message.kind != "generate" {
            return Err(not_supported(message));
        }
        let id = format!("{}-{:016x}-{}", ctx.node_id, self.boot, self.counter);
        self.counter += 1;
        let mut fields = Map::new();
        fields.insert("id".into(), id.into());
        ctx.reply(message, "generate_ok", fields);
        Ok(())
    }
}
