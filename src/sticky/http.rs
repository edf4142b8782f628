//! What the balancer reads of an HTTP request, and the answers it gives
//! itself. Free of I/O.
//!
//! The balancer reads a request's head only: the Engine.IO session id (`sid`
//! in the query) picks the worker, and a configured header (such as
//! `X-Forwarded-For`) can stand in for the client's address. The body, and
//! every byte after the head, is the worker's to read.

use std::net::IpAddr;

/// Headers a request may have; more is a 431, as in Node.js (which allows
/// 2000, but no Engine.IO request comes close to 64).
const MAX_HEADERS: usize = 64;

/// What a request head tells the balancer.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// The Engine.IO session id of the query string, if any.
    pub sid: Option<String>,
    /// The client's address according to the configured header, if present.
    pub forwarded_for: Option<String>,
}

/// The outcome of reading the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet (and still within the limit).
    Partial,
    Complete(Head),
    /// The head is longer than the limit, or has too many headers.
    TooLarge,
    /// Not an HTTP/1.x request.
    Bad,
}

/// Reads the head at the start of `buf`. `ip_header` is a lower-case header
/// name.
pub fn parse(buf: &[u8], max_head: usize, ip_header: Option<&str>) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            if len > max_head {
                return Parsed::TooLarge;
            }
            let sid = req.path.and_then(query_sid).map(str::to_string);
            let forwarded_for = ip_header.and_then(|name| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.split(',').next())
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            });
            Parsed::Complete(Head { sid, forwarded_for })
        }
        Ok(httparse::Status::Partial) if buf.len() >= max_head => Parsed::TooLarge,
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::TooLarge,
        Err(_) => Parsed::Bad,
    }
}

/// The value of `sid` in the query of `path`.
fn query_sid(path: &str) -> Option<&str> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sid="))
        .filter(|v| !v.is_empty())
}

/// The pid of the worker that made session id `sid`: workers behind the
/// balancer end their ids with `.` and their pid in base 36 (lib/sticky.js).
pub fn sid_owner(sid: &str) -> Option<u32> {
    let (_, tail) = sid.rsplit_once('.')?;
    if tail.is_empty() || tail.len() > 7 {
        return None;
    }
    u32::from_str_radix(tail, 36).ok().filter(|pid| *pid > 0)
}

/// A stable hash of a client address, for `balance: "ip-hash"`: the textual
/// form of an IP (so `::ffff:10.0.0.1` and `10.0.0.1` agree), FNV-1a.
pub fn address_hash(address: &str) -> u64 {
    let canonical = match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        Ok(ip) => ip.to_string(),
        Err(_) => address.to_string(),
    };
    canonical.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A complete response that closes the connection.
pub fn response(status: u16, reason: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Engine.IO's own answer to a session it does not know (code 1): the client
/// gives up on the session and Socket.IO reconnects.
pub fn unknown_session() -> Vec<u8> {
    response(
        400,
        "Bad Request",
        "application/json",
        r#"{"code":1,"message":"Session ID unknown"}"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 16 * 1024;

    #[test]
    fn reads_the_sid_and_the_forwarded_address() {
        let req = b"GET /socket.io/?EIO=4&transport=polling&t=x&sid=AbC-_12.2n9c HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.1.2.3, 192.168.0.1\r\n\r\n";
        assert_eq!(
            parse(req, MAX, Some("x-forwarded-for")),
            Parsed::Complete(Head {
                sid: Some("AbC-_12.2n9c".into()),
                forwarded_for: Some("10.1.2.3".into())
            })
        );
        assert_eq!(
            sid_owner("AbC-_12.2n9c"),
            Some(u32::from_str_radix("2n9c", 36).unwrap())
        );
        let handshake = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n\r\n";
        assert_eq!(
            parse(handshake, MAX, None),
            Parsed::Complete(Head {
                sid: None,
                forwarded_for: None
            })
        );
    }

    #[test]
    fn partial_large_and_bad_heads() {
        assert_eq!(
            parse(b"GET /socket.io/?EIO=4 HTTP/1.1\r\nHost:", MAX, None),
            Parsed::Partial
        );
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX));
        assert_eq!(parse(&long, MAX, None), Parsed::TooLarge);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            many.extend(format!("h{i}: v\r\n").bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(parse(&many, MAX, None), Parsed::TooLarge);
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00\x01\x00", MAX, None),
            Parsed::Bad
        );
        assert_eq!(parse(b"hello world\r\n\r\n", MAX, None), Parsed::Bad);
    }

    #[test]
    fn sids_of_other_shapes_have_no_owner() {
        for sid in ["plainbase64id", "x.", "x.!!", "x.zzzzzzzz", "x.0"] {
            assert_eq!(sid_owner(sid), None, "{sid}");
        }
    }

    #[test]
    fn mapped_addresses_hash_like_their_ipv4_form() {
        assert_eq!(address_hash("::ffff:10.0.0.1"), address_hash("10.0.0.1"));
        assert_ne!(address_hash("10.0.0.1"), address_hash("10.0.0.2"));
    }

    #[test]
    fn answers_close_the_connection_with_a_length() {
        let r = String::from_utf8(unknown_session()).unwrap();
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\n{\"code\":1,\"message\":\"Session ID unknown\"}"));
        assert!(r.contains(&format!(
            "Content-Length: {}\r\n",
            r.split("\r\n\r\n").nth(1).unwrap().len()
        )));
    }
}
