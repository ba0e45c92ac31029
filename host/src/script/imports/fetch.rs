//! The host side of the WIT `fetch` interface: the guest starts a fetch.

use crate::bindings::aiwebengine::script::fetch::{FetchRequest, Host};
use crate::script::state::HostState;

impl Host for HostState {
    fn start(&mut self, req: FetchRequest) -> Result<u64, String> {
        let result = self.fetch.start(req);
        if let Err(why) = &result {
            tracing::debug!(script = &*self.script, "fetch refused: {why}");
        }
        result
    }
}
