//! The frame gate: what keeps a socket that receives a large frame from keeping a large buffer.
//!
//! tungstenite reads a frame into its read buffer, reserving the frame's whole length, and the
//! buffer keeps that allocation for the rest of the connection. So frames above
//! `ws_max_frame_bytes` never reach it: the gate sits between the upgraded connection and
//! tungstenite, reads the client's frame headers as the bytes go by, and takes out every single
//! (unfragmented) text frame above that size. Such a frame up to `ws_max_photo_bytes` is read
//! into a buffer of its own once the server-wide budget (`ws_large_frame_budget_bytes`) has room
//! for it — until then the gate reads nothing and TCP holds the client back — and one above is
//! read and thrown away. tungstenite gets a short text frame in its place (keeping the frames'
//! order): a per-socket random token, which [`LargeFrames::resolve`] swaps for what the gate
//! took. A client cannot send that token itself: it never leaves the server.
//!
//! Everything else passes untouched, and tungstenite applies its rules to it (fragmented or
//! binary frames above the limit still close with 1009). An idle gate holds no buffer.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;
use tungstenite::Utf8Bytes;

/// The longest frame header: 2 bytes, a 64-bit length, a mask.
const MAX_HEADER: usize = 14;
/// The token's length in the placeholder frame (hex of 16 random bytes).
const TOKEN_LEN: usize = 32;
/// A placeholder frame: a final masked text frame (mask 0) carrying the token.
const PLACEHOLDER_LEN: usize = 6 + TOKEN_LEN;
/// Bytes thrown away per read while discarding a frame over `ws_max_photo_bytes`.
const DISCARD_CHUNK: usize = 8 * 1024;

/// The server-wide limits the gates of photo-carrying sockets apply.
pub(crate) struct GateLimits {
    /// Frames up to this size pass through.
    pub(crate) max_frame_bytes: usize,
    /// Text frames up to this size are buffered; larger ones are discarded.
    pub(crate) max_large_bytes: usize,
    /// One permit per byte held in large frames, on every socket together.
    pub(crate) budget: Arc<Semaphore>,
}

/// What the gate took out of the stream, in order, for the session to pick up.
pub(crate) enum Taken {
    /// A large text frame's payload (unmasked, not yet checked for UTF-8); its budget is given
    /// back when the last `Bytes` of it is dropped.
    Frame(Bytes),
    /// A frame over `ws_max_photo_bytes`, discarded unread.
    TooLarge,
}

/// What a text frame read from the socket turns out to be.
pub(crate) enum Resolved {
    /// An ordinary text frame, or a large one the gate took out (`large`).
    Text { text: Utf8Bytes, large: bool },
    /// A frame over `ws_max_photo_bytes`, not read.
    TooLarge,
    /// A large frame that is not valid UTF-8.
    InvalidUtf8,
}

/// The state a gate shares with its session: the token and the frames taken out. Small, and
/// allocated once per socket.
pub(crate) struct LargeFrames {
    token: [u8; TOKEN_LEN],
    taken: Mutex<VecDeque<Taken>>,
}

impl LargeFrames {
    fn new() -> LargeFrames {
        let mut token = [0u8; TOKEN_LEN];
        // Safe: 16 bytes encode to exactly TOKEN_LEN hex digits.
        hex::encode_to_slice(rand::random::<[u8; TOKEN_LEN / 2]>(), &mut token).expect("sized");
        LargeFrames {
            token,
            taken: Mutex::new(VecDeque::new()),
        }
    }

    /// Swaps a placeholder for the frame it stands for; any other text is itself.
    pub(crate) fn resolve(&self, text: Utf8Bytes) -> Resolved {
        if text.as_bytes() != self.token {
            return Resolved::Text { text, large: false };
        }
        match self.taken.lock().pop_front() {
            // Only the gate knows the token, and it queues before it passes the placeholder.
            None => Resolved::Text { text, large: false },
            Some(Taken::TooLarge) => Resolved::TooLarge,
            Some(Taken::Frame(bytes)) => match Utf8Bytes::try_from(bytes) {
                Ok(text) => Resolved::Text { text, large: true },
                Err(_) => Resolved::InvalidUtf8,
            },
        }
    }

