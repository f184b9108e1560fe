//! A store's health as its tile and its page show it: the API's breaker and rate budget, the
//! token, how far its jobs lag, how many failed in the last hour, and when one last
//! succeeded. Keyed lookups only, so the overview stays fast with many stores and jobs.

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

pub(super) async fn health(
    app: &AppState,
    st: &StoreConfig,
    dead: i64,
) -> Result<Health, ServerError> {
    let now = app.queue.now_ms();
    let internal = |e: ferry_connect::error::ConnectError| ServerError::Internal(e.to_string());
    // The connector's key for the store's API: its breaker and its budget.
    let key = format!("shopify:{}", st.graphql_url);
    let client = app.engine.client();
    let breaker = client.breakers().get(&key).await.map_err(internal)?;
    let budget = client.budget().state(&key).await.map_err(internal)?;
    let budget_used = budget.map(|b| {
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
    let activity = app.queue.group_activity(&st.name, now - HOUR_MS).await?;
    let link_problems = app
        .engine
        .network()
        .link_problem_count(&st.name, super::PROBLEM_ROWS)
        .await?;
    let access = app.engine.access_view(&st.name).await?;
    let reauth = access
        .token
        .as_ref()
        .filter(|t| t.state == "needs_reauthorization")
        .map(|t| t.reason.clone().unwrap_or_default());

    let api = match &breaker {
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
    } else if breaker.as_ref().is_some_and(|b| b.state == "open") {
        ("red", format!("API {}", h.api))
    } else if lag_ms > LAG_RED_MS {
        ("red", format!("jobs waiting {}", super::page::age(lag_ms)))
    } else if !access.missing_scopes.is_empty() {
        (
            "amber",
            format!("missing permissions: {}", access.missing_scopes.join(", ")),
        )
    } else if breaker
        .as_ref()
        .is_some_and(|b| b.state == "half_open" || b.failures > 0)
    {
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
