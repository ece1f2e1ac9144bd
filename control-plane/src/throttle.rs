//! Login throttling. Failed logins are counted per user and per client
//! address over a sliding window; past the limit, logins answer 429
//! without asking git. The per-user limit stays below Bitbucket's CAPTCHA
//! threshold (5 failures by default), so SDP never locks a user out of git.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct LoginThrottle {
    inner: Arc<Mutex<Failures>>,
    per_user: usize,
    per_address: usize,
    window: Duration,
}

#[derive(Default)]
struct Failures {
    by_user: HashMap<String, VecDeque<Instant>>,
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
}

/// Why a login is refused for now, and for how long.
#[derive(Debug)]
pub struct Throttled {
    pub by: &'static str,
    pub retry_after: Duration,
}

fn prune(times: &mut VecDeque<Instant>, window: Duration) {
    while times.front().is_some_and(|t| t.elapsed() >= window) {
        times.pop_front();
    }
}

fn check(
    times: Option<&mut VecDeque<Instant>>,
    limit: usize,
    window: Duration,
) -> Option<Duration> {
    let times = times?;
    prune(times, window);
    (times.len() >= limit).then(|| {
        times
            .front()
            .map(|first| window.saturating_sub(first.elapsed()))
            .unwrap_or(window)
    })
}

impl LoginThrottle {
    pub fn new(per_user: usize, per_address: usize, window: Duration) -> Self {
        Self {
            inner: Arc::default(),
            per_user,
            per_address,
            window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a login attempt that is over either limit.
    pub fn check(&self, username: &str, address: IpAddr) -> Result<(), Throttled> {
        let mut failures = self.lock();
        let user = username.to_lowercase();
        if let Some(retry_after) =
            check(failures.by_user.get_mut(&user), self.per_user, self.window)
        {
            return Err(Throttled {
                by: "user",
                retry_after,
            });
        }
        if let Some(retry_after) = check(
            failures.by_address.get_mut(&address),
            self.per_address,
            self.window,
        ) {
            return Err(Throttled {
                by: "address",
                retry_after,
            });
        }
        Ok(())
    }

    pub fn failed(&self, username: &str, address: IpAddr) {
        let mut failures = self.lock();
        let now = Instant::now();
        failures
            .by_user
            .entry(username.to_lowercase())
            .or_default()
            .push_back(now);
        failures
            .by_address
            .entry(address)
            .or_default()
            .push_back(now);
        // Keep memory bounded under a spray of usernames.
        if failures.by_user.len() > 10_000 {
            let window = self.window;
            failures.by_user.retain(|_, times| {
                prune(times, window);
                !times.is_empty()
            });
        }
    }

    /// A good login clears the user's failures (not the address's).
    pub fn succeeded(&self, username: &str) {
        self.lock().by_user.remove(&username.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_per_address() {
        let throttle = LoginThrottle::new(2, 3, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        throttle.failed("Dev", a);
        assert!(throttle.check("dev", a).is_ok());
        throttle.failed("dev", b);
        let refused = throttle.check("DEV", a).expect_err("user limit");
        assert_eq!(refused.by, "user");
        assert!(refused.retry_after <= Duration::from_secs(60));
        throttle.failed("x", a);
        throttle.failed("y", a);
        assert_eq!(
            throttle.check("z", a).expect_err("address limit").by,
            "address"
        );
        assert!(throttle.check("z", b).is_ok());
        throttle.succeeded("dev");
        assert!(throttle.check("dev", b).is_ok());
    }

    #[test]
    fn failures_age_out() {
        let throttle = LoginThrottle::new(1, 10, Duration::from_millis(50));
        let a: IpAddr = [127, 0, 0, 1].into();
        throttle.failed("dev", a);
        assert!(throttle.check("dev", a).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(throttle.check("dev", a).is_ok());
    }
}
