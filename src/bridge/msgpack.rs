//! msgpack bytes and [`Value`]s: read as `notepack.decode` reads them (checked
//! before rmpv builds anything), written in rmpv's shortest forms.

use rmpv::Value;

use super::packet::{err, PacketError, MAX_DEPTH};

/// rmpv spends two units of depth per array or map level and three on a leaf
/// string, bin or ext: room for [`MAX_DEPTH`] levels (checked exactly before).
const RMPV_MAX_DEPTH: usize = 2 * MAX_DEPTH + 4;

/// msgpack bytes of a value (rmpv's encoding: the shortest forms).
pub fn to_msgpack(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // io::Write for Vec<u8> never fails, and nor does rmpv's writing into it.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

/// The value msgpack bytes hold: exactly one value, nested at most
/// [`MAX_DEPTH`] arrays/maps deep, without the reserved marker 0xc1 (rmpv
/// reads it as nil, notepack refuses it). Strings that are not UTF-8 come
/// back as notepack reads them, with U+FFFD for each bad sequence (rmpv
/// would write them back as bin).
pub fn from_msgpack(b: &[u8]) -> Result<Value, PacketError> {
    // Checked before rmpv recurses into it.
    check_msgpack(b)?;
    let mut rd = b;
    let mut v = rmpv::decode::read_value_with_max_depth(&mut rd, RMPV_MAX_DEPTH)
        .map_err(|e| PacketError(format!("msgpack: {e}")))?;
    if !rd.is_empty() {
        return err(format!("msgpack: {} trailing bytes", rd.len()));
    }
    make_utf8(&mut v);
    Ok(v)
}

/// Walks msgpack without building it (no recursion): one complete value,
/// nothing after it, every length within the data, no reserved marker, no
/// nesting deeper than [`MAX_DEPTH`].
fn check_msgpack(b: &[u8]) -> Result<(), PacketError> {
    let mut at = 0usize;
    // Items still to read in each open array/map, under one for the value itself.
    let mut open: Vec<u64> = vec![1];
    let be = |at: usize, n: usize| -> Result<u64, PacketError> {
        match b.get(at..at + n) {
            Some(s) => Ok(s.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x))),
            None => err("msgpack: truncated"),
        }
    };
    while let Some(left) = open.last_mut() {
        if *left == 0 {
            open.pop();
            continue;
        }
        *left -= 1;
        let Some(&m) = b.get(at) else {
            return err("msgpack: truncated");
        };
        at += 1;
        // (bytes to skip, items the value holds)
        let (skip, items): (u64, u64) = match m {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
            0x90..=0x9f => (0, u64::from(m & 0x0f)),
            0xa0..=0xbf => (u64::from(m & 0x1f), 0),
            0xc1 => return err("msgpack: reserved marker 0xc1"),
            0xc4 | 0xd9 => (1 + be(at, 1)?, 0),
            0xc5 | 0xda => (2 + be(at, 2)?, 0),
            0xc6 | 0xdb => (4 + be(at, 4)?, 0),
            0xc7 => (1 + 1 + be(at, 1)?, 0),
            0xc8 => (2 + 1 + be(at, 2)?, 0),
            0xc9 => (4 + 1 + be(at, 4)?, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4..=0xd8 => (1 + (1u64 << (m - 0xd4)), 0),
            0xdc => (2, be(at, 2)?),
            0xdd => (4, be(at, 4)?),
            0xde => (2, 2 * be(at, 2)?),
            0xdf => (4, 2 * be(at, 4)?),
        };
        at = match usize::try_from(skip).ok().and_then(|s| at.checked_add(s)) {
            Some(end) if end <= b.len() => end,
            _ => return err("msgpack: truncated"),
        };
        if matches!(m, 0x80..=0x9f | 0xdc..=0xdf) {
            // The value itself sits on the stack, so containers are len - 1 deep.
            if open.len() > MAX_DEPTH {
                return err("msgpack: nested too deeply");
            }
            open.push(items);
        }
    }
    if at != b.len() {
        return err(format!("msgpack: {} trailing bytes", b.len() - at));
    }
    Ok(())
}

/// Replaces strings that are not UTF-8 by their lossy form (recursion
/// bounded by [`MAX_DEPTH`], checked before).
fn make_utf8(v: &mut Value) {
    match v {
        Value::String(s) if s.is_err() => {
            *s = String::from_utf8_lossy(s.as_bytes()).into_owned().into();
        }
        Value::Array(items) => items.iter_mut().for_each(make_utf8),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            make_utf8(k);
            make_utf8(v);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::packet::{packet_to_value, Packet, ACK};
    use super::super::test_values::{arr, bin, s};
    use super::*;

    #[test]
    fn msgpack_round_trips_and_refuses_garbage() {
        let v = packet_to_value(&Packet {
            kind: ACK,
            nsp: "/chat".into(),
            id: Some(9),
            data: arr(vec![
                s("x"),
                bin(b"y"),
                Value::F64(0.5),
                (-7).into(),
                Value::Ext(-1, vec![0; 4]),
            ]),
        });
        let b = to_msgpack(&v);
        assert_eq!(from_msgpack(&b).expect("decodes"), v);

        for bad in [
            &[][..],
            &[0x92, 0x01],                   // array missing an item
            &[0xc4, 0x05, 0x01],             // bin shorter than its length
            &[0xdb, 0xff, 0xff, 0xff, 0xff], // str of 4 GiB, not there
            &[0xdd, 0xff, 0xff, 0xff, 0xff], // array of 4 G items, not there
            &[0x01, 0x02],                   // trailing bytes
            &[0xd7, 0xff, 0x00],             // truncated ext
            &[0xc1],                         // reserved
            &[0x92, 0x01, 0xc1],             // reserved, nested
            &[0xc7, 0x02, 0x05, 0x00],       // ext 8 shorter than its length
            &[0xde, 0x00, 0x01, 0x01],       // map missing a value
            &[0xdf, 0xff, 0xff, 0xff, 0xff], // map of 4 G entries, not there
        ] {
            assert!(from_msgpack(bad).is_err(), "accepted {bad:02x?}");
        }
        // Deep nesting is refused while reading, without exhausting the stack.
        let mut deep = vec![0x91u8; 1000];
        deep.push(0xc0);
        assert!(from_msgpack(&deep).is_err());
        let mut deep = [0x81u8, 0xc0].repeat(1000);
        deep.push(0xc0);
        assert!(from_msgpack(&deep).is_err());
        let nested = |levels: usize| {
            let mut b = vec![0x91u8; levels - 1];
            b.push(0x90);
            b
        };
        assert!(from_msgpack(&nested(MAX_DEPTH)).is_ok());
        assert!(from_msgpack(&nested(MAX_DEPTH + 1)).is_err());
        let mut leaf = vec![0x91u8; MAX_DEPTH];
        leaf.extend_from_slice(&[0xd6, 0xff, 0, 0, 0, 0]);
        assert!(from_msgpack(&leaf).is_ok(), "an ext at the deepest level");
    }
}
