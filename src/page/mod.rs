//! The HTML page: the time in the configured zone, this visit's number and
//! every pod's count (a table with a bar per pod, the text equivalent of the
//! picture).
//!
//! Everything that does not change between requests (the style, the script,
//! the zone name, the escaped instance name, the Content-Security-Policy
//! with the hashes of the inline script and style) is built once in
//! [`Page::new`]; a request only formats the time and the numbers into a
//! preallocated string. The page loads nothing from elsewhere: the clock
//! ticks in the browser from the server's time, and the per-pod counts are
//! refreshed from this origin's `/visits/cluster`, through a small inline
//! script that the CSP allows by its hash and nothing else. The style and
//! the script are real files beside this one (`style.css`, `clock.js`),
//! compiled in.

use std::fmt::Write;

use actix_web::http::header::HeaderValue;
use base64::Engine;
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::clock::Now;
use crate::cluster::{ClusterView, PodCount};

/// The page's style sheet, inlined into every page and allowed by its hash.
const STYLE: &str = include_str!("style.css");

/// The script that ticks the clock, inlined and allowed by its hash.
const SCRIPT: &str = include_str!("clock.js");

fn csp_hash(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// How often the open page asks `GET /visits/cluster` for fresh counts
/// (written into the page, which the script reads).
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The small icon browsers ask for at `/favicon.ico`.
pub const FAVICON: &str = include_str!("favicon.svg");

/// What the page knows about the other pods of the StatefulSet.
#[derive(Debug, Clone, Copy)]
pub enum Pods<'a> {
    /// No peers are configured: this instance counts alone.
    Alone,
    /// Peers are configured but none has answered yet.
    NotYetAsked,
    /// The last known view of every pod.
    Known(&'a ClusterView),
}

/// The page template, built once.
#[derive(Debug, Clone)]
pub struct Page {
    head: String,
    instance: String,
    instance_html: String,
    zone: Tz,
    csp: HeaderValue,
}

impl Page {
    /// Builds the static parts for one instance and zone.
    pub fn new(instance: &str, zone: Tz) -> Self {
        let zone_html = html_escape::encode_double_quoted_attribute(zone.name()).into_owned();
        let head = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>Time in {zone_html}</title><style>{STYLE}</style></head><body><main>\
<h1>Current time in {zone_html}</h1>"
        );
        // The script reads the cluster view from this origin (connect-src);
        // browsers fetch the icon from it (img-src). Nothing else loads.
        let csp = HeaderValue::from_str(&format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            csp_hash(SCRIPT),
            csp_hash(STYLE)
        ))
        .expect("hashes and keywords are valid header characters");
        Page {
            head,
            instance: instance.to_owned(),
            instance_html: html_escape::encode_text(instance).into_owned(),
            zone,
            csp,
        }
    }

    /// The Content-Security-Policy header value for this page.
    pub fn content_security_policy(&self) -> &HeaderValue {
        &self.csp
    }

    /// Renders the page for visit number `visit` at `now`.
    pub fn render(&self, now: &Now, visit: u64, pods: Pods<'_>) -> String {
        let mut html = String::with_capacity(self.head.len() + SCRIPT.len() + 2048);
        html.push_str(&self.head);
        SECOND.with_borrow_mut(|cached| {
            let key = (self.zone, now.local.timestamp());
            if cached.as_ref().is_none_or(|c| c.key != key) {
                *cached = Some(Second::render(key, now));
            }
            let second = cached.as_ref().expect("filled above");
            html.push_str(&second.before_ms);
            // Writing into a String cannot fail.
            let _ = write!(html, "{}", now.unix_ms());
            html.push_str(&second.after_ms);
        });
        let _ = write!(
            html,
            "{visit}</strong> to <strong id=\"pod\">{}</strong>.</p>",
            self.instance_html
        );
        match pods {
            Pods::Alone => {
                let _ = write!(
                    html,
                    "<p class=\"note\" id=\"alone\">{} counts alone: no peers are configured.</p>",
                    self.instance_html
                );
            }
            Pods::NotYetAsked => self.pods_section(&mut html, None, visit),
            Pods::Known(view) => self.pods_section(&mut html, Some(view), visit),
        }
        html.push_str("</main><script>");
        html.push_str(SCRIPT);
        html.push_str("</script></body></html>\n");
        html
    }

    /// The per-pod table: one row per pod with its count and a bar, the
    /// unreachable peers with their reason, and the total. The script
    /// rebuilds the rows from `/visits/cluster` in the same shape.
    fn pods_section(&self, html: &mut String, view: Option<&ClusterView>, own: u64) {
        let alone = [PodCount {
            instance: self.instance.clone(),
            visits: own,
            peer: None,
        }];
        let (pods, unreachable, total) = match view {
            Some(view) => (&view.pods[..], &view.unreachable[..], view.total),
            None => (&alone[..], &[][..], own),
        };
        let status = match view {
            Some(_) => format!(
                "Live: refreshed every {} s while this tab is visible.",
                POLL_EVERY.as_secs()
            ),
            None => "The other pods have not been asked yet; asking now.".to_owned(),
        };
        let _ = write!(
            html,
            "<section id=\"pods\" aria-labelledby=\"pods-title\" data-poll-ms=\"{poll}\" \
data-self=\"{self_attr}\" data-state=\"{state}\"><h2 id=\"pods-title\">Visits per pod</h2>\
<p id=\"pods-status\" class=\"status\">{status}</p><table id=\"pods-table\">\
<thead><tr><th scope=\"col\">Pod</th><th scope=\"col\" class=\"count\">Visits</th><th scope=\"col\">Share</th></tr></thead>\
<tbody id=\"pods-rows\">",
            poll = POLL_EVERY.as_millis(),
            self_attr = html_escape::encode_double_quoted_attribute(&self.instance),
            state = if view.is_some() { "live" } else { "pending" },
        );
        for pod in pods {
            let name = html_escape::encode_text(&pod.instance);
            let mine = pod.instance == self.instance;
            let _ = write!(
                html,
                "<tr class=\"pod{}\"><th scope=\"row\"><span class=\"name\">{name}</span>{}</th>\
<td class=\"count\">{}</td><td class=\"share\"><meter min=\"0\" max=\"{}\" value=\"{}\" aria-hidden=\"true\">\
</meter> <span class=\"pct\">{}%</span></td></tr>",
                if mine { " self" } else { "" },
                if mine {
                    " <span class=\"tag\">(this pod)</span>"
                } else {
                    ""
                },
                pod.visits,
                total.max(1),
                pod.visits,
                share_percent(pod.visits, total),
            );
        }
        for peer in unreachable {
            let name = peer.instance.as_deref().unwrap_or(&peer.peer);
            let _ = write!(
                html,
                "<tr class=\"pod down\"><th scope=\"row\"><span class=\"name\">{}</span> \
<span class=\"tag\">(unreachable)</span></th><td class=\"count\">?</td>\
<td class=\"share reason\">{}</td></tr>",
                html_escape::encode_text(name),
                html_escape::encode_text(&peer.error),
            );
        }
        let counted = pods.len();
        let _ = write!(
            html,
            "</tbody><tfoot><tr><th scope=\"row\">Total</th><td class=\"count\" id=\"total\">{total}</td>\
<td class=\"share\">{counted} pod{}</td></tr></tfoot></table></section>",
            if counted == 1 { "" } else { "s" }
        );
    }
}

