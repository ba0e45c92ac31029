//! Message filters: a message sent with a filter reaches only the subscribers
//! whose query parameters include every one of its pairs.

/// Query parameters: a subscriber's, or a message's filter.
pub type Params = Vec<(String, String)>;

/// Whether a subscriber with `params` is one a message's `filter` picks.
pub(super) fn matches(filter: &Params, params: &Params) -> bool {
    filter.iter().all(|f| params.contains(f))
}
