//! The exit codes of `sdp`, and how deployment outcomes and HTTP answers
//! map onto them. The table is documented in `cli/README.md` and in
//! `sdp --help`; scripts rely on it, so codes are added, never renumbered.

use sdp_bus::Status;

/// What `sdp` exits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; a followed deployment is `running`.
    Ok = 0,
    /// A followed deployment ended `failed` (or `stopped`).
    Failed = 1,
    /// Bad arguments, or the server refused the input (HTTP 400).
    Usage = 2,
    /// Not logged in, session expired, wrong password, or not allowed (401/403).
    Auth = 3,
    /// A followed deployment was cancelled.
    Cancelled = 4,
    /// `--timeout` ran out before the deployment settled (it goes on).
    TimedOut = 5,
    /// The control plane or NATS could not be reached, or answered 5xx.
    Unavailable = 6,
    /// What was named does not exist, or conflicts (404/409).
    NotFound = 7,
}

/// The help text's table (kept beside the enum so they agree).
pub const TABLE: &str = "\
Exit codes:
  0  ok (a followed deployment is running)
  1  a deployment failed
  2  usage error (bad arguments, or input the server refused)
  3  authentication: not logged in, session expired, wrong password, forbidden
  4  a deployment was cancelled
  5  --timeout ran out (the deployment goes on)
  6  control plane or NATS unreachable, or a server error
  7  not found or conflict";

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit of a deployment that reached `status`; `None` while it is
    /// unsettled.
    pub fn for_status(status: Status) -> Option<Exit> {
        match status {
            Status::Running => Some(Exit::Ok),
            Status::Failed | Status::Stopped => Some(Exit::Failed),
            Status::Cancelled => Some(Exit::Cancelled),
            Status::Queued | Status::Fetching | Status::Building | Status::Starting => None,
        }
    }

    /// The exit for an HTTP error status from the control plane.
    pub fn for_http(status: u16) -> Exit {
        match status {
            401 | 403 => Exit::Auth,
            404 | 409 | 410 => Exit::NotFound,
            400..=499 => Exit::Usage,
            _ => Exit::Unavailable,
        }
    }

    /// How bad an outcome is when several deployments are followed: the
    /// worst one is the command's exit. Failed > timed out > cancelled > ok.
    fn severity(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Cancelled => 1,
            Exit::TimedOut => 2,
            Exit::Failed => 3,
            Exit::NotFound => 4,
            Exit::Usage => 5,
            Exit::Auth => 6,
            Exit::Unavailable => 7,
        }
    }

    /// The worse of two exits.
    pub fn worst(self, other: Exit) -> Exit {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_documented_codes() {
        assert_eq!(Exit::for_status(Status::Running).map(Exit::code), Some(0));
        assert_eq!(Exit::for_status(Status::Failed).map(Exit::code), Some(1));
        assert_eq!(Exit::for_status(Status::Stopped).map(Exit::code), Some(1));
        assert_eq!(Exit::for_status(Status::Cancelled).map(Exit::code), Some(4));
        for unsettled in [
            Status::Queued,
            Status::Fetching,
            Status::Building,
            Status::Starting,
        ] {
            assert_eq!(Exit::for_status(unsettled), None, "{unsettled}");
        }
    }

    #[test]
    fn http_statuses_map_to_documented_codes() {
        assert_eq!(Exit::for_http(400).code(), 2);
        assert_eq!(Exit::for_http(413).code(), 2);
        assert_eq!(Exit::for_http(401).code(), 3);
        assert_eq!(Exit::for_http(403).code(), 3);
        assert_eq!(Exit::for_http(404).code(), 7);
        assert_eq!(Exit::for_http(409).code(), 7);
        assert_eq!(Exit::for_http(500).code(), 6);
        assert_eq!(Exit::for_http(503).code(), 6);
    }

    #[test]
    fn worst_of_several_outcomes() {
        assert_eq!(Exit::Ok.worst(Exit::Failed), Exit::Failed);
        assert_eq!(Exit::Failed.worst(Exit::Ok), Exit::Failed);
        assert_eq!(Exit::Cancelled.worst(Exit::TimedOut), Exit::TimedOut);
        assert_eq!(Exit::TimedOut.worst(Exit::Failed), Exit::Failed);
        assert_eq!(Exit::Ok.worst(Exit::Ok), Exit::Ok);
    }

    #[test]
    fn the_help_table_lists_every_code() {
        for exit in [
            Exit::Ok,
            Exit::Failed,
            Exit::Usage,
            Exit::Auth,
            Exit::Cancelled,
            Exit::TimedOut,
            Exit::Unavailable,
            Exit::NotFound,
        ] {
            assert!(
                TABLE.contains(&format!("\n  {}  ", exit.code())),
                "{exit:?} missing from the table"
            );
        }
    }
}
