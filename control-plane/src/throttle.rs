//! Login throttling. Failed logins are counted per user and per client
//! address over a sliding window; past the limit, logins answer 429
//! without asking git. An attempt takes its slot before git is asked, so
//! parallel attempts cannot all pass the check first. The per-user limit
//! stays below Bitbucket's CAPTCHA threshold (5 failures by default), so
//! SDP never locks a user out of git.

use std::collections::{HashMap, HashSet, VecDeque};
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
    by_user: HashMap<String, VecDeque<Slot>>,
    by_address: HashMap<IpAddr, VecDeque<Slot>>,
    /// Slots of attempts whose credential is still being checked.
    in_flight: HashSet<u64>,
    next_id: u64,
}

/// A failed attempt, or one in flight.
#[derive(Clone, Copy)]
struct Slot {
    at: Instant,
    id: u64,
}

/// Why a login is refused for now, and for how long.
#[derive(Debug)]
pub struct Throttled {
    pub by: &'static str,
    pub retry_after: Duration,
}

fn prune(times: &mut VecDeque<Slot>, window: Duration) {
    while times.front().is_some_and(|t| t.at.elapsed() >= window) {
        times.pop_front();
    }
}

fn check(times: Option<&mut VecDeque<Slot>>, limit: usize, window: Duration) -> Option<Duration> {
    let times = times?;
    prune(times, window);
    (times.len() >= limit).then(|| {
        times
            .front()
            .map(|first| window.saturating_sub(first.at.elapsed()))
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

    /// Takes a slot for one login attempt, or refuses it when either limit
    /// is reached. The slot counts as a failure from now on (so parallel
    /// attempts cannot all pass the check before any has failed) until the
    /// attempt succeeds or is dropped without a verdict.
    pub fn reserve(&self, username: &str, address: IpAddr) -> Result<Attempt, Throttled> {
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
        let slot = Slot {
            at: Instant::now(),
            id: failures.next_id,
        };
        failures.next_id += 1;
        failures.in_flight.insert(slot.id);
        failures
            .by_user
            .entry(user.clone())
            .or_default()
            .push_back(slot);
        failures
            .by_address
            .entry(address)
            .or_default()
            .push_back(slot);
        // Keep memory bounded under a spray of usernames or addresses.
        let window = self.window;
        let live = |times: &mut VecDeque<Slot>| {
            prune(times, window);
            !times.is_empty()
        };
        if failures.by_user.len() > 10_000 {
            failures.by_user.retain(|_, times| live(times));
        }
        if failures.by_address.len() > 10_000 {
            failures.by_address.retain(|_, times| live(times));
        }
        Ok(Attempt {
            throttle: self.clone(),
            user,
            address,
            id: slot.id,
            settled: false,
        })
    }
}

/// One login attempt's slot (see [`LoginThrottle::reserve`]). Dropped
/// without [`Attempt::failed`] or [`Attempt::succeeded`] (the credential
/// could not be checked, or the client left), it is given back.
pub struct Attempt {
    throttle: LoginThrottle,
    user: String,
    address: IpAddr,
    id: u64,
    settled: bool,
}

impl Attempt {
    /// A wrong credential: the slot stays taken for the window.
    pub fn failed(mut self) {
        self.settled = true;
        self.throttle.lock().in_flight.remove(&self.id);
    }

    /// A good login clears the user's failures (not the address's other
    /// ones). Other attempts still in flight keep their slots: their
    /// credentials reach git after this one, and git counts them.
    pub fn succeeded(mut self) {
        self.settled = true;
        let mut failures = self.throttle.lock();
        failures.in_flight.remove(&self.id);
        let Failures {
            by_user,
            by_address,
            in_flight,
            ..
        } = &mut *failures;
        if let Some(times) = by_user.get_mut(&self.user) {
            times.retain(|slot| in_flight.contains(&slot.id));
        }
        remove_slot(by_address.get_mut(&self.address), self.id);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut failures = self.throttle.lock();
        failures.in_flight.remove(&self.id);
        remove_slot(failures.by_user.get_mut(&self.user), self.id);
        remove_slot(failures.by_address.get_mut(&self.address), self.id);
    }
}

fn remove_slot(times: Option<&mut VecDeque<Slot>>, id: u64) {
    if let Some(times) = times {
        times.retain(|slot| slot.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(throttle: &LoginThrottle, user: &str, address: IpAddr) {
        throttle.reserve(user, address).expect("slot").failed();
    }

    #[test]
    fn limits_per_user_and_per_address() {
        let throttle = LoginThrottle::new(2, 3, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        fail(&throttle, "Dev", a);
        fail(&throttle, "dev", b);
        let refused = throttle.reserve("DEV", a).err().expect("user limit");
        assert_eq!(refused.by, "user");
        assert!(refused.retry_after <= Duration::from_secs(60));
        fail(&throttle, "x", a);
        fail(&throttle, "y", a);
        assert_eq!(
            throttle.reserve("z", a).err().expect("address limit").by,
            "address"
        );
        throttle
            .reserve("z", b)
            .expect("another address")
            .succeeded();
        // A success clears the user's failures.
        let throttle = LoginThrottle::new(2, 10, Duration::from_secs(60));
        fail(&throttle, "dev", a);
        throttle.reserve("dev", a).expect("slot").succeeded();
        fail(&throttle, "dev", a);
        assert!(throttle.reserve("dev", a).is_ok());
    }

    #[test]
    fn attempts_in_flight_hold_their_slots() {
        let throttle = LoginThrottle::new(3, 20, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let in_flight: Vec<Attempt> = (0..3)
            .map(|_| throttle.reserve("dev", a).expect("slot"))
            .collect();
        assert_eq!(throttle.reserve("dev", a).err().expect("full").by, "user");
        // An attempt that ends without a verdict gives its slot back.
        drop(in_flight);
        let attempts: Vec<Attempt> = (0..3)
            .map(|_| throttle.reserve("dev", a).expect("slot again"))
            .collect();
        attempts.into_iter().for_each(Attempt::failed);
        assert!(throttle.reserve("dev", a).is_err());
    }

    #[test]
    fn a_success_leaves_the_attempts_still_in_flight_their_slots() {
        let throttle = LoginThrottle::new(2, 20, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let good = throttle.reserve("dev", a).expect("slot");
        let guess = throttle.reserve("dev", b).expect("slot");
        good.succeeded();
        // The guess still holds its slot: one left.
        let next = throttle.reserve("dev", b).expect("one slot left");
        assert!(throttle.reserve("dev", b).is_err());
        guess.failed();
        next.failed();
        assert!(throttle.reserve("dev", a).is_err());
    }

    #[test]
    fn parallel_attempts_get_at_most_the_limit() {
        let throttle = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let granted = std::sync::atomic::AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(20);
        std::thread::scope(|scope| {
            for _ in 0..20 {
                scope.spawn(|| {
                    barrier.wait();
                    if let Ok(attempt) = throttle.reserve("dev", a) {
                        granted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        attempt.failed();
                    }
                });
            }
        });
        assert_eq!(granted.into_inner(), 3);
    }

    #[test]
    fn failures_age_out() {
        let throttle = LoginThrottle::new(1, 10, Duration::from_millis(50));
        let a: IpAddr = [127, 0, 0, 1].into();
        fail(&throttle, "dev", a);
        assert!(throttle.reserve("dev", a).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(throttle.reserve("dev", a).is_ok());
    }
}
