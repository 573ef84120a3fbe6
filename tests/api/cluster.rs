use std::net::TcpListener;
use std::time::{Duration, Instant};

use test_support::{Server, binary_command_on, client, free_ports, get_json, visit_number};

/// The peer timeout every cluster here runs with: wide enough that a live
/// peer on a busy machine is never taken for an unreachable one.
const PEER_TIMEOUT: Duration = Duration::from_millis(2000);
/// Bound on waiting for a cluster view to show what it must.
const PATIENCE: Duration = Duration::from_secs(30);

struct Cluster {
    nodes: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

/// Starts `n` instances named pod-0.. on loopback, each listing all of them
/// (itself included) plus `extra` peers in `--peers`.
fn start_cluster(n: usize, extra: &[String]) -> Cluster {
    let ports = free_ports(n);
    let mut peers: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    peers.extend_from_slice(extra);
    let peers = peers.join(",");
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = binary_command_on(dir.path(), *port);
        cmd.args(["--instance", &format!("pod-{i}"), "--peers", &peers])
            .args(["--peer-timeout-ms", &PEER_TIMEOUT.as_millis().to_string()]);
        nodes.push(Server::start_command(cmd));
        dirs.push(dir);
    }
    Cluster { nodes, _dirs: dirs }
}

async fn visit(address: &str) -> (u64, String) {
    let response = client().get(format!("{address}/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let n = visit_number(&response);
    (n, response.text().await.unwrap())
}

async fn cluster_view(address: &str) -> serde_json::Value {
    get_json(&client(), &format!("{address}/visits/cluster")).await
}

/// Asks `address` for the cluster view until `wanted` holds for it (the view
/// is cached for a moment, so a change shows once the cache expires).
async fn cluster_view_until(
    address: &str,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let view = cluster_view(address).await;
        if wanted(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster view never showed {what}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_report_each_count_and_the_exact_total_once_each() {
    let cluster = start_cluster(3, &[]);
    for (i, node) in cluster.nodes.iter().enumerate() {
        for _ in 0..=i {
            visit(&node.address).await;
        }
    }
    let view = cluster_view_until(&cluster.nodes[0].address, "6 visits", |v| v["total"] == 6).await;

    let pods = view["pods"].as_array().unwrap();
    let counts: Vec<(String, u64)> = pods
        .iter()
        .map(|p| {
            (
                p["instance"].as_str().unwrap().to_owned(),
                p["visits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("pod-0".into(), 1),
            ("pod-1".into(), 2),
            ("pod-2".into(), 3)
        ]
    );
    assert_eq!(view["unreachable"], serde_json::json!([]));

    // A page view shows the last known view: pod-2's must have every pod first.
    cluster_view_until(&cluster.nodes[2].address, "6 visits", |v| v["total"] == 6).await;
    let (n, page) = visit(&cluster.nodes[2].address).await;
    assert_eq!(n, 4);
    assert!(
        page.contains("#4</strong> to <strong id=\"pod\">pod-2</strong>."),
        "{page}"
    );
    assert!(
        page.contains("id=\"total\">7</td><td class=\"share\">3 pods"),
        "{page}"
    );
    // pod-1's cached view may predate pod-2's visits: asked until it has them.
    cluster_view_until(&cluster.nodes[1].address, "at least 6 visits", |v| {
        v["total"].as_u64() >= Some(6)
    })
    .await;
    let own: u64 = client()
        .get(format!("{}/visits", cluster.nodes[1].address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(own, 2, "fetching the cluster view did not count on pod-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_hung_peer_is_reported_unreachable_and_the_page_stays_fast() {
    // A peer that accepts connections and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_url = format!("http://{}", hung.local_addr().unwrap());
    let mut cluster = start_cluster(3, std::slice::from_ref(&hung_url));
    for node in &cluster.nodes {
        visit(&node.address).await;
    }
    // Learns every name.
    cluster_view_until(&cluster.nodes[0].address, "3 visits", |v| v["total"] == 3).await;

    let dead = cluster.nodes.remove(2);
    dead.signal("KILL");
    drop(dead);

    let view =
        cluster_view_until(&cluster.nodes[0].address, "pod-2 gone", |v| v["total"] == 2).await;
    let started = Instant::now();
    let (_, page) = visit(&cluster.nodes[0].address).await;
    let page_took = started.elapsed();

    // The page uses the last known view and never waits for the peers: 3 s
    // is only a bound so that a hung page fails the test instead of hanging it.
    assert!(
        page_took < Duration::from_secs(3),
        "the page took {page_took:?}"
    );
    assert!(page.contains("class=\"share\">2 pods"), "{page}");
    assert!(
        page.contains("pod-2</span> <span class=\"tag\">(unreachable)"),
        "the dead pod is on the page by name: {page}"
    );
    assert_eq!(
        view["total"], 2,
        "pod-0 and pod-1 have 1 each before the visit: {view}"
    );
    let unreachable = view["unreachable"].as_array().unwrap();
    assert_eq!(unreachable.len(), 2, "{view}");
    let dead_entry = unreachable
        .iter()
        .find(|u| u["instance"] == "pod-2")
        .expect("the dead pod is named");
    assert!(
        dead_entry["error"].as_str().unwrap().contains("connection"),
        "{view}"
    );
    let hung_entry = unreachable
        .iter()
        .find(|u| u["peer"] == hung_url.as_str())
        .expect("the hung peer is listed");
    assert_eq!(hung_entry["error"], "timed out");
    assert!(hung_entry["instance"].is_null());
    drop(hung);
}

/// A page view never waits on the network: with a peer that accepts
/// connections and never answers, no page view over 4 s of requests waits
/// as long as the peer timeout (the old refresh made one view a second wait
/// the whole timeout). Bounded by the timeout itself, not a speed claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_peer_never_holds_a_page_view_hostage() {
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_url = format!("http://{}", hung.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let peers = format!("{hung_url},http://127.0.0.1:1");
    let peer_timeout = Duration::from_millis(2000);
    let node = Server::start(
        dir.path(),
        &[
            "--peers",
            &peers,
            "--peer-timeout-ms",
            &peer_timeout.as_millis().to_string(),
        ],
    );
    let client = client();
    let (mut views, mut slow) = (0, Vec::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let one = Instant::now();
        let response = client
            .get(format!("{}/", node.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let took = one.elapsed();
        views += 1;
        if took >= peer_timeout {
            slow.push(took);
        }
    }
    assert!(views >= 10, "only {views} page views in 4 s");
    assert!(
        slow.is_empty(),
        "{} of {views} page views waited as long as the peer timeout: {slow:?}",
        slow.len()
    );
    let view = cluster_view(&node.address).await;
    assert_eq!(view["unreachable"].as_array().unwrap().len(), 2, "{view}");
    drop(hung);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_metrics_count_discoveries_and_failed_fetches() {
    let cluster = start_cluster(1, &["http://127.0.0.1:1".to_string()]);
    visit(&cluster.nodes[0].address).await;
    cluster_view(&cluster.nodes[0].address).await; // waits for a refresh
    let metrics = client()
        .get(format!("{}/metrics", cluster.nodes[0].address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("moscow_time_peers_discovered 2"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("moscow_time_peer_fetch_errors_total 0\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_from_dns_find_this_instance_by_its_address_and_count_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = Server::start(
        dir.path(),
        &["--instance", "solo", "--peers-dns", "localhost"],
    );
    visit(&node.address).await;
    visit(&node.address).await;

    let view = cluster_view(&node.address).await;

    assert_eq!(view["total"], 2, "{view}");
    let pods = view["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 1, "{view}");
    assert_eq!(pods[0]["instance"], "solo");
    // localhost resolves to 127.0.0.1 (where it listens) and maybe ::1
    // (where it does not, so that address may be listed as unreachable).
    assert_eq!(pods[0]["peer"], node.address.as_str(), "{view}");
}

/// Any number of readers of the cluster view share one round of peer
/// fetches per cache period: 64 concurrent `/visits/cluster` requests and
/// 64 page views on pod-0 cost pod-1 at most one `GET /visits` per period
/// that passed (64 or more if every request asked the peers itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_share_one_peer_fetch_per_cache_period() {
    let cluster = start_cluster(2, &[]);
    let fetches =
        "moscow_time_http_requests_total{method=\"GET\",route=\"/visits\",status=\"200\"}";
    let peer_fetches = || {
        test_support::metric(&cluster.nodes[1].get("/metrics").text(), fetches).unwrap_or(0.0)
            as u64
    };
    let before = peer_fetches();
    let address = cluster.nodes[0].address.clone();

    let started = Instant::now();
    let readers = (0..64).map(|i| {
        let address = address.clone();
        tokio::spawn(async move {
            let path = if i % 2 == 0 { "/visits/cluster" } else { "/" };
            let response = client()
                .get(format!("{address}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        })
    });
    for reader in futures_util::future::join_all(readers).await {
        reader.unwrap();
    }
    let periods = started.elapsed().as_millis() / moscow_time::cluster::CACHE_FOR.as_millis();
    // Page views start their refresh in the background: the last one may
    // still be running; the cluster view waits for it.
    cluster_view(&address).await;
    let periods =
        periods.max(started.elapsed().as_millis() / moscow_time::cluster::CACHE_FOR.as_millis());

    let rounds = peer_fetches() - before;
    assert!(rounds >= 1, "pod-1 was asked at all");
    assert!(
        u128::from(rounds) <= periods + 1,
        "{rounds} peer fetches in {periods} full cache periods"
    );
}

/// On a fresh start with peers configured the first page view does not
/// claim this pod is alone: it shows every pod (the first refresh answered
/// within the short first-view wait) or says the others were not asked yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_page_view_shows_every_pod_or_says_they_were_not_asked_yet() {
    let cluster = start_cluster(3, &[]);
    let (n, page) = visit(&cluster.nodes[0].address).await;
    assert_eq!(n, 1);
    let rows = page.matches("<tr class=\"pod").count();
    let pending = page.contains("data-state=\"pending\"");
    assert!(rows == 3 || pending, "{page}");
    assert!(
        pending || !page.contains("class=\"share\">1 pod<"),
        "a fresh page claims one pod: {page}"
    );
}
