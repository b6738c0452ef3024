//! The header of a client's WebSocket frame, read before its payload arrives.
//!
//! actix-http's codec compares a frame's length with its limit only once the whole frame has
//! arrived, so a client declaring 2^40 bytes would be buffered for as long as it streams.
//! [`peek`] reads just the header (RFC 6455 §5.2), so that [`super::inbound`] refuses an
//! oversized frame, or a control frame the codec would refuse later, as soon as its header is
//! in; everything else (masking, reserved bits, opcodes) is still the codec's to check.

/// The longest frame header a client can send: 2 bytes, a 64-bit length, a 4-byte mask.
pub(super) const MAX_HEADER_LEN: usize = 14;

/// RFC 6455 §5.5: control frames carry at most 125 bytes and are never fragmented.
pub(super) const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest whole control frame a client can send (a 2-byte header, the mask, 125 bytes):
/// one may arrive between the fragments of a message.
pub(super) const MAX_CONTROL_FRAME_LEN: usize = 2 + 4 + MAX_CONTROL_PAYLOAD;

/// What a frame header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameHeader {
    /// FIN: the last frame of its message.
    pub fin: bool,
    /// The four opcode bits.
    pub opcode: u8,
    /// The declared payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Close, ping and pong (opcodes 8 and up).
    pub fn is_control(self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// A control frame that is fragmented or longer than RFC 6455 allows.
    pub fn is_bad_control(self) -> bool {
        self.is_control() && (!self.fin || self.payload_len > MAX_CONTROL_PAYLOAD as u64)
    }
}

/// The header at the start of `buf`, once enough of it has arrived to know the payload
/// length; `None` until then.
pub(super) fn peek(buf: &[u8]) -> Option<FrameHeader> {
    let (&first, rest) = buf.split_first()?;
    let (&second, rest) = rest.split_first()?;
    let payload_len = match second & 0x7F {
        126 => u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
        127 => u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
        short => u64::from(short),
    };
    Some(FrameHeader {
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        payload_len,
    })
}

#[cfg(test)]
mod tests {
    use actix_http::ws::{OpCode, Parser};
    use actix_web::web::BytesMut;

    use super::*;

    #[test]
    fn the_length_is_known_once_its_bytes_are_in() {
        assert_eq!(peek(&[]), None);
        assert_eq!(peek(&[0x81]), None);
        let short = peek(&[0x81, 0x85]).unwrap();
        assert_eq!((short.fin, short.opcode, short.payload_len), (true, 1, 5));
        assert_eq!(peek(&[0x01, 0xFE, 0x01]), None);
        assert_eq!(peek(&[0x01, 0xFE, 0x01, 0x00]).unwrap().payload_len, 256);
        let huge = [0x81, 0xFF, 0, 0, 0x01, 0, 0, 0, 0, 0];
        assert_eq!(peek(&huge[..9]), None);
        assert_eq!(peek(&huge).unwrap().payload_len, 1 << 40);
    }

    proptest::proptest! {
        #[test]
        fn the_length_read_is_the_one_actix_http_writes(
            len in 0usize..70_000,
            masked: bool,
            opcode in proptest::sample::select(vec![OpCode::Text, OpCode::Binary, OpCode::Continue]),
        ) {
            let mut frame = BytesMut::new();
            Parser::write_message(&mut frame, vec![0u8; len], opcode, false, masked);
            let length_field_end = match len {
                0..=125 => 2,
                126..=0xFFFF => 4,
                _ => 10,
            };
            proptest::prop_assert_eq!(peek(&frame[..length_field_end - 1]), None);
            let header = peek(&frame).unwrap();
            proptest::prop_assert_eq!(header.payload_len, len as u64);
            proptest::prop_assert!(!header.fin);
            proptest::prop_assert_eq!(header.opcode, u8::from(opcode));
        }

        #[test]
        fn any_bytes_are_a_header_or_too_few(bytes in proptest::collection::vec(0u8.., 0..16)) {
            if let Some(header) = peek(&bytes) {
                proptest::prop_assert!(bytes.len() >= 2);
                proptest::prop_assert!(header.opcode < 16);
            }
        }
    }

    #[test]
    fn control_frames_must_be_short_and_whole() {
        let ping = |fin: u8, len: u8| peek(&[fin | 0x9, 0x80 | len]).unwrap();
        assert!(!ping(0x80, 125).is_bad_control());
        assert!(peek(&[0x89, 0xFE, 0x00, 126]).unwrap().is_bad_control());
        assert!(ping(0x00, 0).is_bad_control());
        // A data frame without FIN is an ordinary fragment.
        assert!(!peek(&[0x01, 0x85]).unwrap().is_bad_control());
    }
}
