//! Re-apply coalescing, without tasks or the store: at most one worker
//! per target, and the requests made while it runs folded into one more
//! run. A run reads the desired state when it starts, so one run after
//! the last request is all that request needs: none is lost, none waits
//! for more than the run under way.

use std::collections::HashMap;
use std::hash::Hash;

/// The targets with a worker, and whether another run was asked for
/// meanwhile (with the newest credential given, `F`).
#[derive(Debug)]
pub struct Coalescer<K, F> {
    running: HashMap<K, Queued<F>>,
}

#[derive(Debug)]
struct Queued<F> {
    again: bool,
    from: Option<F>,
}

/// What becomes of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted<F> {
    /// No worker has the target: the caller starts one, with the
    /// request's own credential.
    Start(Option<F>),
    /// Folded into the next run of the worker that has it.
    Folded,
}

/// What the worker of a target does after a run.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<F> {
    /// Requests came meanwhile: run once more, with the newest credential
    /// one of them gave.
    Again(Option<F>),
    /// Nothing came: the worker ends and the target is free.
    Done,
}

impl<K, F> Default for Coalescer<K, F> {
    fn default() -> Self {
        Self {
            running: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash, F> Coalescer<K, F> {
    /// A request to run for `target`. Folded, its `from` replaces an
    /// older one's; none keeps it.
    pub fn request(&mut self, target: K, from: Option<F>) -> Admitted<F> {
        if let Some(queued) = self.running.get_mut(&target) {
            queued.again = true;
            if from.is_some() {
                queued.from = from;
            }
            return Admitted::Folded;
        }
        self.running.insert(
            target,
            Queued {
                again: false,
                from: None,
            },
        );
        Admitted::Start(from)
    }

    /// The worker of `target` finished a run: whether it runs again.
    pub fn finished(&mut self, target: &K) -> Next<F> {
        let Some(queued) = self.running.get_mut(target) else {
            return Next::Done;
        };
        if !queued.again {
            self.running.remove(target);
            return Next::Done;
        }
        queued.again = false;
        Next::Again(queued.from.take())
    }

    /// The targets with a worker.
    pub fn targets(&self) -> impl Iterator<Item = &K> {
        self.running.keys()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn requests_during_a_run_make_one_more_with_the_newest_credential() {
        let mut runs = Coalescer::<&str, u32>::default();
        assert_eq!(runs.request("alpha", Some(1)), Admitted::Start(Some(1)));
        assert_eq!(runs.request("alpha", Some(2)), Admitted::Folded);
        assert_eq!(runs.request("alpha", Some(3)), Admitted::Folded);
        assert_eq!(runs.request("alpha", None), Admitted::Folded);
        assert_eq!(
            runs.request("beta", None),
            Admitted::Start(None),
            "another target runs apart"
        );
        assert_eq!(runs.finished(&"alpha"), Next::Again(Some(3)));
        assert_eq!(runs.finished(&"alpha"), Next::Done);
        assert_eq!(
            runs.request("alpha", None),
            Admitted::Start(None),
            "a free target starts again"
        );
        assert_eq!(runs.targets().count(), 2);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Request {
            target: u8,
            from: Option<u8>,
        },
        /// The worker of the target (if any) ends its run.
        Finish {
            target: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3, proptest::option::of(0u8..10))
                .prop_map(|(target, from)| Op::Request { target, from }),
            (0u8..3).prop_map(|target| Op::Finish { target }),
        ]
    }

    proptest! {
        /// Whatever the interleaving of requests and ends of runs: one
        /// worker per target at most, every request has a run that starts
        /// at or after it (the last one is never lost), and each run gets
        /// the newest credential of the requests folded into it.
        #[test]
        fn no_request_is_lost_and_the_newest_credential_wins(ops in proptest::collection::vec(op(), 0..80)) {
            let mut runs = Coalescer::<u8, u8>::default();
            // Target → whether its worker runs.
            let mut working: HashMap<u8, bool> = HashMap::new();
            let mut starts: Vec<(u8, usize)> = Vec::new();
            let mut requests: Vec<(u8, usize)> = Vec::new();
            // Target → the newest credential of requests since its run started.
            let mut newest: HashMap<u8, Option<u8>> = HashMap::new();
            let finish = |runs: &mut Coalescer<u8, u8>, working: &mut HashMap<u8, bool>,
                          newest: &mut HashMap<u8, Option<u8>>, starts: &mut Vec<(u8, usize)>,
                          target: u8, at: usize| -> Result<(), TestCaseError> {
                if !working.get(&target).copied().unwrap_or(false) {
                    return Ok(());
                }
                match runs.finished(&target) {
                    Next::Again(from) => {
                        let folded = newest.remove(&target);
                        prop_assert!(folded.is_some(), "ran again with no request");
                        prop_assert_eq!(from, folded.flatten());
                        starts.push((target, at));
                    }
                    Next::Done => {
                        prop_assert!(!newest.contains_key(&target), "a request was dropped");
                        working.insert(target, false);
                    }
                }
                Ok(())
            };
            for (at, op) in ops.iter().enumerate() {
                match *op {
                    Op::Request { target, from } => {
                        requests.push((target, at));
                        let running = working.get(&target).copied().unwrap_or(false);
                        let admitted = runs.request(target, from);
                        prop_assert_eq!(admitted == Admitted::Folded, running, "one worker per target");
                        if let Admitted::Start(own) = admitted {
                            prop_assert_eq!(own, from, "a worker starts with its request's credential");
                            working.insert(target, true);
                            starts.push((target, at));
                        } else {
                            let slot = newest.entry(target).or_insert(None);
                            if from.is_some() {
                                *slot = from;
                            }
                        }
                    }
                    Op::Finish { target } => {
                        finish(&mut runs, &mut working, &mut newest, &mut starts, target, at)?;
                    }
                }
            }
            // Let every worker run to its end.
            let mut at = ops.len();
            while let Some(target) = working.iter().find(|(_, w)| **w).map(|(t, _)| *t) {
                finish(&mut runs, &mut working, &mut newest, &mut starts, target, at)?;
                at += 1;
            }
            prop_assert_eq!(runs.targets().count(), 0);
            for (target, requested_at) in requests {
                prop_assert!(
                    starts.iter().any(|&(t, started_at)| t == target && started_at >= requested_at),
                    "the request of target {} at {} has no run after it", target, requested_at
                );
            }
        }
    }
}
