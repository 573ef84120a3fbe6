//! OpenTelemetry traces, received by an OTLP/HTTP endpoint in the test that
//! decodes the protobuf payloads as a collector would.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use test_support::{
    Server, binary_command_on, client, free_port, free_ports, visit_number, wait_until_async,
};

/// One received span with the instance that sent it.
#[derive(Debug, Clone)]
struct Received {
    instance: String,
    span: Span,
}

/// An OTLP/HTTP trace endpoint on loopback that keeps every span.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&spans);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Collector { addr, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

/// Answers every `POST /v1/traces` on one connection with 200.
fn serve(stream: TcpStream, sink: &Mutex<Vec<Received>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource_spans in request.resource_spans {
            let attributes = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            let instance = text(&attributes, "service.instance.id").unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    sink.lock().unwrap().push(Received {
                        instance: instance.clone(),
                        span,
                    });
                }
            }
        }
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(n) => Some(n.to_string()),
            _ => None,
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An instance exporting traces to `endpoint`.
fn traced(dir: &std::path::Path, name: &str, port: u16, peers: &str, endpoint: &str) -> Server {
    let mut cmd = binary_command_on(dir, port);
    cmd.args(["--instance", name, "--peers", peers])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_SERVICE_NAME", "moscow-time")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            format!("service.instance.id={name}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    Server::start_command(cmd)
}

/// pod-a's first cluster view whose trace has a span from pod-b.
fn view_that_asked_the_peers(spans: &[Received]) -> Option<Span> {
    spans
        .iter()
        .filter(|r| r.instance == "pod-a" && r.span.name == "GET /visits/cluster")
        .find(|view| {
            spans
                .iter()
                .any(|r| r.instance == "pod-b" && r.span.trace_id == view.span.trace_id)
        })
        .map(|r| r.span.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_writes_and_peer_fetches_arrive_as_linked_spans_of_one_trace() {
    let collector = Collector::start();
    let endpoint = format!("http://{}", collector.addr);
    let ports: [u16; 2] = free_ports(2).try_into().unwrap();
    let peers = format!(
        "http://127.0.0.1:{},http://127.0.0.1:{}",
        ports[0], ports[1]
    );
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut a = traced(dirs[0].path(), "pod-a", ports[0], &peers, &endpoint);
    let mut b = traced(dirs[1].path(), "pod-b", ports[1], &peers, &endpoint);

    let visits: Vec<_> = (0..16)
        .map(|_| {
            let url = format!("{}/", a.address);
            tokio::spawn(async move { visit_number(&client().get(url).send().await.unwrap()) })
        })
        .collect();
    for visit in visits {
        visit.await.unwrap();
    }
    // The cluster view is cached for a moment: ask until one view asked the
    // peers itself (its trace reaches pod-b), as the collector shows.
    let cluster_url = format!("{}/visits/cluster", a.address);
    let asked = wait_until_async(Duration::from_secs(30), || {
        let (url, collector) = (cluster_url.clone(), &collector);
        async move {
            let cluster = client().get(url).send().await.unwrap();
            assert_eq!(cluster.status(), 200);
            view_that_asked_the_peers(&collector.spans()).is_some()
        }
    })
    .await;
    assert!(asked, "no cluster view reached pod-b within 30 s");
    for server in [&a, &b] {
        server.signal("TERM");
    }
    assert!(a.wait(Duration::from_secs(30)).success());
    assert!(b.wait(Duration::from_secs(30)).success());

    let spans = collector.spans();
    let named = |instance: &str, name: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|r| r.instance == instance && r.span.name == name)
            .map(|r| r.span.clone())
            .collect()
    };

    // A server span per request, named after the route, with its attributes.
    let pages = named("pod-a", "GET /");
    assert_eq!(
        pages.len(),
        16,
        "{:#?}",
        spans.iter().map(|r| &r.span.name).collect::<Vec<_>>()
    );
    for page in &pages {
        assert_eq!(text(&page.attributes, "http.route").as_deref(), Some("/"));
        assert_eq!(
            text(&page.attributes, "http.request.method").as_deref(),
            Some("GET")
        );
        assert_eq!(
            text(&page.attributes, "http.response.status_code").as_deref(),
            Some("200")
        );
    }

    // Every visit is linked from the durable write that carried it.
    let writes = named("pod-a", "persist visits");
    assert!(!writes.is_empty());
    let linked: HashSet<Vec<u8>> = writes
        .iter()
        .flat_map(|w| w.links.iter().map(|l| l.span_id.clone()))
        .collect();
    let page_ids: HashSet<Vec<u8>> = pages.iter().map(|p| p.span_id.clone()).collect();
    assert_eq!(
        linked, page_ids,
        "write spans link exactly the visits they persisted"
    );
    let carried: usize = writes
        .iter()
        .map(|w| {
            text(&w.attributes, "batch_size")
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(carried, 16);

    // One cluster view: a trace whose spans come from both instances.
    let view = &view_that_asked_the_peers(&spans).expect("seen while running");
    let in_trace: HashMap<(String, String), usize> = spans
        .iter()
        .filter(|r| r.span.trace_id == view.trace_id)
        .fold(HashMap::new(), |mut seen, r| {
            *seen
                .entry((r.instance.clone(), r.span.name.clone()))
                .or_default() += 1;
            seen
        });
    assert!(
        in_trace.contains_key(&("pod-a".into(), "GET /visits".into())),
        "{in_trace:?}"
    );
    assert!(
        in_trace.contains_key(&("pod-b".into(), "GET /visits".into())),
        "pod-b continued the trace: {in_trace:?}"
    );

    let client_kind = opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32;
    let fetches_from_a: Vec<_> = spans
        .iter()
        .filter(|r| r.span.trace_id == view.trace_id && r.instance == "pod-a")
        .filter(|r| r.span.kind == client_kind && r.span.name == "GET /visits")
        .collect();
    assert_eq!(fetches_from_a.len(), 2, "one client span per peer asked");
    let served_by_b = spans
        .iter()
        .find(|r| r.span.trace_id == view.trace_id && r.instance == "pod-b")
        .unwrap();
    assert!(
        fetches_from_a
            .iter()
            .any(|f| f.span.span_id == served_by_b.span.parent_span_id),
        "pod-b's server span is the child of pod-a's client span"
    );

    // The log line of that request carries its trace and span ids.
    let trace_id = hex(&view.trace_id);
    let logged = a
        .logs()
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .any(|l| {
            l.contains("\"request\"") && l.contains(&trace_id) && l.contains(&hex(&view.span_id))
        });
    assert!(logged, "no request log line carries trace {trace_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_fails_no_request_and_is_logged_once() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = traced(
        dir.path(),
        "pod-x",
        port,
        &format!("http://127.0.0.1:{port}"),
        &closed,
    );
    for expected in 1..=40 {
        let response = client()
            .get(format!("{}/", server.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(visit_number(&response), expected);
        // Load pacing: the visits spread over many export attempts.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());
    let warnings = server
        .logs()
        .iter()
        .filter(|l| String::from_utf8_lossy(l).contains("exporting traces failed"))
        .count();
    assert_eq!(warnings, 1, "one warning for many failed exports");
}
