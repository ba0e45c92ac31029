//! The host side of the WIT `websocket` interface: which of its streams a
//! script handles clients of, and `client.send`.

use crate::bindings::aiwebengine::script::websocket::Host;
use crate::bindings::WsClient;
use crate::script::registrations::Hooks;
use crate::script::state::HostState;

impl Host for HostState {
    fn listen(
        &mut self,
        path: String,
        on_open: bool,
        on_message: bool,
        on_close: bool,
    ) -> Result<(), String> {
        let hooks = Hooks {
            open: on_open,
            message: on_message,
            close: on_close,
        };
        self.registrations.listen(path, hooks)
    }

    fn send(&mut self, client: String, json: String) -> bool {
        self.clients
            .send(&client, &self.registrations.streams, &json)
    }

    fn current_client(&mut self) -> WsClient {
        match &self.ws_client {
            Some(client) => WsClient::clone(client),
            // Only asked during a WebSocket event; an empty record otherwise.
            None => WsClient {
                id: String::new(),
                path: String::new(),
                params: Vec::new(),
            },
        }
    }
}
