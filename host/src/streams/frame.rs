//! One stream event, encoded once: its SSE frame and, beside it, its
//! WebSocket frame, shared by every subscriber of either transport.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use super::filter::{matches, Params};

/// The event sent to a reconnecting subscriber whose `Last-Event-ID` is older
/// than the replay buffer (or unknown to this stream): some messages are lost.
pub const MISSED_EVENT: &str = "missed";

/// One encoded event and who it is for.
pub struct Frame {
    pub id: u64,
    /// The SSE frame.
    pub bytes: Bytes,
    /// The same event as one whole WebSocket text frame (server frames are
    /// not masked, so these bytes are the same for every connection).
    pub ws: Bytes,
    filter: Option<Params>,
}

impl Frame {
    /// Message `id` carrying `json`, for the subscribers `filter` picks (all
    /// when it is `None`).
    pub(super) fn message(id: u64, json: &str, filter: Option<Params>) -> Frame {
        Frame {
            id,
            bytes: encode_frame(Some(id), None, json),
            ws: ws_text(encode_json(Some(id), json)),
            filter,
        }
    }

    /// The `missed` event for a subscriber resuming after `last` when the
    /// oldest message still kept is `first_available`.
    pub(super) fn missed(last: u64, first_available: u64) -> Frame {
        let gap = format!("{{\"lastEventId\":{last},\"firstAvailableId\":{first_available}}}");
        Frame {
            id: 0,
            bytes: encode_frame(None, Some(MISSED_EVENT), &gap),
            ws: ws_text(Bytes::from(format!(
                "{{\"event\":\"{MISSED_EVENT}\",\"data\":{gap}}}"
            ))),
            filter: None,
        }
    }

    /// Who it is for: `None` is everyone.
    pub(super) fn filter(&self) -> Option<&Params> {
        self.filter.as_ref()
    }

    /// Whether a subscriber with `params` gets it.
    pub(super) fn reaches(&self, params: &Params) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| matches(filter, params))
    }
}

/// Encodes one SSE event. `data` is one JSON text; should it ever hold line
/// breaks, each line becomes its own `data:` field, as SSE requires. SSE ends
/// lines at `\r\n`, `\r` or `\n`, so all three split here: whatever a script
/// passes off as JSON, it cannot start an `id:`, `event:` or `retry:` line.
pub fn encode_frame(id: Option<u64>, event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 24);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in sse_lines(data) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// `data`'s lines as an SSE client reads them: ended by `\r\n`, `\r` or `\n`.
/// (Built on `split(char)`, which searches with memchr: frames can be large.)
fn sse_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut pieces = data.split('\n').peekable();
    std::iter::from_fn(move || {
        let piece = pieces.next()?;
        let ended_by_lf = pieces.peek().is_some();
        Some(match ended_by_lf {
            true => piece.strip_suffix('\r').unwrap_or(piece), // CRLF is one line end
            false => piece,
        })
    })
    .flat_map(|line| line.split('\r'))
}

/// One WebSocket text frame (final, unmasked: a server's) carrying `text`,
/// which must be UTF-8; framed by tungstenite.
pub fn ws_text(text: Bytes) -> Bytes {
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        text,
        OpCode::Data(Data::Text),
        true,
    );
    let mut out = Vec::with_capacity(frame.len());
    // Writing into a Vec cannot fail.
    let _ = frame.format(&mut out);
    Bytes::from(out)
}

/// The WebSocket text of an event: `{"id":n,"data":...}`, or without the id.
pub fn encode_json(id: Option<u64>, data: &str) -> Bytes {
    Bytes::from(match id {
        Some(id) => format!("{{\"id\":{id},\"data\":{data}}}"),
        None => format!("{{\"data\":{data}}}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_id_event_and_data() {
        assert_eq!(
            &encode_frame(Some(7), None, "{\"a\":1}")[..],
            b"id: 7\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &encode_frame(Some(1), None, "a\nb")[..],
            b"id: 1\ndata: a\ndata: b\n\n"
        );
        assert_eq!(
            &encode_frame(None, Some("missed"), "{}")[..],
            b"event: missed\ndata: {}\n\n"
        );
    }

    #[test]
    fn websocket_frames_are_whole_unmasked_text_frames() {
        assert_eq!(&ws_text(Bytes::from_static(b"hi"))[..], b"\x81\x02hi");
        let long = ws_text(Bytes::from(vec![b'a'; 200]));
        assert_eq!((&long[..4], long.len()), (&b"\x81\x7e\x00\xc8"[..], 204));
    }

    #[test]
    fn carriage_returns_cannot_start_fields() {
        assert_eq!(
            &encode_frame(Some(1), None, "a\rid: 9\r\nevent: x\n\rretry: 1")[..],
            b"id: 1\ndata: a\ndata: id: 9\ndata: event: x\ndata: \ndata: retry: 1\n\n"
        );
    }
}
