//! The dashboard under `/ui`: server-rendered pages (templates are Rust, assets compiled in,
//! nothing from another origin) over the same queue calls as the admin API. Signing in with a
//! token opens a session; every form carries the session's CSRF token; a `read` token sees
//! everything and no button; every action is recorded with who made it.

mod activity;
mod charts;
mod health;
mod live;
pub mod page;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_queue::{Cancelled, JobFilter, JobState};
use serde::Deserialize;

use crate::access::Caller;
use crate::app::AppState;
use page::{action, age, enc, esc, html_response, page, when};
use session::Session;

/// Forms are a token or a CSRF field: a few KiB is plenty, and bounds what an unauthenticated
/// post can make the server read.
const FORM_LIMIT: usize = 8 * 1024;
/// Rows on a page of jobs.
const PAGE_ROWS: u32 = 50;
/// Groups of dead jobs shown above the dead letters.
const DEAD_GROUPS: i64 = 20;
/// The most dead jobs one replay of a group or a time window puts back in line.
const REPLAY_BATCH: i64 = crate::admin::REPLAY_BATCH;
/// A count that stopped at [`COUNT_CAP`] reads "10000+".
fn capped(n: i64) -> String {
    capped_at(n, COUNT_CAP)
}

fn capped_at(n: i64, cap: i64) -> String {
    if n >= cap {
        format!("{cap}+")
    } else {
        n.to_string()
    }
}

/// Where the overview's counts stop ("10000+"): a count stays fast on a million-job table.
const COUNT_CAP: i64 = 10_000;

const CSS: &str = include_str!("assets/ferry.css");
const JS: &str = include_str!("assets/ferry.js");

/// The dashboard's routes (merged into the application by [`crate::app::router_with`]).
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let signed_in = Router::new()
        .route("/ui", get(overview))
        .route("/ui/stores/{name}", get(store))
        .route("/ui/jobs", get(jobs))
        .route("/ui/jobs/{id}", get(job))
        .route("/ui/jobs/{id}/{act}", post(job_action))
        .route("/ui/dead/replay", post(replay_dead))
        .route("/ui/queues/{queue}", get(charts::queue))
        .route("/ui/queues/{queue}/{act}", post(queue_action))
        .route("/ui/jobs/bulk", post(bulk))
        .route("/ui/stores/{name}/reconcile", post(activity::reconcile))
        .route("/ui/deliveries", get(activity::deliveries))
        .route(
            "/ui/deliveries/{store}/{delivery}/replay",
            post(activity::replay_delivery),
        )
        .route("/ui/runs", get(activity::runs))
        .route("/ui/live", get(live::live))
        .route("/ui/orders", get(activity::orders))
        .route("/ui/signout", post(sign_out))
        .route_layer(axum::middleware::from_fn_with_state(state, require_session));
    Router::new()
        .route("/ui/signin", get(sign_in_page).post(sign_in))
        .route("/ui/assets/ferry.css", get(css))
        .route("/ui/assets/ferry.js", get(js))
        .merge(signed_in)
        .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT))
}

/// The session of the request's cookie, as a request extension; without one a page sends
/// the browser to sign in and an action is refused.
async fn require_session(
    State(app): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let session = match session::cookie_of(req.headers()) {
        Some(id) => match app.access.session(&id).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    match session {
        Some(s) => {
            req.extensions_mut().insert(s);
            next.run(req).await
        }
        None if req.method() == axum::http::Method::GET => redirect("/ui/signin"),
        None => message(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "Your session has ended. Sign in again.",
        ),
    }
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A short page saying what happened (errors, refusals).
fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t} · ferry</title>
<link rel="stylesheet" href="/ui/assets/ferry.css"></head><body><main class="narrow"><h1>{t}</h1><p>{x}</p>
<p><a href="/ui">Back to the overview</a></p></main></body></html>"#,
        t = esc(title),
        x = esc(text)
    );
    html_response(status, html)
}

fn failed(e: impl std::fmt::Debug) -> Response {
    tracing::error!(error = ?e, "dashboard page failed");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The page could not be built; the server's log says why.",
    )
}

/// Whether the request came over https (to mark the cookie `Secure`).
fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

// ---- signing in and out -----------------------------------------------------------------

async fn sign_in_page() -> Response {
    page("Sign in", None, &sign_in_form(None))
}

