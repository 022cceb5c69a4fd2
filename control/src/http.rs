//! The client's transport: one HTTP/1.1 request per connection (`Connection: close`)
//! over a std TcpStream, with timeouts and bounded reads. It reads the status line,
//! the headers, and a body framed by Content-Length, chunked encoding, or EOF.
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::ControlError;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read, in bytes (head and body).
pub const RESPONSE_LEN_MAX: usize = 16 * 1024 * 1024;

/// An answer: its status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends one request to `address` and reads the answer.
pub(crate) fn send(
    address: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Answer, ControlError> {
    let connect = |source| ControlError::Connect { address: address.to_owned(), source };
    let io = |source| ControlError::io(format!("talking to the control endpoint at {address}"), source);
    let target =
        address.to_socket_addrs().map_err(connect)?.next().ok_or_else(|| {
            connect(std::io::Error::new(std::io::ErrorKind::NotFound, "the address resolves to nothing"))
        })?;
    let mut stream = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).map_err(connect)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).map_err(io)?;
    let raw = read_answer(&mut stream).map_err(io)?;
    parse_answer(&raw).map_err(|detail| ControlError::Protocol(format!("the control endpoint at {address}: {detail}")))
}

/// Reads until EOF, or until a Content-Length body is complete.
fn read_answer(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if raw.len() > RESPONSE_LEN_MAX {
            return Ok(raw);
        }
        if let Some((head_len, Some(body_len))) = head_end(&raw).map(|h| (h, content_length(&raw[..h]))) {
            if raw.len() >= head_len + body_len {
                return Ok(raw);
            }
        }
    }
}

/// The length of the head including its blank line, once it is all there.
fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn content_length(head: &[u8]) -> Option<usize> {
    header(std::str::from_utf8(head).ok()?, "Content-Length")?.parse().ok()
}

fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    if raw.len() > RESPONSE_LEN_MAX {
        return Err(format!("the answer is over the limit of {RESPONSE_LEN_MAX} bytes"));
    }
    let head_len = head_end(raw).ok_or("the answer ended before its headers did")?;
    let head = std::str::from_utf8(raw.get(..head_len).unwrap_or_default()).map_err(|_| "the headers are not UTF-8")?;
    let body = raw.get(head_len..).unwrap_or_default();
    let status_line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("not an HTTP answer: {:?}", status_line.chars().take(80).collect::<String>()))?;
    let body = if header(head, "Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(body)?
    } else if let Some(n) = header(head, "Content-Length") {
        let n: usize = n.parse().map_err(|_| format!("bad Content-Length {n:?}"))?;
        body.get(..n).ok_or_else(|| format!("the body ended after {} of {n} bytes", body.len()))?.to_vec()
    } else {
        body.to_vec()
    };
    Ok(Answer { status, body })
}

/// Decodes a chunked body (RFC 9112 §7.1), ignoring extensions and trailers.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("a chunk size line is cut")?;
        let line = std::str::from_utf8(rest.get(..line_end).unwrap_or_default()).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
            .map_err(|_| format!("bad chunk size {line:?}"))?;
        rest = rest.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(rest.get(..size).ok_or("a chunk is cut")?);
        rest = rest.get(size..).and_then(|r| r.strip_prefix(b"\r\n")).ok_or("a chunk does not end with CRLF")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_content_length_bodies_decode() {
        // Pins the two body framings: a chunked body is joined, a Content-Length body is cut.
        let a =
            parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n");
        assert_eq!(a.map(|a| (a.status, a.body)), Ok((200, b"abcde".to_vec())));
        let b = parse_answer(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}junk");
        assert_eq!(b.map(|a| (a.status, a.body)), Ok((404, b"{}".to_vec())));
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").is_err());
    }
}