    fn placeholder(&self) -> [u8; PLACEHOLDER_LEN] {
        let mut frame = [0u8; PLACEHOLDER_LEN];
        frame[0] = 0x81;
        frame[1] = 0x80 | TOKEN_LEN as u8;
        // Bytes 2..6: a zero mask, so the token goes as it is.
        frame[6..].copy_from_slice(&self.token);
        frame
    }
}

/// A frame header as far as the gate cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// The header's own length.
    size: usize,
    /// The payload's length.
    len: u64,
    /// Final, no reserved bits, text, masked: the only kind the gate may take out.
    whole_text: bool,
    mask: [u8; 4],
}

/// How long the header starting with `head` is, once its first two bytes are known.
fn header_size(head: &[u8]) -> Option<usize> {
    let second = *head.get(1)?;
    let length = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some(2 + length + mask)
}

/// Parses the header at the start of `head`; None while it is incomplete.
fn parse_header(head: &[u8]) -> Option<Header> {
    let size = header_size(head)?;
    if head.len() < size {
        return None;
    }
    let (first, second) = (head[0], head[1]);
    let (len, rest) = match second & 0x7f {
        126 => (u64::from(u16::from_be_bytes([head[2], head[3]])), &head[4..size]),
        127 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&head[2..10]);
            (u64::from_be_bytes(be), &head[10..size])
        }
        short => (u64::from(short), &head[2..size]),
    };
    let masked = second & 0x80 != 0;
    let mut mask = [0u8; 4];
    if masked {
        mask.copy_from_slice(rest);
    }
    Some(Header {
        size,
        len,
        whole_text: first == 0x81 && masked,
        mask,
    })
}

/// Unmasks `bytes`, which start `offset` bytes into their payload.
fn unmask(bytes: &mut [u8], mask: [u8; 4], offset: u64) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask[((offset + i as u64) % 4) as usize];
    }
}

/// The payload of a large frame and the budget it holds, as one owner for `Bytes`.
struct Held {
    bytes: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A large frame being read: only a socket in the middle of one pays for this.
struct Large {
    len: u64,
    mask: [u8; 4],
    /// Payload bytes read so far.
    read: u64,
    /// None: over `ws_max_photo_bytes`, discarded.
    keep: Option<Keep>,
}

struct Keep {
    budget: PollSemaphore,
    permit: Option<OwnedSemaphorePermit>,
    bytes: Vec<u8>,
}

/// An `AsyncRead` (and pass-through `AsyncWrite`) over a socket's connection; see the module
/// documentation.
pub(crate) struct FrameGate<IO> {
    io: IO,
    /// None: a socket whose frames all pass (v2).
    limits: Option<Arc<GateLimits>>,
    frames: Arc<LargeFrames>,
    /// Payload bytes of the current frame still to pass through; 0 at a frame boundary.
    left: u64,
    /// The start of a header, held back until it is whole.
    head: [u8; MAX_HEADER],
    head_len: u8,
    /// Bytes to hand on before anything more is read: a header held back, or a placeholder.
    out: [u8; PLACEHOLDER_LEN],
    out_at: u8,
    out_end: u8,
    /// Bytes read from the connection past the start of a large frame, read again before the
    /// connection (they are the frame's first bytes, perhaps followed by others).
    replay: Option<Box<(Vec<u8>, usize)>>,
    large: Option<Box<Large>>,
}

impl<IO> FrameGate<IO> {
    /// A gate over `io`; `limits` None lets every frame through.
    pub(crate) fn new(io: IO, limits: Option<Arc<GateLimits>>) -> FrameGate<IO> {
        FrameGate {
            io,
            limits,
            frames: Arc::new(LargeFrames::new()),
            left: 0,
            head: [0; MAX_HEADER],
            head_len: 0,
            out: [0; PLACEHOLDER_LEN],
            out_at: 0,
            out_end: 0,
            replay: None,
            large: None,
        }
    }

