//! The watchdog's judgement of one unsettled deployment, from durations
//! the watchdog measured: no clock, store or bus in here.
//!
//! Two steps, as the watchdog takes them: [`verdict`] suspects a
//! deployment from the heartbeats; only then is its stream read, and
//! [`cleared_by_stream`] lets it go if the agent finished it or was heard
//! from on it lately (SQLite lags the stream while the persister is
//! behind).

use std::time::Duration;

/// What the latest heartbeat of a deployment's agent says.
#[derive(Clone, Copy, Debug)]
pub struct Heard {
    /// Since that heartbeat.
    pub silent_for: Duration,
    /// Whether it lists the deployment as one it works on.
    pub working_on_it: bool,
}

/// The reason to fail a deployment of `agent_id`, if there is one:
///
/// - its agent stopped heartbeating `timeout` ago or more;
/// - no heartbeat of it at all, though the watchdog has listened for
///   `timeout` and the deployment has been quiet as long (a control
///   plane that just started has not heard every agent yet);
/// - its agent heartbeats but no longer works on it (it restarted), and
///   the deployment has been quiet for `timeout`.
///
/// `quiet_for`: since the deployment's row last changed.
pub fn verdict(
    agent_id: &str,
    heard: Option<Heard>,
    listening_for: Duration,
    quiet_for: Duration,
    timeout: Duration,
) -> Option<String> {
    match heard {
        Some(heard) if heard.silent_for >= timeout => Some(format!(
            "agent {agent_id} stopped sending heartbeats {}s ago",
            heard.silent_for.as_secs()
        )),
        None if listening_for >= timeout && quiet_for >= timeout => Some(format!(
            "agent {agent_id} has not sent a heartbeat for {}s",
            timeout.as_secs()
        )),
        Some(heard) if quiet_for >= timeout && !heard.working_on_it => Some(format!(
            "agent {agent_id} is no longer working on this deployment (it restarted)"
        )),
        _ => None,
    }
}

/// The newest event on a deployment's stream, as the watchdog reads it.
#[derive(Clone, Copy, Debug)]
pub struct StreamEnd {
    pub is_result: bool,
    /// Since the event's timestamp.
    pub heard_for: Duration,
}

/// Whether the stream shows a suspected deployment alive after all: its
/// result is there (the agent finished), or it was heard from within
/// `timeout`.
pub fn cleared_by_stream(last: Option<StreamEnd>, timeout: Duration) -> bool {
    last.is_some_and(|last| last.is_result || last.heard_for < timeout)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[allow(non_snake_case)]
    fn S(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn each_reason_names_the_agent_and_what_it_did() {
        let silent = Heard {
            silent_for: S(42),
            working_on_it: true,
        };
        let restarted = Heard {
            silent_for: S(1),
            working_on_it: false,
        };
        assert_eq!(
            verdict("a-1", Some(silent), S(100), S(0), TIMEOUT).as_deref(),
            Some("agent a-1 stopped sending heartbeats 42s ago")
        );
        assert_eq!(
            verdict("a-1", None, S(100), S(30), TIMEOUT).as_deref(),
            Some("agent a-1 has not sent a heartbeat for 30s")
        );
        assert_eq!(
            verdict("a-1", Some(restarted), S(100), S(30), TIMEOUT).as_deref(),
            Some("agent a-1 is no longer working on this deployment (it restarted)")
        );
    }

    #[test]
    fn a_control_plane_that_just_started_waits_for_heartbeats() {
        assert_eq!(verdict("a-1", None, S(29), S(3600), TIMEOUT), None);
        assert_eq!(verdict("a-1", None, S(30), S(29), TIMEOUT), None);
    }

    #[test]
    fn the_stream_clears_a_result_or_a_recent_event_only() {
        let end = |is_result, heard_for| {
            Some(StreamEnd {
                is_result,
                heard_for,
            })
        };
        assert!(cleared_by_stream(end(true, S(3600)), TIMEOUT));
        assert!(cleared_by_stream(end(false, S(29)), TIMEOUT));
        assert!(!cleared_by_stream(end(false, S(30)), TIMEOUT));
        assert!(!cleared_by_stream(None, TIMEOUT));
    }

    fn secs() -> impl Strategy<Value = Duration> {
        (0u64..200).prop_map(Duration::from_secs)
    }

    proptest! {
        /// An agent that heartbeated within the window, naming the
        /// deployment, never has it failed.
        #[test]
        fn a_live_agent_working_on_it_is_never_failed(
            silent_for in secs(), listening_for in secs(), quiet_for in secs(), timeout in secs(),
        ) {
            prop_assume!(silent_for < timeout);
            let heard = Heard { silent_for, working_on_it: true };
            prop_assert_eq!(verdict("a", Some(heard), listening_for, quiet_for, timeout), None);
        }

        /// A deployment that changed within the window is failed only if
        /// its agent has been silent for the window.
        #[test]
        fn a_recent_deployment_is_failed_only_for_a_silent_agent(
            silent_for in secs(), working_on_it: bool, known: bool,
            listening_for in secs(), quiet_for in secs(), timeout in secs(),
        ) {
            prop_assume!(quiet_for < timeout);
            let heard = known.then_some(Heard { silent_for, working_on_it });
            let failed = verdict("a", heard, listening_for, quiet_for, timeout).is_some();
            prop_assert_eq!(failed, known && silent_for >= timeout);
        }

        /// An agent silent for the window, or never heard once the
        /// watchdog has listened and the deployment been quiet as long,
        /// fails it; a stream event within the window or a result always
        /// saves it.
        #[test]
        fn silence_fails_unless_the_stream_shows_life(
            silent_for in secs(), working_on_it: bool, known: bool,
            listening_for in secs(), quiet_for in secs(), timeout in secs(),
            is_result: bool, heard_for in secs(),
        ) {
            let heard = known.then_some(Heard { silent_for, working_on_it });
            let reason = verdict("a", heard, listening_for, quiet_for, timeout);
            let silent = if known {
                silent_for >= timeout
            } else {
                listening_for >= timeout && quiet_for >= timeout
            };
            if silent {
                prop_assert!(reason.is_some());
            }
            let end = StreamEnd { is_result, heard_for };
            if is_result || heard_for < timeout {
                prop_assert!(cleared_by_stream(Some(end), timeout));
            } else {
                prop_assert!(!cleared_by_stream(Some(end), timeout));
            }
        }
    }
}
