//! One rule's state machine, as Prometheus's: inactive → pending (the condition holds) →
//! firing (it held for `for`) → resolved (it stopped holding for `keep_firing_for`) → inactive.
//! Pure: the evaluator feeds it a value (None: no data) and the time, and writes what it says.
//! Missing data changes nothing. Once firing, cpu, memory and disk hold until the value is 5
//! points under the threshold (hysteresis), so a value wavering at the threshold neither
//! resolves nor fires again.

use super::Kind;

/// A rule's state as stored.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "alert_state", rename_all = "lowercase")]
pub enum State {
    Inactive,
    Pending,
    Firing,
}

/// What a rule asks.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub kind: Kind,
    pub threshold: f64,
    pub for_secs: f64,
    pub keep_firing_secs: f64,
}

/// Where a rule is (times in seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    pub state: State,
    pub pending_since: Option<f64>,
    pub clear_since: Option<f64>,
}

impl Status {
    pub const INACTIVE: Status =
        Status { state: State::Inactive, pending_since: None, clear_since: None };
}

/// What a step did that others must hear of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Started firing; the alert started when the condition began to hold.
    Fired {
        started_at: f64,
    },
    Resolved,
}

/// The points under the threshold a firing cpu, memory or disk rule needs to resolve.
pub const HYSTERESIS: f64 = 5.0;

/// Whether `value` meets the rule (`firing`: whether it fires now, for hysteresis).
pub fn holds(rule: &Rule, value: f64, firing: bool) -> bool {
    match rule.kind {
        Kind::Cpu | Kind::Memory | Kind::Disk => {
            let bar = if firing { rule.threshold - HYSTERESIS } else { rule.threshold };
            value > bar
        }
        Kind::Network => value > rule.threshold,
        Kind::Crashloop => value >= rule.threshold,
        Kind::Offline | Kind::DeploymentFailed => value >= 1.0,
    }
}

/// The rule's next status at `now` given `value`, and what changed.
pub fn step(rule: &Rule, status: Status, value: Option<f64>, now: f64) -> (Status, Option<Change>) {
    let Some(value) = value else { return (status, None) };
    let firing = status.state == State::Firing;
    let on = holds(rule, value, firing);
    match (status.state, on) {
        (State::Inactive, false) => (Status::INACTIVE, None),
        (State::Inactive, true) | (State::Pending, true) => {
            let since = status.pending_since.unwrap_or(now);
            if now - since >= rule.for_secs {
                let next =
                    Status { state: State::Firing, pending_since: Some(since), clear_since: None };
                (next, Some(Change::Fired { started_at: since }))
            } else {
                (
                    Status { state: State::Pending, pending_since: Some(since), clear_since: None },
                    None,
                )
            }
        }
        (State::Pending, false) => (Status::INACTIVE, None),
        (State::Firing, true) => (Status { clear_since: None, ..status }, None),
        (State::Firing, false) => {
            let since = status.clear_since.unwrap_or(now);
            if now - since >= rule.keep_firing_secs {
                (Status::INACTIVE, Some(Change::Resolved))
            } else {
                (Status { clear_since: Some(since), ..status }, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: Rule =
        Rule { kind: Kind::Cpu, threshold: 80.0, for_secs: 300.0, keep_firing_secs: 60.0 };

    /// Evaluates every 30 s over `secs`, the value at each moment from `value`; the changes.
    fn run(rule: &Rule, secs: u32, value: impl Fn(u32) -> Option<f64>) -> Vec<(u32, Change)> {
        let mut status = Status::INACTIVE;
        let mut changes = Vec::new();
        for t in (0..=secs).step_by(30) {
            let (next, change) = step(rule, status, value(t), f64::from(t));
            status = next;
            changes.extend(change.map(|c| (t, c)));
        }
        changes
    }

    #[test]
    fn a_spike_shorter_than_for_never_fires() {
        let changes = run(&CPU, 3600, |t| Some(if (600..840).contains(&t) { 99.0 } else { 10.0 }));
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn a_value_flapping_at_the_threshold_fires_once_and_resolves_once() {
        // High for 6 minutes, then it wavers around 80 every 29 s for 20 minutes, then low.
        let changes = run(&CPU, 3600, |t| {
            Some(match t {
                0..360 => 95.0,
                360..1560 => {
                    if (t / 29) % 2 == 0 {
                        82.0
                    } else {
                        78.0
                    }
                }
                _ => 20.0,
            })
        });
        assert_eq!(
            changes,
            vec![(300, Change::Fired { started_at: 0.0 }), (1620, Change::Resolved)]
        );
    }

    #[test]
    fn one_evaluation_below_does_not_resolve_and_missing_data_keeps_the_state() {
        let changes = run(&CPU, 1200, |t| match t {
            0..=300 => Some(95.0),
            330 => Some(10.0),
            360..=600 => None,
            _ => Some(95.0),
        });
        assert_eq!(changes, vec![(300, Change::Fired { started_at: 0.0 })]);
    }

    #[test]
    fn rules_without_for_fire_at_once() {
        let crash =
            Rule { kind: Kind::Crashloop, threshold: 3.0, for_secs: 0.0, keep_firing_secs: 60.0 };
        let changes = run(&crash, 300, |t| Some(if t >= 60 { 3.0 } else { 2.0 }));
        assert_eq!(changes, vec![(60, Change::Fired { started_at: 60.0 })]);
    }
}
