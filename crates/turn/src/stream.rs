//! Reading a TURN byte stream (TCP or TLS, RFC 8656 §12.5) message by message: what the relay
//! does with its stream clients and what the client's shim does with the server's replies.

use rtc_shared::turn_framing::TurnStreamDecoder;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most bytes a stream may hold that do not yet make a message (a STUN message is at most 64 KiB).
const MAX_STREAM_BUFFER: usize = 70_000;

/// Whole TURN messages (STUN or ChannelData, as on the wire) out of a byte stream.
pub(crate) struct MessageReader<R> {
    reader: R,
    decoder: TurnStreamDecoder,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub(crate) fn new(reader: R) -> Self {
        MessageReader { reader, decoder: TurnStreamDecoder::new(), buf: vec![0u8; 16384] }
    }

    /// The next message; `None` once the stream ended or failed, held something that is not
    /// TURN (a stream cannot resynchronise), or buffered more than a message can be.
    pub(crate) async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.decoder.next_message() {
                Ok(Some(message)) => return Some(message),
                Ok(None) => {}
                Err(_) => return None,
            }
            if self.decoder.buffered_len() > MAX_STREAM_BUFFER {
                return None;
            }
            match self.reader.read(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.decoder.extend_from_slice(&self.buf[..n]),
            }
        }
    }
}
