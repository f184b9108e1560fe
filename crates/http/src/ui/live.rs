//! Live pages: a server-sent event stream per open tab that renders the tab's page every few
//! seconds (through the router itself, with the tab's own session) and pushes it only when it
//! changed. The browser swaps in the page's live parts; it closes the stream while the tab is
//! hidden and polls instead when a stream cannot be had.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::Digest;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::app::AppState;

/// Streams open at once in this process: each renders its page every [`EVERY`], so this
/// bounds the work live tabs cause. Past it a tab polls.
const STREAMS: usize = 32;
/// How often a stream renders its page.
const EVERY: Duration = Duration::from_secs(2);
/// A stream ends after this (the browser opens a new one), so a revoked session or a new
/// deployment is never held open for long.
const LIFETIME: Duration = Duration::from_secs(600);
/// The largest page a stream sends.
const PAGE_LIMIT: usize = 2 * 1024 * 1024;
/// The longest path (with its query) a stream renders.
const PATH_LIMIT: usize = 2048;

static OPEN: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(STREAMS)));

#[derive(Deserialize)]
pub(super) struct LiveQuery {
    /// The page to keep fresh: a dashboard path with its query string.
    path: String,
}

struct Stream {
    router: axum::Router,
    cookie: Option<axum::http::HeaderValue>,
    path: String,
    last: Option<[u8; 32]>,
    started: tokio::time::Instant,
    _permit: OwnedSemaphorePermit,
}

pub(super) async fn live(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Response {
    if q.path.len() > PATH_LIMIT
        || !(q.path == "/ui" || q.path.starts_with("/ui/") || q.path.starts_with("/ui?"))
        || q.path.starts_with("/ui/live")
        || q.path.chars().any(char::is_control)
    {
        return (StatusCode::BAD_REQUEST, "not a dashboard page").into_response();
    }
    let Ok(permit) = OPEN.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live pages open").into_response();
    };
    let state = Stream {
        router: super::routes(app.clone()).with_state(app),
        cookie: headers.get(header::COOKIE).cloned(),
        path: q.path,
        last: None,
        started: tokio::time::Instant::now(),
        _permit: permit,
    };
    let events = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.started.elapsed() >= LIFETIME {
                return None;
            }
            tokio::time::sleep(EVERY).await;
            let page = render(&st).await?;
            let hash: [u8; 32] = sha2::Sha256::digest(&page).into();
            if st.last == Some(hash) {
                continue;
            }
            // The first render is sent too: whatever changed between the page's load and the
            // stream's start reaches the tab.
            st.last = Some(hash);
            let event = Event::default()
                .event("page")
                .data(String::from_utf8_lossy(&page));
            return Some((Ok::<_, Infallible>(event), st));
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The page as the tab's session sees it now; none when it is not a page any more (signed
/// out, gone, failing): the stream ends and the browser falls back to polling.
async fn render(st: &Stream) -> Option<Vec<u8>> {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(&st.path)
        .body(Body::empty())
        .ok()?;
    if let Some(c) = &st.cookie {
        req.headers_mut().insert(header::COOKIE, c.clone());
    }
    let resp = st.router.clone().oneshot(req).await.ok()?;
    if resp.status() != StatusCode::OK {
        return None;
    }
    let body = axum::body::to_bytes(resp.into_body(), PAGE_LIMIT)
        .await
        .ok()?;
    Some(body.to_vec())
}
