//! The admin token that opens `/_engine` (`--admin-token`, env
//! `AIWEBENGINE_ADMIN_TOKEN`): a setting whose `Debug` does not show it.

use std::fmt;

/// The admin token; its `Debug` does not show it.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// `None` for an empty token (an unset variable often arrives as one).
    pub fn new(token: impl Into<String>) -> Option<AdminToken> {
        let token = token.into();
        (!token.is_empty()).then_some(AdminToken(token))
    }

    /// The token itself, for the `/_engine` gate to compare against.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}
