//! The realtime wire: every frame a client and the server exchange over a WebSocket, v1 (the
//! seed's protocol, contract section 5) and v2 (`causerie.v2`), as serde types
//! (docs/protocol.md describes each). The server renders and reads them here; `causerie bench`
//! and the integration tests build and read the same types.
//!
//! Inbound frames are read in two steps, so that a malformed frame gets the protocol's error
//! code (`missing_field`, `invalid_field`, `invalid_frame`, …) rather than serde's message: the
//! text becomes a JSON object, then the frame's fields are read into a typed value.

mod digest;
pub(crate) mod parse;
pub mod v1;
pub mod v2;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use crate::chats::view::MessageView;
pub use crate::media::view::AttachmentView;
pub use digest::MessageDigest;

/// Why a frame was refused: a stable code and a text for people. v1 sends it as the error
/// frame's `error` object; v2's error frame carries its two fields beside the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: Cow<'static, str>,
    pub detail: String,
}

impl ErrorBody {
    pub fn new(code: &'static str, detail: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code: Cow::Borrowed(code),
            detail: detail.into(),
        }
    }
}

/// The body of a refused handshake (HTTP 403, before any upgrade).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeRefusal {
    pub detail: Cow<'static, str>,
    /// `missing_token`, `invalid_token`, `unknown_user`, `inactive_user`, `unknown_chat`,
    /// `not_a_member`.
    pub reason: Cow<'static, str>,
}

impl HandshakeRefusal {
    pub fn new(reason: &'static str) -> HandshakeRefusal {
        HandshakeRefusal {
            detail: Cow::Borrowed("WebSocket connection refused."),
            reason: Cow::Borrowed(reason),
        }
    }
}

/// A frame's text. Writing these types cannot fail: every map key is a string, and no field's
/// `Serialize` returns an error of its own (timestamps and ids always format).
pub(crate) fn to_text(frame: &impl Serialize) -> String {
    serde_json::to_string(frame).expect("wire frames always serialize")
}
