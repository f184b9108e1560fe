//! A store's health as its tile and its page show it: the API's breaker and rate budget, the
//! token, how far its jobs lag, how many failed in the last hour, and when one last
//! succeeded. Keyed lookups only, so the overview stays fast with many stores and jobs.

use std::collections::HashMap;

use ferry_sync::StoreConfig;

use crate::app::AppState;
use crate::error::ServerError;

/// The last hour, over which a tile's error rate and last success are read.
const HOUR_MS: i64 = 3_600_000;
/// Waits that turn a tile amber and red.
const LAG_AMBER_MS: i64 = 60_000;
const LAG_RED_MS: i64 = 15 * 60_000;
/// A budget this full turns a tile amber (calls are about to wait for it).
const BUDGET_AMBER: f64 = 0.9;

pub(super) struct Health {
    /// `green`, `amber` or `red`.
    pub class: &'static str,
    /// The worst thing about the store, in words.
    pub reason: String,
    /// Share of the API's rate budget in use now (none: no call made yet).
    pub budget_used: Option<f64>,
    /// How long the oldest ready job of the store has waited.
    pub lag_ms: i64,
    /// Jobs of the store that ran in the last hour, and how many of them failed.
    pub attempts: i64,
    pub failed: i64,
    pub last_success_ms: Option<i64>,
    pub link_problems: i64,
    /// The API's state in words (breaker).
    pub api: String,
}

impl Health {
    pub fn budget_text(&self) -> String {
        self.budget_used
            .map_or("–".to_owned(), |u| format!("{:.0}% used", u * 100.0))
    }

    pub fn lag_text(&self) -> String {
        if self.lag_ms > 0 {
            super::page::age(self.lag_ms)
        } else {
            "none".to_owned()
        }
    }

    pub fn errors_text(&self) -> String {
        match self.attempts {
            0 => "no job ran".to_owned(),
            n => format!(
                "{} of {n} failed ({:.0}%)",
                self.failed,
                self.error_rate() * 100.0
            ),
        }
    }

    pub fn error_rate(&self) -> f64 {
        if self.attempts == 0 {
            0.0
        } else {
            self.failed as f64 / self.attempts as f64
        }
    }
}

/// What the tiles of every store are read from, fetched once per page: each a small table
/// or a window of samples, so a page's reads do not grow with the stores but for the lag.
pub(super) struct Snapshot {
    now: i64,
    breakers: HashMap<String, ferry_connect::breaker::BreakerState>,
    budgets: HashMap<String, ferry_connect::budget::BudgetState>,
    activity: HashMap<String, ferry_queue::GroupActivity>,
    problems: HashMap<String, i64>,
    tokens: HashMap<String, (ferry_connect::oauth::TokenStatus, Vec<&'static str>)>,
}

impl Snapshot {
    pub async fn read(app: &AppState) -> Result<Snapshot, ServerError> {
        let now = app.queue.now_ms();
        let internal = |e: ferry_connect::error::ConnectError| ServerError::Internal(e.to_string());
        let client = app.engine.client();
        let breakers = client.breakers().all().await.map_err(internal)?;
        let budgets = client.budget().all().await.map_err(internal)?;
        Ok(Snapshot {
            now,
            breakers: breakers.into_iter().map(|b| (b.key.clone(), b)).collect(),
            budgets: budgets.into_iter().collect(),
            activity: app.queue.groups_activity(now - HOUR_MS).await?,
            problems: app.engine.network().link_problem_counts().await?,
            tokens: app.engine.token_states().await?,
        })
    }
}

pub(super) async fn health(
    app: &AppState,
    snap: &Snapshot,
    st: &StoreConfig,
    dead: i64,
) -> Result<Health, ServerError> {
    let now = snap.now;
    // The connector's key for the store's API: its breaker and its budget.
    let key = format!("shopify:{}", st.graphql_url);
    let breaker = snap.breakers.get(&key);
    let budget_used = snap.budgets.get(&key).map(|b| {
        // The bucket drains at its restore rate since it was last written.
        let drained = b.restore_per_s * (now - b.at_ms).max(0) as f64 / 1000.0;
        let level = if b.blocked_until_ms > now {
            b.capacity
        } else {
            (b.level - drained).max(0.0)
        };
        (level / b.capacity.max(1.0)).clamp(0.0, 1.0)
    });
    let mut lag_ms = 0;
    for q in ferry_sync::Engine::queues() {
        lag_ms = lag_ms.max(app.queue.group_lag_ms(q, &st.name).await?);
    }
    let activity = snap.activity.get(&st.name).cloned().unwrap_or_default();
    let link_problems = snap.problems.get(&st.name).copied().unwrap_or(0);
    let (reauth, missing_scopes) = match snap.tokens.get(&st.name) {
        Some((t, missing)) => (
            (t.state == "needs_reauthorization").then(|| t.reason.clone().unwrap_or_default()),
            missing.clone(),
        ),
        None => (None, Vec::new()),
    };
    let api = match breaker {
        Some(b) if b.state == "open" => format!(
            "failing: calls paused for {}",
            super::page::age(b.open_until_ms - now)
        ),
        Some(b) if b.state == "half_open" => "recovering: one probe call".to_owned(),
        Some(b) if b.failures > 0 => format!("{} recent failures", b.failures),
        _ => "healthy".to_owned(),
    };
    let attempts = activity.completed + activity.failed;
    let mut h = Health {
        class: "green",
        reason: "healthy".to_owned(),
        budget_used,
        lag_ms,
        attempts,
        failed: activity.failed,
        last_success_ms: activity.last_success_ms,
        link_problems,
        api,
    };
    // The first match is the worst: red before amber.
    let (class, reason) = if let Some(why) = reauth {
        ("red", format!("needs reauthorization: {why}"))
    } else if breaker.is_some_and(|b| b.state == "open") {
        ("red", format!("API {}", h.api))
    } else if lag_ms > LAG_RED_MS {
        ("red", format!("jobs waiting {}", super::page::age(lag_ms)))
    } else if !missing_scopes.is_empty() {
        (
            "amber",
            format!("missing permissions: {}", missing_scopes.join(", ")),
        )
    } else if breaker.is_some_and(|b| b.state == "half_open" || b.failures > 0) {
        ("amber", format!("API {}", h.api))
    } else if dead > 0 {
        ("amber", "jobs failed for good".to_owned())
    } else if activity.failing_now {
        // Failures earlier in the hour that have stopped are only the figure below.
        (
            "amber",
            format!(
                "jobs failing: {:.0}% failed in the last hour",
                h.error_rate() * 100.0
            ),
        )
    } else if lag_ms > LAG_AMBER_MS {
        (
            "amber",
            format!("jobs waiting {}", super::page::age(lag_ms)),
        )
    } else if budget_used.is_some_and(|u| u >= BUDGET_AMBER) {
        ("amber", "API budget nearly spent".to_owned())
    } else if link_problems > 0 {
        ("amber", "some products could not be linked".to_owned())
    } else if st.state.as_str() != "connected" {
        ("amber", "not connected yet".to_owned())
    } else {
        ("green", "healthy".to_owned())
    };
    h.class = class;
    h.reason = reason;
    Ok(h)
}