    /// What the session reads the frames taken out from.
    pub(crate) fn frames(&self) -> Arc<LargeFrames> {
        self.frames.clone()
    }

    /// Whether a frame with `header` is taken out of the stream.
    fn takes(&self, header: &Header) -> bool {
        self.limits
            .as_ref()
            .is_some_and(|limits| header.whole_text && header.len > limits.max_frame_bytes as u64)
    }

    /// Starts taking out a large frame whose header has been read.
    fn start_large(&mut self, header: Header) {
        let limits = self.limits.as_ref().expect("only gates with limits take frames");
        let keep = (header.len <= limits.max_large_bytes as u64).then(|| Keep {
            budget: PollSemaphore::new(limits.budget.clone()),
            permit: None,
            bytes: Vec::new(),
        });
        self.large = Some(Box::new(Large {
            len: header.len,
            mask: header.mask,
            read: 0,
            keep,
        }));
    }
}

impl<IO: AsyncRead + Unpin> FrameGate<IO> {
    /// Reads from the replayed bytes first, then from the connection.
    fn poll_input(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(replay) = &mut self.replay {
            let (bytes, at) = &mut **replay;
            let n = buf.remaining().min(bytes.len() - *at);
            buf.put_slice(&bytes[*at..*at + n]);
            *at += n;
            if *at == bytes.len() {
                self.replay = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }

    /// Reads the rest of the large frame. `Ok(false)`: the connection ended first.
    fn poll_large(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut large = self.large.take().expect("a large frame");
        let polled = self.poll_large_inner(cx, &mut large);
        if matches!(polled, Poll::Pending) {
            self.large = Some(large);
            return Poll::Pending;
        }
        if let Poll::Ready(Ok(true)) = polled {
            let taken = match large.keep {
                Some(Keep {
                    permit: Some(permit),
                    bytes,
                    ..
                }) => Taken::Frame(Bytes::from_owner(Held { bytes, _permit: permit })),
                _ => Taken::TooLarge,
            };
            self.frames.taken.lock().push_back(taken);
            self.out = self.frames.placeholder();
            self.out_at = 0;
            self.out_end = PLACEHOLDER_LEN as u8;
        }
        polled
    }

    fn poll_large_inner(&mut self, cx: &mut Context<'_>, large: &mut Large) -> Poll<io::Result<bool>> {
        loop {
            let want = large.len - large.read;
            if want == 0 {
                return Poll::Ready(Ok(true));
            }
            let n = match &mut large.keep {
                Some(keep) => {
                    if keep.permit.is_none() {
                        // Validated at start: the frame fits the budget (and a u32).
                        let permits = large.len as u32;
                        match ready!(keep.budget.poll_acquire_many(cx, permits)) {
                            Some(permit) => keep.permit = Some(permit),
                            None => return Poll::Ready(Err(io::Error::other("frame budget closed"))),
                        }
                        // Zeroed pages cost nothing until written, and no unsafe is needed.
                        keep.bytes = vec![0; large.len as usize];
                    }
                    let at = large.read as usize;
                    let mut buf = ReadBuf::new(&mut keep.bytes[at..]);
                    ready!(self.poll_input(cx, &mut buf))?;
                    let n = buf.filled().len();
                    unmask(&mut keep.bytes[at..at + n], large.mask, large.read);
                    n
                }
                None => {
                    let mut scratch = [0u8; DISCARD_CHUNK];
                    let limit = (want as usize).min(DISCARD_CHUNK);
                    let mut buf = ReadBuf::new(&mut scratch[..limit]);
                    ready!(self.poll_input(cx, &mut buf))?;
                    buf.filled().len()
                }
            };
            if n == 0 {
                return Poll::Ready(Ok(false));
            }
            large.read += n as u64;
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FrameGate<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.limits.is_none() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.out_at < this.out_end {
                let n = buf.remaining().min(usize::from(this.out_end - this.out_at));
                buf.put_slice(&this.out[usize::from(this.out_at)..usize::from(this.out_at) + n]);
                this.out_at += n as u8;
                return Poll::Ready(Ok(()));
            }
            if this.large.is_some() {
                if !ready!(this.poll_large(cx))? {
                    // The peer left in the middle of the frame: end of stream.
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.head_len > 0 {
                // A header split across reads: read just the rest of it.
                let have = usize::from(this.head_len);
                let need = header_size(&this.head[..have]).unwrap_or(2);
                if have < need {
                    let mut rest = [0u8; MAX_HEADER];
                    let mut part = ReadBuf::new(&mut rest[..need - have]);
                    ready!(this.poll_input(cx, &mut part))?;
                    let n = part.filled().len();
                    if n == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    this.head[have..have + n].copy_from_slice(part.filled());
                    this.head_len += n as u8;
                    continue;
                }
                let header = parse_header(&this.head[..have]).expect("whole header");
                this.head_len = 0;
                if this.takes(&header) {
                    this.start_large(header);
                } else {
                    this.out[..have].copy_from_slice(&this.head[..have]);
                    this.out_at = 0;
                    this.out_end = have as u8;
                    this.left = header.len;
                }
                continue;
            }
            let start = buf.filled().len();
            ready!(this.poll_input(cx, buf))?;
            let end = buf.filled().len();
            if end == start {
                return Poll::Ready(Ok(()));
            }
            match this.scan(buf, start, end) {
                // Everything read was handed on, or a part before a large frame.
                true => return Poll::Ready(Ok(())),
                // A large frame or held-back header began where this read began: go on.
                false => continue,
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> FrameGate<IO> {
    /// Walks the frames in `buf[start..end]`, just read. Cuts the read short before a header
    /// that is not whole yet (kept in `head`) or a frame to take out (the bytes from there on
    /// are replayed). Returns whether any byte is left to hand on.
    fn scan(&mut self, buf: &mut ReadBuf<'_>, start: usize, end: usize) -> bool {
        let mut at = start;
        while at < end {
            if self.left > 0 {
                let n = (end - at).min(usize::try_from(self.left).unwrap_or(usize::MAX));
                at += n;
                self.left -= n as u64;
                continue;
            }
            let bytes = &buf.filled()[at..end];
            let Some(header) = parse_header(bytes) else {
                let n = bytes.len().min(MAX_HEADER);
                self.head[..n].copy_from_slice(&bytes[..n]);
                self.head_len = n as u8;
                buf.set_filled(at);
                return at > start;
            };
            if !self.takes(&header) {
                at += header.size;
                self.left = header.len;
                continue;
            }
            let after = bytes[header.size..].to_vec();
            self.replay = match self.replay.take() {
                // What was read from the replay goes back in front of what it still holds.
                Some(old) => {
                    let (rest, from) = *old;
                    let mut bytes = after;
                    bytes.extend_from_slice(&rest[from..]);
                    Some(Box::new((bytes, 0)))
                }
                None if after.is_empty() => None,
                None => Some(Box::new((after, 0))),
            };
            self.start_large(header);
            buf.set_filled(at);
            return at > start;
        }
        true
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FrameGate<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use futures_util::FutureExt;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Hands out its bytes in the chunks given, then the end of the stream.
    struct Chunks(VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            // An empty read would be the end of the stream.
            while self.0.front().is_some_and(Vec::is_empty) {
                self.0.pop_front();
            }
            if let Some(chunk) = self.0.front_mut() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    self.0.pop_front();
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: `first` byte, the payload's length in the `form` given (7, 16 or 64
    /// bits, even where a shorter one would do), masked unless `mask` is None.
    fn frame(first: u8, payload: &[u8], form: u8, mask: Option<[u8; 4]>) -> Vec<u8> {
        let masked = if mask.is_some() { 0x80 } else { 0 };
        let mut out = vec![first];
        match form {
            7 => out.push(masked | payload.len() as u8),
            16 => {
                out.push(masked | 126);
                out.extend((payload.len() as u16).to_be_bytes());
            }
            _ => {
                out.push(masked | 127);
                out.extend((payload.len() as u64).to_be_bytes());
            }
        }
        match mask {
            Some(mask) => {
                out.extend(mask);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            }
            None => out.extend(payload),
        }
        out
    }

    fn limits(max_frame_bytes: usize, max_large_bytes: usize, budget: usize) -> Arc<GateLimits> {
        Arc::new(GateLimits {
            max_frame_bytes,
            max_large_bytes,
            budget: Arc::new(Semaphore::new(budget)),
        })
    }

    /// Everything the gate hands on, read `read_size` bytes at a time.
    async fn drain<IO: AsyncRead + Unpin>(gate: &mut FrameGate<IO>, read_size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; read_size];
        loop {
            let n = gate.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn headers_in_every_length_form() {
        for (form, len) in [(7u8, 0usize), (7, 125), (16, 126), (16, 300), (64, 5), (64, 70_000)] {
            let payload = vec![b'a'; len];
            let bytes = frame(0x81, &payload, form, Some(MASK));
            let header = parse_header(&bytes).unwrap();
            let size =
                2 + match form {
                    7 => 0,
                    16 => 2,
                    _ => 8,
                } + 4;
            assert_eq!(
                header,
                Header {
                    size,
                    len: len as u64,
                    whole_text: true,
                    mask: MASK
                },
                "{form}-bit length {len}"
            );
            assert_eq!(header_size(&bytes[..2]), Some(size));
            // Not whole until its last byte.
            for cut in 0..size {
                assert_eq!(
                    parse_header(&bytes[..cut]),
                    None,
                    "{form}-bit length {len}, cut at {cut}"
                );
            }
        }
        let unmasked = parse_header(&frame(0x81, b"hi", 7, None)).unwrap();
        assert_eq!((unmasked.size, unmasked.len, unmasked.whole_text), (2, 2, false));
        // Not a final text frame: a fragment, a continuation, binary, reserved bits, a ping.
        for first in [0x01, 0x80, 0x82, 0xc1, 0x89] {
            assert!(!parse_header(&frame(first, b"hi", 7, Some(MASK))).unwrap().whole_text);
        }
        assert_eq!(header_size(&[0x81]), None);
    }

    /// Small frames (and everything else not taken) pass byte for byte; a large text frame is
    /// replaced by the placeholder, and resolving it gives the payload back; one over the
    /// photo limit by a placeholder that resolves to `TooLarge`. At every split of the input
    /// into two reads, and for read buffers of several sizes.
    #[tokio::test]
    async fn large_frames_are_taken_out_at_any_split() {
        let small = frame(0x81, b"{\"message\":\"hi\"}", 7, Some(MASK));
        let large_payload: Vec<u8> = (0..200u32).map(|i| b'a' + (i % 26) as u8).collect();
        let large = frame(0x81, &large_payload, 16, Some([1, 2, 3, 4]));
        let large64 = frame(0x81, &large_payload[..150], 64, Some(MASK));
        let huge = frame(0x81, &[b'z'; 400], 16, Some(MASK));
        let binary = frame(0x82, &[7; 100], 7, Some(MASK));
        let unmasked = frame(0x81, &[b'u'; 100], 7, None);
        let fragment = frame(0x01, &[b'f'; 100], 7, Some(MASK));
        let ping = frame(0x89, b"p", 7, Some(MASK));
        let input = [
            &small[..],
            &large,
            &ping,
            &large64,
            &small,
            &huge,
            &binary,
            &unmasked,
            &fragment,
            &small,
        ]
        .concat();
        for split in 0..=input.len() {
            for read_size in [1, 7, 64, 4096] {
                let chunks = VecDeque::from([input[..split].to_vec(), input[split..].to_vec()]);
                let mut gate = FrameGate::new(Chunks(chunks), Some(limits(100, 300, 1000)));
                let placeholder = gate.frames.placeholder();
                let expected = [
                    &small[..],
                    &placeholder,
                    &ping,
                    &placeholder,
                    &small,
                    &placeholder,
                    &binary,
                    &unmasked,
                    &fragment,
                    &small,
                ]
                .concat();
                let out = drain(&mut gate, read_size).await;
                assert!(out == expected, "split at {split}, reads of {read_size}");
                let token = Utf8Bytes::try_from(Bytes::copy_from_slice(&placeholder[6..])).unwrap();
                let budget = gate.limits.clone().unwrap().budget.clone();
                assert_eq!(
                    budget.available_permits(),
                    1000 - 350,
                    "the two frames kept hold their bytes"
                );
                let frames = gate.frames();
                let mut resolved = Vec::new();
                for _ in 0..3 {
                    resolved.push(match frames.resolve(token.clone()) {
                        Resolved::Text { text, large: true } => Some(text.as_bytes().to_vec()),
                        Resolved::TooLarge => None,
                        _ => panic!("not a placeholder"),
                    });
                }
                assert_eq!(
                    resolved,
                    [Some(large_payload.clone()), Some(large_payload[..150].to_vec()), None],
                    "split at {split}"
                );
                assert_eq!(budget.available_permits(), 1000, "given back once dropped");
            }
        }
    }

    /// Text that merely looks like a placeholder is itself, and so is the token once nothing
    /// is queued; the gate takes nothing out of a socket without limits.
    #[tokio::test]
    async fn only_the_gate_makes_placeholders() {
        let frames = LargeFrames::new();
        let other = LargeFrames::new();
        let forged = Utf8Bytes::try_from(Bytes::copy_from_slice(&other.token)).unwrap();
        assert!(matches!(frames.resolve(forged), Resolved::Text { large: false, .. }));
        let own = Utf8Bytes::try_from(Bytes::copy_from_slice(&frames.token)).unwrap();
        assert!(matches!(frames.resolve(own), Resolved::Text { large: false, .. }));

        let large = frame(0x81, &[b'a'; 300], 16, Some(MASK));
        let mut gate = FrameGate::new(Chunks(VecDeque::from([large.clone()])), None);
        assert_eq!(drain(&mut gate, 64).await, large);
    }

    #[tokio::test]
    async fn invalid_utf8_is_reported() {
        let large = frame(0x81, &[0xff; 300], 16, Some(MASK));
        let mut gate = FrameGate::new(Chunks(VecDeque::from([large])), Some(limits(100, 1000, 1000)));
        let out = drain(&mut gate, 64).await;
        let token = Utf8Bytes::try_from(Bytes::copy_from_slice(&out[6..])).unwrap();
        assert!(matches!(gate.frames().resolve(token), Resolved::InvalidUtf8));
    }

    /// A frame that does not fit what is left of the budget waits, reading nothing, until the
    /// frame holding it is dropped.
    #[tokio::test]
    async fn frames_wait_for_the_budget() {
        let shared = limits(100, 1000, 500);
        let first = frame(0x81, &[b'a'; 300], 16, Some(MASK));
        let second = frame(0x81, &[b'b'; 300], 16, Some(MASK));
        let mut one = FrameGate::new(Chunks(VecDeque::from([first])), Some(shared.clone()));
        let mut two = FrameGate::new(Chunks(VecDeque::from([second])), Some(shared.clone()));
        let placeholder = one.frames.placeholder();
        assert_eq!(drain(&mut one, 64).await, placeholder);
        let token = Utf8Bytes::try_from(Bytes::copy_from_slice(&placeholder[6..])).unwrap();
        let Resolved::Text {
            text: held,
            large: true,
        } = one.frames().resolve(token)
        else {
            panic!("the first frame")
        };
        assert_eq!(shared.budget.available_permits(), 200);

        let mut buf = [0u8; 64];
        assert!(two.read(&mut buf).now_or_never().is_none(), "the second frame waits");
        assert!(two.read(&mut buf).now_or_never().is_none(), "and still waits");
        // Given back, and handed straight to the waiting frame.
        drop(held);
        let expected = two.frames.placeholder();
        assert_eq!(drain(&mut two, 64).await, expected);
        assert_eq!(shared.budget.available_permits(), 200);
    }
}
