//! A light reading of the message object, for readers that handle many frames.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// The few fields of a message object that a reader checking order and latency needs, the text
/// borrowed from the frame when it has no escapes; every other field is skipped unparsed.
/// `causerie bench` reads up to a million `message` frames a second on the machine it loads: a
/// whole [`MessageView`](super::MessageView) (two timestamps, three ids) costs it about half as
/// much again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDigest<'a> {
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(default)]
    pub author: Option<UserId>,
    /// The message's text.
    #[serde(default, borrow)]
    pub message: Cow<'a, str>,
}
