//! The echo workload: `echo {echo}` → `echo_ok {echo}`, the payload unchanged.

use serde_json::Map;

use crate::{Ctx, ErrorCode, Message, Reject, Workload};

/// Echoes every `echo` request's `echo` value back.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Workload for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        if message.kind != "echo" {
            return Err(not_supported(message));
        }
        let echo = message
            .get("echo")
            .ok_or_else(|| Reject::malformed("echo: missing field `echo`"))?;
        let mut fields = Map::new();
        fields.insert("echo".into(), echo.clone());
        ctx.reply(message, "echo_ok", fields);
        Ok(())
    }
}

/// `not-supported` for a message type a workload does not handle.
pub(crate) fn not_supported(message: &Message) -> Reject {
    Reject::new(
        ErrorCode::NotSupported,
        format!("message type `{}` is not supported", message.kind),
    )
}
