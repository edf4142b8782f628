//! The WebSocket frames that carry a packet's parts to clients.

use bytes::Bytes;

use super::packet::{err, PacketError, Part};

const WS_FIN: u8 = 0x80;
const WS_TEXT: u8 = 0x1;
const WS_BINARY: u8 = 0x2;

/// Each part as the WebSocket frame a client gets (lib/frames.js): a text
/// frame holding `"4"` (Engine.IO "message") + the string, or a binary frame.
/// Two buffers per part: header, payload.
pub fn to_ws_frames(parts: &[Part]) -> Vec<Bytes> {
    let mut frames = Vec::with_capacity(2 * parts.len());
    for part in parts {
        let (opcode, payload) = match part {
            Part::Text(s) => {
                let mut p = Vec::with_capacity(1 + s.len());
                p.push(b'4');
                p.extend_from_slice(s.as_bytes());
                (WS_TEXT, Bytes::from(p))
            }
            Part::Binary(b) => (WS_BINARY, b.clone()),
        };
        frames.push(ws_header(opcode, payload.len()));
        frames.push(payload);
    }
    frames
}

/// An unmasked, final, uncompressed frame header (RFC 6455, 5.2).
fn ws_header(opcode: u8, len: usize) -> Bytes {
    let mut h = Vec::with_capacity(10);
    h.push(WS_FIN | opcode);
    if len < 126 {
        h.push(len as u8);
    } else if len < 65536 {
        h.push(126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    Bytes::from(h)
}

/// The parts back from frames as [`to_ws_frames`] makes them, in buffers
/// split anywhere (read as one byte stream).
pub fn from_ws_frames(frames: &[&[u8]]) -> Result<Vec<Part>, PacketError> {
    let mut rd = Chunks {
        bufs: frames,
        idx: 0,
        off: 0,
        left: frames.iter().map(|f| f.len()).sum(),
    };
    let mut parts = Vec::new();
    while rd.left > 0 {
        let b0 = rd.byte()?;
        let b1 = rd.byte()?;
        if b0 & WS_FIN == 0 {
            return err("ws: fragmented frame");
        }
        if b0 & 0x70 != 0 {
            return err("ws: reserved bits set (compressed frame?)");
        }
        if b1 & 0x80 != 0 {
            return err("ws: masked frame");
        }
        let len = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([rd.byte()?, rd.byte()?])),
            127 => {
                let mut l = [0u8; 8];
                for b in &mut l {
                    *b = rd.byte()?;
                }
                u64::from_be_bytes(l)
            }
            n => u64::from(n),
        };
        let len = match usize::try_from(len) {
            Ok(len) if len <= rd.left => len,
            _ => return err("ws: frame longer than the data"),
        };
        match b0 & 0x0f {
            WS_TEXT => {
                if len == 0 || rd.byte()? != b'4' {
                    return err("ws: text frame is not an Engine.IO message");
                }
                let text = String::from_utf8(rd.take(len - 1)?)
                    .or_else(|_| err("ws: text frame is not UTF-8"))?;
                parts.push(Part::Text(text));
            }
            WS_BINARY => parts.push(Part::Binary(Bytes::from(rd.take(len)?))),
            op => return err(format!("ws: unexpected opcode {op}")),
        }
    }
    Ok(parts)
}

/// A byte reader over buffers read back to back.
struct Chunks<'a> {
    bufs: &'a [&'a [u8]],
    idx: usize,
    off: usize,
    left: usize,
}

impl Chunks<'_> {
    fn byte(&mut self) -> Result<u8, PacketError> {
        loop {
            let Some(buf) = self.bufs.get(self.idx) else {
                return err("ws: truncated frame");
            };
            if let Some(&b) = buf.get(self.off) {
                self.off += 1;
                self.left -= 1;
                return Ok(b);
            }
            self.idx += 1;
            self.off = 0;
        }
    }

    fn take(&mut self, mut n: usize) -> Result<Vec<u8>, PacketError> {
        if n > self.left {
            return err("ws: truncated frame");
        }
        let mut out = Vec::with_capacity(n);
        while n > 0 {
            let Some(buf) = self.bufs.get(self.idx) else {
                return err("ws: truncated frame");
            };
            let avail = buf.get(self.off..).unwrap_or_default();
            let k = avail.len().min(n);
            out.extend_from_slice(&avail[..k]);
            self.off += k;
            self.left -= k;
            n -= k;
            if self.off >= buf.len() {
                self.idx += 1;
                self.off = 0;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Part {
        Part::Text(s.into())
    }

    fn binary(b: &[u8]) -> Part {
        Part::Binary(Bytes::copy_from_slice(b))
    }

    #[test]
    fn ws_frames_carry_the_parts() {
        for len in [0usize, 125, 126, 65_535, 65_536] {
            let parts = vec![
                Part::Text("a".repeat(len.saturating_sub(1))),
                Part::Binary(Bytes::from(vec![7u8; len])),
            ];
            let frames = to_ws_frames(&parts);
            assert_eq!(frames.len(), 4);
            let header_len = |n: usize| match n {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            let text_len = len.saturating_sub(1) + 1;
            assert_eq!(frames[0].len(), header_len(text_len));
            assert_eq!(frames[0][0], 0x81);
            assert_eq!(frames[1][0], b'4');
            assert_eq!(frames[2].len(), header_len(len));
            assert_eq!(frames[2][0], 0x82);
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_ref()).collect();
            assert_eq!(from_ws_frames(&refs).expect("frames"), parts);
            // The same bytes, split differently.
            let all: Vec<u8> = frames.concat();
            assert_eq!(from_ws_frames(&[&all]).expect("one buffer"), parts);
            let pieces: Vec<&[u8]> = all.chunks(3).collect();
            assert_eq!(from_ws_frames(&pieces).expect("3-byte pieces"), parts);
        }
        assert_eq!(from_ws_frames(&[]).expect("nothing"), vec![]);

        let good = to_ws_frames(&[text("2[\"a\"]"), binary(b"xyz")]).concat();
        let bad: Vec<Vec<u8>> = vec![
            good[..good.len() - 1].to_vec(),    // truncated payload
            vec![0x81],                         // header alone
            vec![0x82, 126, 0x00],              // truncated length
            vec![0x82, 0x85, 1, 2, 3, 4, 5],    // masked
            vec![0x02, 0x01, 0x00],             // not FIN
            vec![0xc2, 0x01, 0x00],             // RSV1 (compressed)
            vec![0x88, 0x00],                   // close
            vec![0x80, 0x01, 0x00],             // continuation
            vec![0x81, 0x02, b'3', b'x'],       // not an Engine.IO message
            vec![0x81, 0x00],                   // empty text
            vec![0x81, 0x03, b'4', 0xff, 0xfe], // not UTF-8
            vec![0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // longer than any data
            vec![0x82, 127, 0, 0, 0, 0, 0, 0, 0, 9, 1], // longer than the data
        ];
        for b in bad {
            assert!(from_ws_frames(&[&b]).is_err(), "accepted {b:02x?}");
        }
    }
}