fn sign_in_form(problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!(r#"<p class="problem" role="alert">{}</p>"#, esc(p)))
        .unwrap_or_default();
    format!(
        r#"<section class="narrow"><h1>Sign in</h1>{problem}
<form method="post" action="/ui/signin"><label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>
<p class="hint">An admin, operator or read token (<code>ferry tokens add NAME --role read</code>).</p></section>"#
    )
}

async fn sign_in(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = form_field(&body, "token").unwrap_or_default();
    let id = match app.access.sign_in(token.trim()).await {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    let Some(id) = id else {
        metrics::counter!("ferry_admin_auth_failures_total").increment(1);
        let mut r = page(
            "Sign in",
            None,
            &sign_in_form(Some("That token does not open the dashboard.")),
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let mut r = redirect("/ui");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(Some(&id), https(&headers))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn sign_out(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refused(&s, &body, None) {
        return r;
    }
    if let Some(id) = session::cookie_of(&headers)
        && let Err(e) = app.access.sign_out(&id).await
    {
        return failed(e);
    }
    let mut r = redirect("/ui/signin");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(None, https(&headers))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Refuses a posted form of this session (the answer) unless its CSRF token is right and
/// the role is one that may make the admin API's `api_route` (None: any signed-in role).
fn refused(s: &Session, body: &[u8], api_route: Option<&str>) -> Option<Response> {
    let presented = form_field(body, "csrf").unwrap_or_default();
    if !session::csrf_ok(s, &presented) {
        return Some(message(
            StatusCode::FORBIDDEN,
            "Refused",
            "The form did not come from this session's page (its CSRF token is missing or wrong). Reload the page and try again.",
        ));
    }
    if let Some(route) = api_route
        && let Err(needed) = crate::access::permits(s.caller.role, "POST", route)
    {
        return Some(message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!("This needs a token with the {} role.", needed.as_str()),
        ));
    }
    None
}

/// Records a dashboard action with who made it, as the admin API records its calls.
async fn record(
    app: &AppState,
    caller: &Caller,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
) {
    let request_id = crate::telemetry::request_id(headers);
    if let Err(e) = app
        .access
        .record(caller, "POST", path, status.as_u16(), &request_id)
        .await
    {
        tracing::error!(error = %e, "the action was not recorded");
    }
}

// ---- pages ------------------------------------------------------------------------------

async fn overview(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
) -> Response {
    match overview_html(&app, &s).await {
        Ok(body) => page("Overview", Some(&s), &body),
        Err(e) => failed(e),
    }
}

async fn overview_html(app: &AppState, s: &Session) -> Result<String, crate::error::ServerError> {
    let now = app.access.now_ms();
    let queues = app.queue.glance_all(COUNT_CAP).await?;
    let dead = app.queue.dead_by_group(COUNT_CAP).await?;

    // A tile per store of the network: what is wrong with it first, then its figures.
    let stores = app.engine.network().all().await?;
    let dead_of = |name: &str| dead.iter().find(|(g, _)| *g == name).map_or(0, |(_, n)| *n);
    let snap = health::Snapshot::read(app).await?;
    let mut tiles = String::new();
    for st in &stores {
        let dead_here = dead_of(&st.name);
        let h = health::health(app, &snap, st, dead_here).await?;
        let dead_note = if dead_here > 0 {
            format!(
                r#"<p><a href="/ui/jobs?state=dead&amp;group={}">Dead jobs: {dead_here}</a></p>"#,
                enc(&st.name)
            )
        } else {
            String::new()
        };
        let problems = if h.link_problems > 0 {
            format!(
                r#"<p><a href="/ui/stores/{}">Link problems: {}</a></p>"#,
                enc(&st.name),
                capped_at(h.link_problems, PROBLEM_ROWS)
            )
        } else {
            String::new()
        };
        tiles.push_str(&format!(
            r#"<article class="tile {class}" data-store="{name}"><h3><a href="/ui/stores/{qname}">{name}</a></h3><p class="role">{role}</p><p class="reason">{reason}</p>
<dl class="figures"><dt>API budget</dt><dd>{budget}</dd><dt>Sync lag</dt><dd>{lag}</dd><dt>Errors, last hour</dt><dd>{errors}</dd><dt>Last success</dt><dd>{last}</dd></dl>{dead_note}{problems}
<p><a href="/ui/jobs?group={qname}">Jobs</a> · <a href="/ui/deliveries?store={qname}">Deliveries</a></p></article>"#,
            class = h.class,
            name = esc(&st.name),
            qname = enc(&st.name),
            role = st.role.as_str(),
            reason = esc(&h.reason),
            budget = h.budget_text(),
            lag = h.lag_text(),
            errors = h.errors_text(),
            last = h
                .last_success_ms
                .map_or("not in the last hour".to_owned(), |t| format!("{} ago", age(now - t))),
        ));
    }
    if tiles.is_empty() {
        tiles.push_str(
            r#"<p class="hint">No store in the network yet (<code>ferry network add</code>).</p>"#,
        );
    }

    let mut rows = String::new();
    for q in &queues {
        let class = if q.dead > 0 || q.oldest_ready_age_ms > 5 * 60_000 {
            "red"
        } else if q.oldest_ready_age_ms > 60_000 || q.paused {
            "amber"
        } else {
            "green"
        };
        let toggle = if q.paused {
            action(
                s,
                &format!("/ui/queues/{}/resume", enc(&q.queue)),
                "Resume",
                None,
            )
        } else {
            action(
                s,
                &format!("/ui/queues/{}/pause", enc(&q.queue)),
                "Pause",
                Some("Pause this queue? Its jobs wait until it is resumed."),
            )
        };
        rows.push_str(&format!(
            r#"<tr class="{class}" data-queue="{name}"><td><a href="/ui/queues/{qname}">{name}</a>{paused}</td><td>{ready}</td><td>{scheduled}</td><td>{running}</td><td><a href="/ui/jobs?queue={qname}&amp;state=dead">{dead}</a></td><td>{oldest}</td><td>{toggle}</td></tr>"#,
            name = esc(&q.queue),
            qname = enc(&q.queue),
            paused = if q.paused { " <em>(paused)</em>" } else { "" },
            ready = capped_at(q.ready, COUNT_CAP / 10),
            scheduled = capped_at(q.ready + q.scheduled, COUNT_CAP),
            running = capped(q.running),
            dead = capped(q.dead),
            oldest = if q.ready > 0 { age(q.oldest_ready_age_ms) } else { "–".into() },
        ));
    }
    let dead_sum: i64 = queues.iter().map(|q| q.dead).sum();
    let dead_total = capped(dead_sum.min(COUNT_CAP));
    Ok(format!(
        r#"<h1>Overview</h1>
<section><h2>Stores</h2><div class="tiles" data-live>{tiles}</div></section>
<section><h2>Queues</h2><p><a href="/ui/jobs?state=dead">Dead jobs: {dead_total}</a></p>
<table data-live><thead><tr><th>Queue</th><th>Ready now</th><th>Waiting</th><th>Running</th><th>Dead</th><th>Oldest ready</th><th></th></tr></thead>
<tbody>{rows}</tbody></table></section>"#
    ))
}

/// Store writes listed on a job's page.
const JOB_WRITES: i64 = 50;
/// Audit entries on a store's page.
const AUDIT_ROWS: i64 = 50;
/// Link problems listed on a store's page.
const PROBLEM_ROWS: i64 = 200;

#[derive(Deserialize, Default)]
struct StoreQuery {
    /// The audit entry id the page's list ends before (older entries).
    before: Option<String>,
    /// The parent product the page's links start after.
    links_after: Option<String>,
}

/// Links listed on a child's page.
const LINK_ROWS: i64 = 50;

async fn store(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<StoreQuery>,
) -> Response {
    let st = match app.engine.network().get(&name).await {
        Ok(Some(st)) => st,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such store",
                "The network has no store of that name.",
            );
        }
        Err(e) => return failed(e),
    };
    let before = nonblank(&q.before).unwrap_or_default();
    let audit = match app
        .engine
        .network()
        .audit_recent(&st.name, &before, AUDIT_ROWS)
        .await
    {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    let problems = match app
        .engine
        .network()
        .link_problems(&st.name, PROBLEM_ROWS)
        .await
    {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let h = match health::Snapshot::read(&app).await {
        Ok(snap) => health::health(&app, &snap, &st, 0).await,
        Err(e) => Err(e),
    };
    let h = match h {
        Ok(h) => h,
        Err(e) => return failed(e),
    };
    let reconcile = if st.role == ferry_sync::Role::Child {
        let form = |full: bool, label: &str, ask: &str| {
            if !page::may_act(s.caller.role) {
                return String::new();
            }
            format!(
                r#"<form method="post" action="/ui/stores/{q}/reconcile" class="inline">{csrf}<input type="hidden" name="full" value="{f}"><button type="submit" data-confirm="{ask}">{label}</button></form>"#,
                q = enc(&st.name),
                csrf = page::csrf_field(&s),
                f = if full { "1" } else { "0" },
            )
        };
        format!(
            r#"<div class="actions">{}{}</div>"#,
            form(
                false,
                "Reconcile changes now",
                "Compare what changed since the last run with the parent and repair drift?"
            ),
            form(
                true,
                "Full reconcile",
                "Compare every product with the parent and repair drift? This reads the whole catalog."
            )
        )
    } else {
        String::new()
    };
    let links_html = if st.role == ferry_sync::Role::Child {
        let after = nonblank(&q.links_after).unwrap_or_default();
        let links = match app
            .engine
            .network()
            .links(&st.name, &after, LINK_ROWS)
            .await
        {
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        let rows = links
            .iter()
            .map(|l| {
                format!(
                    "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                    esc(&l.parent_product),
                    esc(l.child_product.as_deref().unwrap_or("–")),
                    l.state.as_str()
                )
            })
            .collect::<String>();
        let more = match links.last() {
            Some(l) if links.len() as i64 == LINK_ROWS => format!(
                r#"<p><a href="/ui/stores/{}?links_after={}">More links</a></p>"#,
                enc(&st.name),
                enc(&l.parent_product)
            ),
            _ => String::new(),
        };
        format!(
            "<h2>Linked products</h2><table><thead><tr><th>Parent product</th><th>Its copy here</th><th>State</th></tr></thead><tbody>{rows}</tbody></table>{}{more}",
            none_yet(links.is_empty(), "No product linked yet.")
        )
    } else {
        String::new()
    };
    let mut problem_rows = String::new();
    for (product, sku, reason) in &problems {
        problem_rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(product),
            esc(sku),
            esc(reason)
        ));
    }
    let problems_html = if problems.is_empty() {
        r#"<p class="hint">Every product is linked.</p>"#.to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Parent product</th><th>SKU</th><th>Why not linked</th></tr></thead><tbody>{problem_rows}</tbody></table>"
        )
    };
    let mut audit_rows = String::new();
    for a in &audit {
        audit_rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            when(a.at_ms),
            esc(&a.action),
            esc(&a.entity),
            esc(&a.fields.to_string()),
            esc(&a.cause)
        ));
    }
    let older = if audit.len() as i64 == AUDIT_ROWS {
        audit
            .last()
            .map(|a| {
                format!(
                    r#"<p><a rel="next" href="/ui/stores/{}?before={}">Older writes</a></p>"#,
                    enc(&st.name),
                    enc(&a.id)
                )
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    let rules = serde_json::to_string(&st.rules).unwrap_or_default();
    let body = format!(
        r#"<h1>{name}</h1>
<p class="tile-line {class}">{reason}</p>{reconcile}
<dl><dt>Role</dt><dd>{role}</dd><dt>State</dt><dd>{state}</dd><dt>API</dt><dd>{api}</dd><dt>API budget</dt><dd>{budget}</dd><dt>Sync lag</dt><dd>{lag}</dd><dt>Errors, last hour</dt><dd>{errors}</dd><dt>Endpoint</dt><dd><code>{url}</code></dd>
<dt>Jobs</dt><dd><a href="/ui/jobs?group={qname}">all</a> · <a href="/ui/jobs?group={qname}&amp;state=dead">dead</a> · <a href="/ui/deliveries?store={qname}">deliveries</a></dd></dl>
<h2>Writes to this store</h2>
<table data-live><thead><tr><th>When</th><th>Action</th><th>What</th><th>Change</th><th>Why</th></tr></thead><tbody>{audit_rows}</tbody></table>{none}{older}
{links_html}
<h2>Link problems</h2>{problems_html}
<h2>Rules</h2><pre>{rules}</pre>"#,
        name = esc(&st.name),
        qname = enc(&st.name),
        role = st.role.as_str(),
        state = st.state.as_str(),
        api = esc(&h.api),
        class = h.class,
        reason = esc(&h.reason),
        budget = h.budget_text(),
        lag = h.lag_text(),
        errors = h.errors_text(),
        url = esc(&st.graphql_url),
        rules = esc(&rules),
        none = if audit.is_empty() {
            r#"<p class="hint">No write yet.</p>"#
        } else {
            ""
        },
    );
    page(&st.name, Some(&s), &body)
}

#[derive(Deserialize, Default)]
struct JobsQuery {
    queue: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    group: Option<String>,
    after: Option<String>,
}

/// A job state given in a filter (blank: any), or the page saying it is not one.
fn job_state(v: Option<String>) -> Result<Option<JobState>, Box<Response>> {
    match nonblank(&v) {
        Some(v) => JobState::parse(&v).map(Some).ok_or_else(|| {
            Box::new(message(
                StatusCode::BAD_REQUEST,
                "Unknown state",
                &format!("There is no job state {v:?}."),
            ))
        }),
        None => Ok(None),
    }
}

/// A hint saying a list is empty, when it is.
fn none_yet(empty: bool, text: &str) -> String {
    if empty {
        format!(r#"<p class="hint">{}</p>"#, page::esc(text))
    } else {
        String::new()
    }
}

fn nonblank(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

async fn jobs(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Query(q): Query<JobsQuery>,
) -> Response {
    let state = match job_state(q.state.clone()) {
        Ok(st) => st,
        Err(r) => return *r,
    };
    let after = match nonblank(&q.after).map(|a| a.parse::<uuid::Uuid>()) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Bad page",
                "That page cursor is not a job id.",
            );
        }
        None => None,
    };
    let filter = JobFilter {
        queue: nonblank(&q.queue),
        state,
        kind: nonblank(&q.kind),
        group: nonblank(&q.group),
        after,
        limit: PAGE_ROWS,
    };
    let list = match app.queue.list(&filter).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let acts = page::may_act(s.caller.role);
    let mut rows = String::new();
    for j in &list {
        rows.push_str(&format!(
            r#"<tr class="state-{state}">{pick}<td><a href="/ui/jobs/{id}">{short}</a></td><td>{kind}</td><td>{queue}</td><td>{group}</td><td>{state}</td><td>{attempt}/{max}</td><td>{created}</td><td class="error">{error}</td></tr>"#,
            id = j.id,
            pick = if acts {
                format!(r#"<td><input type="checkbox" name="id" value="{}" form="bulk" aria-label="select"></td>"#, j.id)
            } else {
                String::new()
            },
            short = &j.id.to_string()[..8],
            kind = esc(&j.kind),
            queue = esc(&j.queue),
            group = esc(&j.group_key),
            state = j.state.as_str(),
            attempt = j.attempt,
            max = j.max_attempts,
            created = when(j.created_at),
            error = esc(j.last_error.as_deref().unwrap_or("")),
        ));
    }
    let keep = |name: &str, v: &Option<String>| {
        nonblank(v)
            .map(|v| format!("&amp;{name}={}", enc(&v)))
            .unwrap_or_default()
    };
    let filters = format!(
        "{}{}{}{}",
        keep("queue", &q.queue),
        keep("state", &q.state),
        keep("kind", &q.kind),
        keep("group", &q.group)
    );
    let next = if list.len() as u32 == PAGE_ROWS {
        list.last()
            .map(|j| {
                format!(
                    r#"<p><a rel="next" href="/ui/jobs?after={}{filters}">Next page</a></p>"#,
                    j.id
                )
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    let states = std::iter::once("")
        .chain(JobState::ALL.iter().map(|st| st.as_str()))
        .map(|st| {
            let selected = if nonblank(&q.state).as_deref().unwrap_or("") == st {
                " selected"
            } else {
                ""
            };
            let label = if st.is_empty() { "any state" } else { st };
            format!(r#"<option value="{st}"{selected}>{label}</option>"#)
        })
        .collect::<String>();
    let field = |name: &str, v: &Option<String>| {
        format!(
            r#"<label>{name} <input name="{name}" value="{}"></label>"#,
            esc(nonblank(v).as_deref().unwrap_or(""))
        )
    };
    let title = if state == Some(JobState::Dead) {
        "Dead letters"
    } else {
        "Jobs"
    };
    let groups = if state == Some(JobState::Dead) && after.is_none() {
        match dead_groups_html(&app, &s).await {
            Ok(h) => h,
            Err(e) => return failed(e),
        }
    } else {
        String::new()
    };
    // Acting on a selection (the boxes) or on every job the filter matches.
    let bulk_form = if acts {
        let hidden = |name: &str, v: &Option<String>| {
            nonblank(v)
                .map(|v| format!(r#"<input type="hidden" name="{name}" value="{}">"#, esc(&v)))
                .unwrap_or_default()
        };
        format!(
            r#"<form method="post" action="/ui/jobs/bulk" id="bulk" class="filters">{csrf}{hq}{hs}{hk}{hg}
<button type="submit" name="act" value="replay" data-confirm="Replay the selected jobs?">Replay selected</button>
<button type="submit" name="act" value="cancel" data-confirm="Cancel the selected jobs?">Cancel selected</button>
<button type="submit" name="act" value="replay-all" data-confirm="Replay every job this filter matches (up to {max} at a time)?">Replay all matching</button>
<button type="submit" name="act" value="cancel-all" data-confirm="Cancel every job this filter matches (up to {max} at a time)?">Cancel all matching</button></form>"#,
            csrf = page::csrf_field(&s),
            hq = hidden("queue", &q.queue),
            hs = hidden("state", &q.state),
            hk = hidden("kind", &q.kind),
            hg = hidden("group", &q.group),
            max = BULK_MAX,
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>{title}</h1>{groups}
<form method="get" action="/ui/jobs" class="filters"><label>state <select name="state">{states}</select></label>{queue}{kind}{group}<button type="submit">Filter</button></form>{bulk_form}
<table data-live><thead><tr>{pick_head}<th>Job</th><th>Kind</th><th>Queue</th><th>Store / group</th><th>State</th><th>Attempt</th><th>Created</th><th>Last error</th></tr></thead>
<tbody>{rows}</tbody></table>{empty}{next}"#,
        pick_head = if acts { "<th></th>" } else { "" },
        queue = field("queue", &q.queue),
        kind = field("kind", &q.kind),
        group = field("group", &q.group),
        empty = if list.is_empty() {
            r#"<p class="hint">No job matches.</p>"#
        } else {
            ""
        },
    );
    page(title, Some(&s), &body)
}

/// Dead jobs grouped by queue, store and error, each group with a button replaying it, and a
/// form replaying every job that died in a time window.
async fn dead_groups_html(
    app: &AppState,
    s: &Session,
) -> Result<String, crate::error::ServerError> {
    let groups = app.queue.dead_groups(DEAD_GROUPS).await?;
    if groups.is_empty() {
        return Ok(String::new());
    }
    let mut rows = String::new();
    for g in &groups {
        let button = if page::may_act(s.caller.role) {
            format!(
                r#"<form method="post" action="/ui/dead/replay" class="inline">{csrf}<input type="hidden" name="queue" value="{queue}"><input type="hidden" name="group" value="{group}"><input type="hidden" name="error" value="{error}"><button type="submit" data-confirm="Replay these {n} dead jobs?">Replay {n}</button></form>"#,
                csrf = page::csrf_field(s),
                queue = esc(&g.queue),
                group = esc(&g.group),
                error = esc(&g.error),
                n = g.jobs,
            )
        } else {
            String::new()
        };
        rows.push_str(&format!(
            r#"<tr><td>{queue}</td><td><a href="/ui/jobs?state=dead&amp;group={qgroup}">{group}</a></td><td class="error">{error}</td><td>{n}</td><td>{first} – {last}</td><td>{button}</td></tr>"#,
            queue = esc(&g.queue),
            group = esc(&g.group),
            qgroup = enc(&g.group),
            error = esc(&g.error),
            n = g.jobs,
            first = when(g.first_ms),
            last = when(g.last_ms),
        ));
    }
    let window = if page::may_act(s.caller.role) {
        format!(
            r#"<form method="post" action="/ui/dead/replay" class="filters">{csrf}<label>died from (UTC) <input type="datetime-local" name="from" required></label><label>to (UTC) <input type="datetime-local" name="to" required></label><button type="submit" data-confirm="Replay every job that died in this window?">Replay the window</button></form>"#,
            csrf = page::csrf_field(s)
        )
    } else {
        String::new()
    };
    Ok(format!(
        r#"<section class="groups"><h2>By store and error</h2><table><thead><tr><th>Queue</th><th>Store / group</th><th>Error</th><th>Jobs</th><th>Died</th><th></th></tr></thead><tbody>{rows}</tbody></table>{window}</section><h2>Every dead job</h2>"#
    ))
}

/// A `datetime-local` value (`2026-12-04T15:30`, seconds optional), read as UTC: epoch ms.
fn parse_utc(v: &str) -> Option<i64> {
    let (date, time) = v.trim().split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<f64>().ok());
    let (h, min) = (t.next()??, t.next()??);
    let sec = t.next().flatten().unwrap_or(0.0);
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0.0..24.0).contains(&h)
        || !(0.0..60.0).contains(&min)
        || !(0.0..61.0).contains(&sec)
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), the inverse of page::when.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000 + ((h * 3600.0 + min * 60.0 + sec) * 1000.0) as i64)
}

async fn replay_dead(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refused(&s, &body, Some("/api/dead/replay")) {
        return r;
    }
    let field = |name: &str| form_field(&body, name).filter(|v| !v.is_empty());
    let mut m = ferry_queue::DeadMatch {
        queue: field("queue"),
        group: field("group"),
        error: form_field(&body, "error"),
        from_ms: 0,
        to_ms: i64::MAX,
    };
    if let (Some(from), Some(to)) = (field("from"), field("to")) {
        match (parse_utc(&from), parse_utc(&to)) {
            (Some(f), Some(t)) if f <= t => {
                m.from_ms = f;
                // The whole last minute of the window.
                m.to_ms = t + 59_999;
            }
            _ => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "Bad window",
                    "Give the window as two UTC times, the first not after the second.",
                );
            }
        }
    }
    let path = "/ui/dead/replay";
    match app.queue.replay_dead(&m, REPLAY_BATCH).await {
        Ok(n) => {
            record(&app, &s.caller, path, StatusCode::OK, &headers).await;
            let more = if n as i64 == REPLAY_BATCH {
                format!(" At most {REPLAY_BATCH} go at once: replay again for the rest.")
            } else {
                String::new()
            };
            let html = format!(
                r#"<h1>Replayed</h1><p>{n} dead jobs are back in line.{more}</p><p><a href="/ui/jobs?state=dead">Dead letters</a> · <a href="/ui">Overview</a></p>"#,
                more = esc(&more)
            );
            page("Replayed", Some(&s), &html)
        }
        Err(e) => {
            let e = crate::error::ServerError::from(e);
            record(&app, &s.caller, path, e.status(), &headers).await;
            message(e.status(), "Not done", &e.to_string())
        }
    }
}

async fn job(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let not_found = || {
        message(
            StatusCode::NOT_FOUND,
            "No such job",
            "There is no job with that id.",
        )
    };
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return not_found();
    };
    let j = match app.queue.get(id).await {
        Ok(Some(j)) => j,
        Ok(None) => return not_found(),
        Err(e) => return failed(e),
    };
    let payload = serde_json::to_string_pretty(&j.payload).unwrap_or_default();
    let actions = match j.state {
        JobState::Dead | JobState::Cancelled | JobState::Expired => action(
            &s,
            &format!("/ui/jobs/{id}/replay"),
            "Replay",
            Some("Run this job again, from its first attempt?"),
        ),
        JobState::Queued | JobState::Running | JobState::Retrying => action(
            &s,
            &format!("/ui/jobs/{id}/cancel"),
            "Cancel",
            Some("Cancel this job?"),
        ),
        JobState::Completed => String::new(),
    };
    let opt_when = |v: Option<i64>| v.map(when).unwrap_or_else(|| "–".into());
    // Every failed attempt, then the writes the job's event made (its payload's `cause`).
    let attempts = if j.errors.is_empty() {
        r#"<p class="hint">No attempt has failed.</p>"#.to_owned()
    } else {
        let rows = j
            .errors
            .iter()
            .map(|e| {
                format!(
                    r#"<tr><td>{}</td><td>{}</td><td class="error">{}</td></tr>"#,
                    e.attempt,
                    when(e.at),
                    esc(&e.error)
                )
            })
            .collect::<String>();
        format!(
            "<table><thead><tr><th>Attempt</th><th>Failed at</th><th>Error</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let cause = j.payload.get("cause").and_then(|c| c.as_str());
    let writes = match cause {
        Some(c) => match app.engine.network().audit_by_cause(c, JOB_WRITES).await {
            Ok(w) if w.is_empty() => format!(
                r#"<p class="hint">No store write recorded for <code>{}</code>.</p>"#,
                esc(c)
            ),
            Ok(w) => {
                let rows = w
                    .iter()
                    .map(|a| {
                        format!(
                            r#"<tr><td>{}</td><td><a href="/ui/stores/{}">{}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>"#,
                            when(a.at_ms),
                            enc(&a.store),
                            esc(&a.store),
                            esc(&a.action),
                            esc(&a.entity),
                            esc(&a.fields.to_string())
                        )
                    })
                    .collect::<String>();
                format!(
                    r#"<p>Caused by <code>{}</code></p><table><thead><tr><th>When</th><th>Store</th><th>Action</th><th>What</th><th>Change</th></tr></thead><tbody>{rows}</tbody></table>"#,
                    esc(c)
                )
            }
            Err(e) => return failed(e),
        },
        None => r#"<p class="hint">This job's payload names no event.</p>"#.to_owned(),
    };
    let body = format!(
        r#"<h1>Job <code>{id}</code></h1>
<p class="state-{state}">{state} · attempt {attempt} of {max}</p><div class="actions">{actions}</div>
<dl><dt>Kind</dt><dd>{kind}</dd><dt>Queue</dt><dd><a href="/ui/jobs?queue={qqueue}">{queue}</a></dd>
<dt>Store / group</dt><dd><a href="/ui/jobs?group={qgroup}">{group}</a></dd>
<dt>Created</dt><dd>{created}</dd><dt>Runs at</dt><dd>{run_at}</dd><dt>Started</dt><dd>{started}</dd><dt>Finished</dt><dd>{finished}</dd>
<dt>Last error</dt><dd class="error">{error}</dd></dl>
<h2>Failed attempts</h2>{attempts}
<h2>Store writes</h2>{writes}
<h2>Payload</h2><pre>{payload}</pre>"#,
        state = j.state.as_str(),
        attempt = j.attempt,
        max = j.max_attempts,
        kind = esc(&j.kind),
        queue = esc(&j.queue),
        qqueue = enc(&j.queue),
        group = esc(&j.group_key),
        qgroup = enc(&j.group_key),
        created = when(j.created_at),
        run_at = when(j.run_at),
        started = opt_when(j.started_at),
        finished = opt_when(j.finished_at),
        error = esc(j.last_error.as_deref().unwrap_or("–")),
        payload = esc(&payload),
    );
    page("Job", Some(&s), &body)
}

async fn job_action(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Path((id, act)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = match act.as_str() {
        "replay" => "/api/jobs/{id}/replay",
        "cancel" => "/api/jobs/{id}/cancel",
        _ => {
            return message(
                StatusCode::NOT_FOUND,
                "No such action",
                "Jobs can be replayed or cancelled.",
            );
        }
    };
    if let Some(r) = refused(&s, &body, Some(route)) {
        return r;
    }
    let Ok(job_id) = id.parse::<uuid::Uuid>() else {
        return message(
            StatusCode::NOT_FOUND,
            "No such job",
            "There is no job with that id.",
        );
    };
    let path = format!("/ui/jobs/{job_id}/{act}");
    let outcome = if act == "replay" {
        app.queue.replay(job_id).await.map(|e| e.id)
    } else {
        app.queue.cancel(job_id).await.map(|c| {
            if let Cancelled::AlreadyFinished(st) = c {
                tracing::debug!(state = ?st, "cancel: the job had finished");
            }
            job_id
        })
    };
    let to = outcome.map(|next| format!("/ui/jobs/{next}"));
    acted(&app, &s, &path, &headers, to).await
}

/// An action done (recorded, then on to the page `to` names) or refused by the queue
/// (recorded with its status, and said why).
async fn acted(
    app: &AppState,
    s: &Session,
    path: &str,
    headers: &HeaderMap,
    to: Result<String, ferry_queue::QueueError>,
) -> Response {
    match to {
        Ok(to) => {
            record(app, &s.caller, path, StatusCode::SEE_OTHER, headers).await;
            redirect(&to)
        }
        Err(e) => {
            let e = crate::error::ServerError::from(e);
            record(app, &s.caller, path, e.status(), headers).await;
            message(e.status(), "Not done", &e.to_string())
        }
    }
}

/// The most jobs one bulk action changes; a bigger set takes another press.
const BULK_MAX: usize = 1000;
/// The most jobs a bulk action over a filter looks at (those not in a state to act on are
/// passed over), so one press is bounded work whatever the table holds.
const BULK_SCAN: usize = 10 * BULK_MAX;

/// Replays or cancels the selected jobs, or every job matching the list's filter.
async fn bulk(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let act = form_field(&body, "act").unwrap_or_default();
    let (replay, all) = match act.as_str() {
        "replay" => (true, false),
        "cancel" => (false, false),
        "replay-all" => (true, true),
        "cancel-all" => (false, true),
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                "No such action",
                "Jobs can be replayed or cancelled.",
            );
        }
    };
    let route = if replay {
        "/api/jobs/{id}/replay"
    } else {
        "/api/jobs/{id}/cancel"
    };
    if let Some(r) = refused(&s, &body, Some(route)) {
        return r;
    }
    let ids: Vec<uuid::Uuid> = if all {
        let state = match job_state(form_field(&body, "state")) {
            Ok(st) => st,
            Err(r) => return *r,
        };
        let mut filter = JobFilter {
            queue: form_field(&body, "queue").filter(|v| !v.is_empty()),
            state,
            kind: form_field(&body, "kind").filter(|v| !v.is_empty()),
            group: form_field(&body, "group").filter(|v| !v.is_empty()),
            after: None,
            limit: 500,
        };
        let mut ids = Vec::new();
        let mut seen = 0;
        while ids.len() < BULK_MAX && seen < BULK_SCAN {
            let list = match app.queue.list(&filter).await {
                Ok(l) => l,
                Err(e) => return failed(e),
            };
            seen += list.len();
            filter.after = list.last().map(|j| j.id);
            let done = list.len() < filter.limit as usize;
            ids.extend(
                list.into_iter()
                    .filter(|j| {
                        if replay {
                            matches!(
                                j.state,
                                JobState::Dead | JobState::Cancelled | JobState::Expired
                            )
                        } else {
                            matches!(
                                j.state,
                                JobState::Queued | JobState::Retrying | JobState::Running
                            )
                        }
                    })
                    .map(|j| j.id),
            );
            if done {
                break;
            }
        }
        ids.truncate(BULK_MAX);
        ids
    } else {
        form_values(&body, "id")
            .iter()
            .filter_map(|v| v.parse().ok())
            .take(BULK_MAX)
            .collect()
    };
    let (mut done, mut passed) = (0, 0);
    for id in &ids {
        let ok = if replay {
            app.queue.replay(*id).await.is_ok()
        } else {
            matches!(
                app.queue.cancel(*id).await,
                Ok(Cancelled::Cancelled | Cancelled::Requested)
            )
        };
        if ok {
            done += 1;
        } else {
            passed += 1;
        }
    }
    record(
        &app,
        &s.caller,
        &format!("/ui/jobs/bulk?act={act}"),
        StatusCode::OK,
        &headers,
    )
    .await;
    let verb = if replay { "replayed" } else { "cancelled" };
    let text = if ids.is_empty() {
        "No job was selected or matched in a state to act on.".to_owned()
    } else {
        format!("{done} jobs {verb}; {passed} were no longer in a state to be.")
    };
    message(StatusCode::OK, "Done", &text)
}

/// Every value of a repeated form field (checkboxes).
fn form_values(body: &[u8], name: &str) -> Vec<String> {
    url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

async fn queue_action(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Path((queue, act)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = match act.as_str() {
        "pause" => "/api/queues/{queue}/pause",
        "resume" => "/api/queues/{queue}/resume",
        _ => {
            return message(
                StatusCode::NOT_FOUND,
                "No such action",
                "Queues can be paused or resumed.",
            );
        }
    };
    if let Some(r) = refused(&s, &body, Some(route)) {
        return r;
    }
    let done = if act == "pause" {
        app.queue.pause(&queue).await
    } else {
        app.queue.resume(&queue).await
    };
    let path = format!("/ui/queues/{}/{act}", enc(&queue));
    acted(&app, &s, &path, &headers, done.map(|()| "/ui".to_owned())).await
}

// ---- assets -----------------------------------------------------------------------------

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, text: &'static str) -> Response {
    let mut r = text.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}