/// `part` as a whole percentage of `total` (0 when the total is 0).
pub fn share_percent(part: u64, total: u64) -> u64 {
    if total == 0 {
        0
    } else {
        (u128::from(part) * 100 / u128::from(total)) as u64
    }
}

thread_local! {
    /// The time fragments of the current second, per worker thread: the
    /// clock text changes once a second, so formatting it (the slowest part
    /// of a render) once a second per thread is enough.
    static SECOND: std::cell::RefCell<Option<Second>> = const { std::cell::RefCell::new(None) };
}

/// The parts of the page around the millisecond timestamp that change only
/// once a second.
struct Second {
    key: (Tz, i64),
    before_ms: String,
    after_ms: String,
}

impl Second {
    fn render(key: (Tz, i64), now: &Now) -> Self {
        let zone = key.0.name();
        let before_ms = format!(
            "<time id=\"clock\" datetime=\"{rfc}\" data-zone=\"{zone}\" data-offset-s=\"{off}\" data-epoch-ms=\"",
            rfc = now
                .local
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            off = now.offset_seconds,
        );
        let after_ms = format!(
            "\">{time}</time><p id=\"date\">{date}</p><p class=\"zone\">{zone} · UTC{offset}</p>\
<p class=\"visit\" id=\"visit-line\">You are visit <strong id=\"visit\">#",
            time = now.local.format("%H:%M:%S"),
            date = now.local.format("%A %-d %B %Y"),
            offset = now.utc_offset(),
        );
        Second {
            key,
            before_ms,
            after_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn now() -> Now {
        Now::at(
            Utc.with_ymd_and_hms(2026, 11, 22, 2, 13, 47).unwrap(),
            chrono_tz::Europe::Moscow,
        )
    }

    #[test]
    fn the_page_shows_time_date_zone_offset_visit_and_instance() {
        let html = Page::new("pod-0", chrono_tz::Europe::Moscow).render(&now(), 42, Pods::Alone);
        for needle in [
            "05:13:47",
            "Sunday 22 November 2026",
            "Europe/Moscow",
            "UTC+03:00",
            "#42",
            "pod-0",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn the_instance_name_is_html_escaped() {
        let html = Page::new("<script>alert(1)</script>", chrono_tz::Europe::Moscow).render(
            &now(),
            1,
            Pods::Alone,
        );
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn the_csp_allows_exactly_the_inline_script_and_style_by_hash() {
        let page = Page::new("p", chrono_tz::Europe::Moscow);
        let csp = page.content_security_policy().to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"));
        assert!(csp.contains(&csp_hash(SCRIPT)) && csp.contains(&csp_hash(STYLE)));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"));
        let html = page.render(&now(), 1, Pods::Alone);
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "no external assets"
        );
    }

    #[test]
    fn the_csp_hashes_are_those_of_the_files_on_disk() {
        let page = Page::new("p", chrono_tz::Europe::Moscow);
        let csp = page.content_security_policy().to_str().unwrap().to_owned();
        let html = page.render(&now(), 1, Pods::Alone);
        for (file, directive, tag) in [
            ("clock.js", "script-src", "script"),
            ("style.css", "style-src", "style"),
        ] {
            let path = format!("{}/src/page/{file}", env!("CARGO_MANIFEST_DIR"));
            let source = std::fs::read_to_string(&path).unwrap();
            let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&source));
            assert!(
                csp.contains(&format!("{directive} 'sha256-{digest}'")),
                "{file}: {csp}"
            );
            assert!(
                html.contains(&format!("<{tag}>{source}</{tag}>")),
                "{file} is inlined whole"
            );
            assert!(
                !source.contains(&format!("</{tag}")),
                "{file} would close its own tag"
            );
        }
    }

    fn view(pods: &[(&str, u64)], unreachable: &[(Option<&str>, &str)]) -> ClusterView {
        ClusterView {
            total: pods.iter().map(|p| p.1).sum(),
            pods: pods
                .iter()
                .map(|&(instance, visits)| PodCount {
                    instance: instance.into(),
                    visits,
                    peer: None,
                })
                .collect(),
            unreachable: unreachable
                .iter()
                .map(|&(instance, error)| crate::cluster::Unreachable {
                    peer: "http://10.0.0.9:8080".into(),
                    instance: instance.map(Into::into),
                    error: error.into(),
                })
                .collect(),
        }
    }

    /// The rows of the per-pod table as (name, count, share) texts.
    fn rows(html: &str) -> Vec<(String, String, String)> {
        let body = &html[html.find("<tbody").unwrap()..html.find("</tbody>").unwrap()];
        let text = |cell: &str| {
            let mut out = String::new();
            let mut in_tag = false;
            for c in cell.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
            out.trim().to_owned()
        };
        body.split("<tr")
            .skip(1)
            .map(|row| {
                let row = format!("<tr{row}")
                    .replace("</th>", "|")
                    .replace("</td>", "|");
                let cells: Vec<String> = row.split('|').map(text).collect();
                (cells[0].clone(), cells[1].clone(), cells[2].clone())
            })
            .collect()
    }

    #[test]
    fn one_sentence_says_which_visit_to_which_pod() {
        let html = Page::new("pod-1", chrono_tz::Europe::Moscow).render(
            &now(),
            7,
            Pods::Known(&view(&[("pod-0", 5), ("pod-1", 7)], &[])),
        );
        assert!(
            html.contains(
                "You are visit <strong id=\"visit\">#7</strong> to <strong id=\"pod\">pod-1</strong>."
            ),
            "{html}"
        );
        assert_eq!(html.matches("#7").count(), 1, "the visit is named once");
    }

    #[test]
    fn every_pod_has_a_row_with_count_bar_and_share_and_this_pod_is_named() {
        let html = Page::new("pod-1", chrono_tz::Europe::Moscow).render(
            &now(),
            6,
            Pods::Known(&view(&[("pod-0", 3), ("pod-1", 6), ("pod-2", 3)], &[])),
        );
        assert_eq!(
            rows(&html),
            vec![
                ("pod-0".into(), "3".into(), "25%".into()),
                ("pod-1 (this pod)".into(), "6".into(), "50%".into()),
                ("pod-2".into(), "3".into(), "25%".into()),
            ]
        );
        assert_eq!(
            html.matches("<meter min=\"0\" max=\"12\"").count(),
            3,
            "bars share one scale"
        );
        assert!(html.contains("value=\"6\""));
        assert!(
            html.contains("<tr class=\"pod self\"><th scope=\"row\"><span class=\"name\">pod-1")
        );
        assert!(html.contains("id=\"total\">12</td><td class=\"share\">3 pods"));
    }

    #[test]
    fn an_unreachable_peer_is_listed_with_its_name_and_reason() {
        let html = Page::new("pod-0", chrono_tz::Europe::Moscow).render(
            &now(),
            2,
            Pods::Known(&view(
                &[("pod-0", 2)],
                &[(Some("pod-1"), "connection failed"), (None, "timed out")],
            )),
        );
        assert_eq!(
            rows(&html)[1..],
            [
                (
                    "pod-1 (unreachable)".into(),
                    "?".into(),
                    "connection failed".into()
                ),
                (
                    "http://10.0.0.9:8080 (unreachable)".into(),
                    "?".into(),
                    "timed out".into()
                ),
            ]
        );
        assert!(html.contains("id=\"total\">2</td><td class=\"share\">1 pod<"));
    }

    #[test]
    fn before_the_peers_answer_the_page_says_so_and_shows_this_pod() {
        let html =
            Page::new("pod-0", chrono_tz::Europe::Moscow).render(&now(), 1, Pods::NotYetAsked);
        assert_eq!(
            rows(&html),
            vec![("pod-0 (this pod)".into(), "1".into(), "100%".into())]
        );
        assert!(html.contains("data-state=\"pending\""));
        assert!(html.contains("have not been asked yet"), "{html}");
    }

    #[test]
    fn alone_there_is_no_chart() {
        let html = Page::new("solo", chrono_tz::Europe::Moscow).render(&now(), 1, Pods::Alone);
        assert!(!html.contains("<table") && !html.contains("<meter"));
        assert!(html.contains("solo counts alone: no peers are configured."));
    }

    #[test]
    fn fifty_pods_are_fifty_rows_and_names_are_escaped() {
        let names: Vec<String> = (0..50).map(|i| format!("pod-{i}<b>")).collect();
        let pods: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let html = Page::new("pod-0<b>", chrono_tz::Europe::Moscow).render(
            &now(),
            1,
            Pods::Known(&view(&pods, &[])),
        );
        assert_eq!(rows(&html).len(), 50);
        assert!(!html.contains("pod-3<b>") && html.contains("pod-3&lt;b&gt;"));
        assert!(html.contains("data-self=\"pod-0&lt;b&gt;\""));
        assert!(html.contains("id=\"total\">50</td><td class=\"share\">50 pods"));
    }

    #[test]
    fn shares_round_down_and_a_zero_total_is_zero() {
        assert_eq!(share_percent(1, 3), 33);
        assert_eq!(share_percent(2, 3), 66);
        assert_eq!(share_percent(0, 0), 0);
        assert_eq!(share_percent(u64::MAX, u64::MAX), 100);
    }

    #[test]
    fn renders_in_the_same_second_differ_only_in_milliseconds_and_numbers() {
        let base = Utc.with_ymd_and_hms(2026, 11, 22, 2, 13, 47).unwrap();
        let page = Page::new("p", chrono_tz::Europe::Moscow);
        let a = page.render(&Now::at(base, chrono_tz::Europe::Moscow), 1, Pods::Alone);
        let later = base + chrono::Duration::milliseconds(250);
        let b = page.render(&Now::at(later, chrono_tz::Europe::Moscow), 2, Pods::Alone);
        assert!(a.contains(&format!("data-epoch-ms=\"{}\"", base.timestamp_millis())));
        assert!(b.contains(&format!("data-epoch-ms=\"{}\"", later.timestamp_millis())));
        assert!(b.contains("#2</strong>") && b.contains("05:13:47"));
        let next = base + chrono::Duration::seconds(1);
        assert!(
            page.render(&Now::at(next, chrono_tz::Europe::Moscow), 3, Pods::Alone)
                .contains("05:13:48")
        );
    }

    #[test]
    fn pages_for_different_zones_do_not_share_the_cached_second() {
        let utc = Utc.with_ymd_and_hms(2026, 11, 22, 2, 13, 47).unwrap();
        let moscow = Page::new("p", chrono_tz::Europe::Moscow).render(
            &Now::at(utc, chrono_tz::Europe::Moscow),
            1,
            Pods::Alone,
        );
        let tokyo = Page::new("p", chrono_tz::Asia::Tokyo).render(
            &Now::at(utc, chrono_tz::Asia::Tokyo),
            1,
            Pods::Alone,
        );
        assert!(moscow.contains("05:13:47") && moscow.contains("UTC+03:00"));
        assert!(
            tokyo.contains("11:13:47")
                && tokyo.contains("UTC+09:00")
                && tokyo.contains("Asia/Tokyo")
        );
    }
}
