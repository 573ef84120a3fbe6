//! Logs under hostile input: in JSON mode every stdout line stays one valid
//! JSON object with no raw control character, whatever the path holds, and
//! nothing user-supplied beyond the request line (headers, cookies, bodies)
//! is ever written, not even for refused or malformed requests.

use std::time::Duration;

use test_support::{Outcome, Server, exchange};

/// Strings that only ever travel in headers or bodies.
const SECRETS: [&str; 6] = [
    "SECRET123",
    "COOKIE456",
    "XFF789",
    "UA-SECRET",
    "REF-SECRET",
    "BODY-SECRET",
];

fn with_secrets(line: &[u8]) -> Vec<u8> {
    [
        line,
        b"\r\nHost: test\r\nConnection: close\r\n\
          Authorization: Bearer SECRET123\r\n\
          Cookie: session=COOKIE456\r\n\
          X-Forwarded-For: XFF789\r\n\
          User-Agent: UA-SECRET\r\n\
          Referer: https://REF-SECRET/\r\n\r\n",
    ]
    .concat()
}

#[test]
fn json_logs_stay_valid_lines_for_hostile_paths_and_never_contain_headers_or_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let addr = server.addr;
    let lines: Vec<&[u8]> = vec![
        b"GET /a\"b\\c\"} HTTP/1.1",
        b"GET /\"},{\"level\":\"ERROR\",\"message\":\"forged\" HTTP/1.1",
        b"GET /%0a%0d%7b%22level%22:%22ERROR%22%7d HTTP/1.1",
        b"GET /%1b[31mred%1b[0m%00%07%08 HTTP/1.1",
        b"GET /\\u0000\\n\\r\\x1b HTTP/1.1",
        b"GET /%ff%fe%c0%af%ed%a0%80 HTTP/1.1",
        b"GET /\xff\xfe\xc0\xaf HTTP/1.1",
        b"GET /\x1b[31mred HTTP/1.1",
        b"GET /a\x00b HTTP/1.1",
        b"GET /a\x7fb HTTP/1.1",
        b"GET /a\rb HTTP/1.1",
        b"GET /visits?token=%0a%22 HTTP/1.1",
        b"FOO /\"quoted\" HTTP/1.1",
        b"GET / HTTP/1.1",
        b"HEAD / HTTP/1.1",
    ];
    let mut answered_by_the_app = 0;
    for line in &lines {
        if let Outcome::Answered(status) = exchange(addr, &with_secrets(line))
            && status != 400
        {
            answered_by_the_app += 1;
        }
    }
    // Secrets in refused requests too: oversized headers, a header section
    // actix cannot parse, and a body.
    let big = format!("x-pad: {}\r\n", "p".repeat(17_000));
    let refused: Vec<Vec<u8>> = vec![
        [with_secrets(b"GET / HTTP/1.1").strip_suffix(b"\r\n").unwrap(), big.as_bytes(), b"\r\n"].concat(),
        [b"GET / HTTP/1.1\r\nAuthorization: Bearer SECRET123\r\nbroken\r\n\r\n".as_slice()].concat(),
        b"POST /visits HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 11\r\n\r\nBODY-SECRET"
            .to_vec(),
    ];
    for bytes in &refused {
        exchange(addr, bytes);
    }

    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());
    let logs = server.logs();

    let mut request_lines = 0;
    for raw in &logs {
        let text = std::str::from_utf8(raw)
            .unwrap_or_else(|e| panic!("log line is not UTF-8 ({e}): {raw:?}"));
        assert!(
            !raw.iter().any(|&b| b < 0x20 || b == 0x7f),
            "raw control character in a log line: {text:?}"
        );
        let log: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        assert!(log.is_object(), "not one object: {text}");
        assert_ne!(
            log["message"], "forged",
            "a path forged a log entry: {text}"
        );
        if log["message"] == "request" {
            request_lines += 1;
        }
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} reached the logs: {text}");
        }
    }
    assert!(
        request_lines >= answered_by_the_app,
        "{answered_by_the_app} requests reached the app but only {request_lines} were logged"
    );
    assert!(
        answered_by_the_app >= 8,
        "too few hostile paths reached the app"
    );
}

/// containerd and Docker split log lines longer than 16 KiB into partial
/// records, which breaks "one JSON object per line" for collectors.
const LOG_LINE_LIMIT: usize = 16 * 1024;

#[test]
fn a_refused_huge_request_target_does_not_become_a_huge_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    for target in [
        format!("/{}", "a".repeat(60_000)),
        format!("/?{}", "q".repeat(60_000)),
        format!("/x{}", "%22".repeat(20_000)),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert!(matches!(
            exchange(server.addr, request.as_bytes()),
            Outcome::Answered(414)
        ));
    }
    let request = format!(
        "{} / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "M".repeat(100_000)
    );
    let outcome = exchange(server.addr, request.as_bytes());
    assert!(
        matches!(outcome, Outcome::Answered(405)),
        "a 100 KiB method: {outcome:?}"
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());
    let logs = server.logs();
    let refused = logs
        .iter()
        .filter(|l| String::from_utf8_lossy(l).contains("\"status\":4"))
        .count();
    assert_eq!(refused, 4, "each refused request is still logged");
    for line in &logs {
        assert!(
            line.len() <= LOG_LINE_LIMIT,
            "a {}-byte log line: {}...",
            line.len(),
            String::from_utf8_lossy(&line[..200])
        );
    }
}
