//! Just enough of RESP (3, and 2) to read what Rondo's raw connections receive: the session
//! layer's tracking connection (replies to its set-up commands and `PING`s, `invalidate`
//! pushes) and the pub/sub subscriber's (subscription confirmations and messages, as RESP3
//! pushes or RESP2 arrays).
//!
//! Incremental: [`parse`] takes whatever bytes have arrived and answers `Ok(None)` until a
//! whole frame is there. Sizes and nesting are bounded, and nothing is allocated up front
//! from a length the input claims, so a hostile or corrupt stream costs an error, never a
//! panic or a huge allocation.

/// Deepest nesting accepted; an invalidation is two levels deep.
const MAX_DEPTH: usize = 8;
/// Largest bulk string accepted (Redis' own `proto-max-bulk-len` default).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// One RESP3 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Simple, bulk and verbatim strings, big numbers and doubles, as their bytes.
    Text(Vec<u8>),
    /// Simple and bulk errors.
    Error(String),
    Int(i64),
    Bool(bool),
    Null,
    /// Arrays and sets.
    Array(Vec<Frame>),
    /// Maps, flattened to key, value, key, value...
    Map(Vec<Frame>),
    /// Out-of-band data such as `invalidate`.
    Push(Vec<Frame>),
}

/// The stream is not RESP3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed RESP3 from Redis: {0}")]
pub(crate) struct ProtocolError(&'static str);

/// Parses the frame at the start of `buf`: the frame and the bytes it took, or `None` when
/// `buf` holds only part of one.
///
/// # Errors
///
/// `buf` does not start with a valid frame.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let mut at = 0;
    match frame(buf, &mut at, 0)? {
        Some(frame) => Ok(Some((frame, at))),
        None => Ok(None),
    }
}

/// The line at `*at` (without its CRLF), moving past it; `None` when incomplete.
fn line<'a>(buf: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let rest = buf.get(*at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    *at += end + 2;
    Some(&rest[..end])
}

fn int(text: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ProtocolError("bad number"))
}

/// A length that may be -1 (RESP2's null); anything else negative is an error.
fn length(text: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    match int(text)? {
        -1 => Ok(None),
        n => usize::try_from(n)
            .ok()
            .filter(|n| *n <= max)
            .map(Some)
            .ok_or(ProtocolError("bad length")),
    }
}

fn frame(buf: &[u8], at: &mut usize, depth: usize) -> Result<Option<Frame>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError("nested too deep"));
    }
    let Some(&kind) = buf.get(*at) else {
        return Ok(None);
    };
    *at += 1;
    let Some(head) = line(buf, at) else {
        return Ok(None);
    };
    let frame = match kind {
        b'+' | b',' | b'(' => Frame::Text(head.to_vec()),
        b'-' => Frame::Error(String::from_utf8_lossy(head).into_owned()),
        b':' => Frame::Int(int(head)?),
        b'_' => Frame::Null,
        b'#' => match head {
            b"t" => Frame::Bool(true),
            b"f" => Frame::Bool(false),
            _ => return Err(ProtocolError("bad boolean")),
        },
        b'$' | b'=' | b'!' => {
            let Some(len) = length(head, MAX_BULK)? else {
                return Ok(Some(Frame::Null));
            };
            let end = *at + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string without CRLF"));
            }
            let body = buf[*at..end].to_vec();
            *at = end + 2;
            if kind == b'!' {
                Frame::Error(String::from_utf8_lossy(&body).into_owned())
            } else {
                Frame::Text(body)
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(count) = length(head, usize::MAX / 2)? else {
                return Ok(Some(Frame::Null));
            };
            let count = if matches!(kind, b'%' | b'|') {
                count * 2
            } else {
                count
            };
            // Every element takes at least three bytes: a claim beyond that is a lie, and
            // capacity never trusts it.
            let mut items = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                match frame(buf, at, depth + 1)? {
                    Some(item) => items.push(item),
                    None => return Ok(None),
                }
            }
            match kind {
                b'>' => Frame::Push(items),
                b'%' => Frame::Map(items),
                // An attribute annotates the frame that follows it: skip to that one.
                b'|' => return frame(buf, at, depth + 1),
                _ => Frame::Array(items),
            }
        }
        _ => return Err(ProtocolError("unknown type byte")),
    };
    Ok(Some(frame))
}

/// A command as RESP: an array of bulk strings.
pub(crate) fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &[u8]) -> Frame {
        let (frame, used) = parse(text).expect("valid").expect("complete");
        assert_eq!(used, text.len());
        frame
    }

    #[test]
    fn parses_an_invalidation_push() {
        let text = b">2\r\n$10\r\ninvalidate\r\n*2\r\n$3\r\nt:a\r\n$3\r\nt:b\r\n";
        assert_eq!(
            whole(text),
            Frame::Push(vec![
                Frame::Text(b"invalidate".to_vec()),
                Frame::Array(vec![
                    Frame::Text(b"t:a".to_vec()),
                    Frame::Text(b"t:b".to_vec())
                ]),
            ])
        );
        let flush = b">2\r\n$10\r\ninvalidate\r\n_\r\n";
        assert_eq!(
            whole(flush),
            Frame::Push(vec![Frame::Text(b"invalidate".to_vec()), Frame::Null])
        );
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete_not_an_error() {
        let text = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nt:a\r\n";
        for end in 0..text.len() {
            assert_eq!(parse(&text[..end]), Ok(None), "prefix of {end} bytes");
        }
        let mut two = text.to_vec();
        two.extend_from_slice(b"+PONG\r\n");
        let (_, used) = parse(&two).expect("valid").expect("complete");
        assert_eq!(
            parse(&two[used..]),
            Ok(Some((Frame::Text(b"PONG".to_vec()), 7)))
        );
    }

    #[test]
    fn parses_replies_of_the_set_up_commands() {
        assert_eq!(whole(b"+OK\r\n"), Frame::Text(b"OK".to_vec()));
        assert_eq!(
            whole(b"-ERR unknown command 'HELLO'\r\n"),
            Frame::Error("ERR unknown command 'HELLO'".into())
        );
        assert_eq!(
            whole(b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"),
            Frame::Map(vec![
                Frame::Text(b"server".to_vec()),
                Frame::Text(b"redis".to_vec()),
                Frame::Text(b"proto".to_vec()),
                Frame::Int(3),
            ])
        );
        assert_eq!(whole(b"|1\r\n+a\r\n+b\r\n:7\r\n"), Frame::Int(7));
        assert_eq!(whole(b"#t\r\n"), Frame::Bool(true));
        assert_eq!(whole(b"$-1\r\n"), Frame::Null);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            &b"?x\r\n"[..],
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b":12a\r\n",
            b"#x\r\n",
            b"*99999999999999999999\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(parse(deep.as_bytes()).is_err());
        // A huge claimed count with few bytes is just incomplete, and allocates little.
        assert_eq!(parse(b"*1000000000\r\n:1\r\n"), Ok(None));
    }

    #[test]
    fn encodes_commands() {
        assert_eq!(command(&[b"PING"]), b"*1\r\n$4\r\nPING\r\n".to_vec());
        assert_eq!(
            command(&[b"HELLO", b"3"]),
            b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n".to_vec()
        );
    }
}
