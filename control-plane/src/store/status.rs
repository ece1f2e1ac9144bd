//! The deployment status rules the store applies, derived from
//! [`sdp_bus::Status`] in one place: which statuses are unsettled, which
//! have (or will have) a container, and which transitions are allowed. The
//! SQL `status IN (…)` lists are made from these, never written by hand.

use std::sync::LazyLock;

use sdp_bus::Status;

/// Whether a deployment in `from` may move to `to`. A settled deployment
/// does not move again (a late event from an agent thought dead cannot
/// revive it), except `running` → `stopped` (its container was replaced
/// or torn down).
pub fn may_move(from: Status, to: Status) -> bool {
    !from.is_settled() || (from == Status::Running && to == Status::Stopped)
}

/// The statuses a deployment may move to `to` from.
pub fn movable_to(to: Status) -> Vec<Status> {
    Status::ALL
        .into_iter()
        .filter(|from| may_move(*from, to))
        .collect()
}

/// Statuses an agent has yet to finish: `queued` … `starting`.
pub fn unsettled() -> Vec<Status> {
    Status::ALL
        .into_iter()
        .filter(|s| !s.is_settled())
        .collect()
}

/// Statuses whose deployment has, or is getting, a container: the
/// unsettled ones and `running`.
pub fn live() -> Vec<Status> {
    Status::ALL
        .into_iter()
        .filter(|s| !s.is_settled() || *s == Status::Running)
        .collect()
}

/// `('queued','fetching',…)`: a SQL list of statuses, for `status IN`.
pub fn sql_list(statuses: &[Status]) -> String {
    let quoted: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", quoted.join(","))
}

/// [`sql_list`] of [`unsettled`].
pub static UNSETTLED_SQL: LazyLock<String> = LazyLock::new(|| sql_list(&unsettled()));
/// [`sql_list`] of [`live`].
pub static LIVE_SQL: LazyLock<String> = LazyLock::new(|| sql_list(&live()));

/// `UPDATE deployments SET status = ?2 WHERE id = ?1` if the move to
/// `to` is allowed from the row's status ([`may_move`]).
pub fn set_status_sql(to: Status) -> String {
    format!(
        "UPDATE deployments SET status = ?2 WHERE id = ?1 AND status IN {}",
        sql_list(&movable_to(to))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn unsettled_is_queued_to_starting() {
        assert_eq!(unsettled(), [Queued, Fetching, Building, Starting]);
        assert_eq!(
            *UNSETTLED_SQL,
            "('queued','fetching','building','starting')"
        );
    }

    #[test]
    fn live_adds_running() {
        assert_eq!(live(), [Queued, Fetching, Building, Starting, Running]);
        assert_eq!(
            *LIVE_SQL,
            "('queued','fetching','building','starting','running')"
        );
    }

    #[test]
    fn settled_deployments_do_not_move_except_running_to_stopped() {
        for to in Status::ALL {
            assert!(may_move(Queued, to));
            assert!(may_move(Starting, to));
            assert!(!may_move(Failed, to));
            assert!(!may_move(Cancelled, to));
            assert!(!may_move(Stopped, to));
        }
        assert!(may_move(Running, Stopped));
        assert!(!may_move(Running, Failed));
        assert!(!may_move(Running, Running));
        assert_eq!(movable_to(Stopped), live());
        assert_eq!(movable_to(Failed), unsettled());
        assert_eq!(movable_to(Running), unsettled());
    }
}
