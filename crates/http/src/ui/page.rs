//! HTML for the dashboard: every value from outside goes through [`esc`] (the only way text
//! enters a page), and one layout frames each page. No inline script or style: the
//! Content-Security-Policy allows only this server's own files.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session::Session;
use crate::access::Role;

/// The policy every dashboard answer carries: nothing from another origin, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `s` made safe for HTML text and attribute values (quoted with `"`).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string value, percent-encoded.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A page: the layout around `body`, with the navigation for `session` (none: signed out).
pub fn page(title: &str, session: Option<&Session>, body: &str) -> Response {
    let mut nav = String::new();
    if let Some(s) = session {
        let _ = write!(
            nav,
            r#"<nav><a href="/ui">Overview</a><a href="/ui/jobs">Jobs</a><a href="/ui/jobs?state=dead">Dead letters</a><a href="/ui/deliveries">Deliveries</a><a href="/ui/runs">Sync runs</a><a href="/ui/orders">Orders</a>
<span class="who">{name} · {role}</span>
<form method="post" action="/ui/signout" class="inline">{csrf}<button type="submit">Sign out</button></form></nav>"#,
            name = esc(&s.caller.name),
            role = s.caller.role.as_str(),
            csrf = csrf_field(s),
        );
    }
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · ferry</title><link rel="stylesheet" href="/ui/assets/ferry.css"><script src="/ui/assets/ferry.js" defer></script></head>
<body><header><a class="brand" href="/ui">ferry</a>{nav}<button type="button" class="theme">Theme: system</button></header>
<main>{body}</main></body></html>"#,
        title = esc(title),
    );
    html_response(StatusCode::OK, html)
}

pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

/// The hidden field carrying the session's CSRF token.
pub fn csrf_field(s: &Session) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(&s.csrf)
    )
}

/// A button posting to `action`, shown only to a role that may act (`operator` or `admin`);
/// `confirm`: the question asked before it goes.
pub fn action(s: &Session, action: &str, label: &str, confirm: Option<&str>) -> String {
    if !may_act(s.caller.role) {
        return String::new();
    }
    let confirm = confirm
        .map(|q| format!(r#" data-confirm="{}""#, esc(q)))
        .unwrap_or_default();
    format!(
        r#"<form method="post" action="{action}" class="inline">{csrf}<button type="submit"{confirm}>{label}</button></form>"#,
        action = esc(action),
        csrf = csrf_field(s),
        label = esc(label),
    )
}

/// Whether a role may change anything through the dashboard.
pub fn may_act(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Operator)
}

/// A duration in words a person reads at a glance.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

/// A moment, as UTC.
pub fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn a_window_reads_back_as_the_moment_it_names() {
        for ms in [0, 951_782_400_000, 1_796_396_810_000] {
            let shown = when(ms);
            let local = format!("{}T{}", &shown[..10], &shown[11..19]);
            assert_eq!(super::super::parse_utc(&local), Some(ms), "{local}");
        }
        assert_eq!(
            super::super::parse_utc("2026-12-04T15:30"),
            Some(1_796_398_200_000)
        );
        assert_eq!(super::super::parse_utc("2026-13-04T15:30"), None);
        assert_eq!(super::super::parse_utc("not a time"), None);
    }

    #[test]
    fn dates_and_ages_read_right() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_796_396_810_984), "2026-12-04 15:06:50 UTC");
        assert_eq!(age(59_999), "59 s");
        assert_eq!(age(3_600_000 + 120_000), "1 h 2 min");
    }
}
