//! A minimal HTTP/1.1 client over `std::net::TcpStream`, so a test controls
//! every byte it sends (hostile input, slow clients) and sees every byte back.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use moscow_time::routes::VISIT_NUMBER_HEADER;

/// How long any single socket operation may take before a test gives up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn visit_number(&self) -> u64 {
        self.header(VISIT_NUMBER_HEADER)
            .expect("a visit carries its number")
            .parse()
            .unwrap()
    }
}

/// A keep-alive HTTP/1.1 connection; requests are written by hand.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// `GET path` with a Host header, keeping the connection open.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
    }

    /// Writes `request` and reads one response (Content-Length framed, or
    /// until the server closes).
    pub fn send(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request)?;
        self.read_response()
    }

    /// Reads what has arrived; a read interrupted by a signal (EINTR, seen
    /// on a loaded machine) is retried, as `read_exact` would.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before a response head",
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        self.buf.drain(..head_end + 4);
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let body = match length {
            Some(len) => {
                while self.buf.len() < len {
                    if self.fill()? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "closed inside a body",
                        ));
                    }
                }
                self.buf.drain(..len).collect()
            }
            None => {
                while self.fill()? > 0 {}
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A GET over a fresh connection; panics on a transport error.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Conn::connect(addr)
        .and_then(|mut c| c.get(path))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// What the server did with a raw request.
#[derive(Debug)]
pub enum Outcome {
    /// It answered with this status.
    Answered(u16),
    /// It closed (or reset) the connection without an answer.
    Closed,
}

/// Sends `request` on a fresh connection and reads until the server
/// answers and/or closes. A write that fails because the server already
/// answered and closed (an oversized request) still reads the answer.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Outcome {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = stream.write_all(request);
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                received.extend_from_slice(&chunk[..n]);
                if find(&received, b"\r\n\r\n").is_some() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                panic!(
                    "no answer and no close within {IO_TIMEOUT:?} for a {}-byte request",
                    request.len()
                )
            }
            Err(_) => break,
        }
    }
    if received.starts_with(b"HTTP/1.") {
        let status = String::from_utf8_lossy(&received)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        Outcome::Answered(status)
    } else {
        assert!(
            received.is_empty(),
            "not HTTP: {:?}",
            String::from_utf8_lossy(&received)
        );
        Outcome::Closed
    }
}
