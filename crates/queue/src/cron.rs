//! Cron expressions, evaluated in UTC on epoch milliseconds.

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::{QueueError, Result};

pub(crate) fn parse(expr: &str) -> Result<Cron> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| QueueError::Cron {
            expr: expr.to_owned(),
            message: e.to_string(),
        })
}

/// The first tick strictly after `after_ms`.
pub(crate) fn next_after(cron: &Cron, expr: &str, after_ms: i64) -> Result<i64> {
    let err = |message: String| QueueError::Cron {
        expr: expr.to_owned(),
        message,
    };
    let at = Timestamp::from_millisecond(after_ms)
        .map_err(|e| err(e.to_string()))?
        .to_zoned(TimeZone::UTC);
    let next = cron
        .find_next_occurrence(&at, false)
        .map_err(|e| err(e.to_string()))?;
    Ok(next.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_minute_tick() {
        let c = parse("* * * * *").expect("valid");
        // 2026-01-01T00:00:30Z → 00:01:00
        assert_eq!(
            next_after(&c, "", 1_767_225_630_000).expect("next"),
            1_767_225_660_000
        );
        // Exactly on a tick: the next one, not the same.
        assert_eq!(
            next_after(&c, "", 1_767_225_660_000).expect("next"),
            1_767_225_720_000
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("every tuesday").is_err());
    }
}
