//! The HTML page: the time in the configured zone and this visit's number.
//!
//! Everything that does not change between requests (the style, the script,
//! the zone name, the escaped instance name, the Content-Security-Policy
//! with the hashes of the inline script and style) is built once in
//! [`Page::new`]; a request only formats the time and the numbers into a
//! preallocated string. The page loads nothing from elsewhere: the clock
//! ticks in the browser from the server's time, through a small inline
//! script that the CSP allows by its hash and nothing else. The style and
//! the script are real files beside this one (`style.css`, `clock.js`),
//! compiled in.

use std::fmt::Write;

use actix_web::http::header::HeaderValue;
use base64::Engine;
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::clock::Now;

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

/// Totals across the StatefulSet, when peers answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterLine {
    /// Visits across every reachable instance.
    pub total: u64,
    /// Instances counted.
    pub pods: usize,
}

/// The page template, built once.
#[derive(Debug, Clone)]
pub struct Page {
    head: String,
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
        let csp = HeaderValue::from_str(&format!(
            "default-src 'none'; script-src {}; style-src {}; img-src 'none'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'",
            csp_hash(SCRIPT),
            csp_hash(STYLE)
        ))
        .expect("hashes and keywords are valid header characters");
        Page {
            head,
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
    pub fn render(&self, now: &Now, visit: u64, cluster: Option<ClusterLine>) -> String {
        let mut html = String::with_capacity(self.head.len() + SCRIPT.len() + 1024);
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
        let _ = write!(html, "{visit}</strong></p>");
        match cluster {
            Some(ClusterLine { total, pods }) => {
                let _ = write!(
                    html,
                    "<p class=\"cluster\" id=\"cluster\">visit #{visit} to this pod ({}) · {total} visits across {pods} pod{}</p>",
                    self.instance_html,
                    if pods == 1 { "" } else { "s" }
                );
            }
            None => {
                let _ = write!(
                    html,
                    "<p class=\"instance\" id=\"instance\">served by {}</p>",
                    self.instance_html
                );
            }
        }
        html.push_str("</main><script>");
        html.push_str(SCRIPT);
        html.push_str("</script></body></html>\n");
        html
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
<p class=\"visit\">You are visit <strong id=\"visit\">#",
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
        let html = Page::new("pod-0", chrono_tz::Europe::Moscow).render(&now(), 42, None);
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
            None,
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
        let html = page.render(&now(), 1, None);
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
        let html = page.render(&now(), 1, None);
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

    #[test]
    fn the_cluster_line_shows_the_total_across_pods() {
        let html = Page::new("pod-1", chrono_tz::Europe::Moscow).render(
            &now(),
            7,
            Some(ClusterLine { total: 30, pods: 3 }),
        );
        assert!(
            html.contains("visit #7 to this pod (pod-1) · 30 visits across 3 pods"),
            "{html}"
        );
    }

    #[test]
    fn renders_in_the_same_second_differ_only_in_milliseconds_and_numbers() {
        let base = Utc.with_ymd_and_hms(2026, 11, 22, 2, 13, 47).unwrap();
        let page = Page::new("p", chrono_tz::Europe::Moscow);
        let a = page.render(&Now::at(base, chrono_tz::Europe::Moscow), 1, None);
        let later = base + chrono::Duration::milliseconds(250);
        let b = page.render(&Now::at(later, chrono_tz::Europe::Moscow), 2, None);
        assert!(a.contains(&format!("data-epoch-ms=\"{}\"", base.timestamp_millis())));
        assert!(b.contains(&format!("data-epoch-ms=\"{}\"", later.timestamp_millis())));
        assert!(b.contains("#2</strong>") && b.contains("05:13:47"));
        let next = base + chrono::Duration::seconds(1);
        assert!(
            page.render(&Now::at(next, chrono_tz::Europe::Moscow), 3, None)
                .contains("05:13:48")
        );
    }

    #[test]
    fn pages_for_different_zones_do_not_share_the_cached_second() {
        let utc = Utc.with_ymd_and_hms(2026, 11, 22, 2, 13, 47).unwrap();
        let moscow = Page::new("p", chrono_tz::Europe::Moscow).render(
            &Now::at(utc, chrono_tz::Europe::Moscow),
            1,
            None,
        );
        let tokyo = Page::new("p", chrono_tz::Asia::Tokyo).render(
            &Now::at(utc, chrono_tz::Asia::Tokyo),
            1,
            None,
        );
        assert!(moscow.contains("05:13:47") && moscow.contains("UTC+03:00"));
        assert!(
            tokyo.contains("11:13:47")
                && tokyo.contains("UTC+09:00")
                && tokyo.contains("Asia/Tokyo")
        );
    }
}
