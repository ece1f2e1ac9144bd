//! The WebSocket bridge's ordering, without sockets or the bus: events
//! come in by seq, in any order and possibly more than once; they go out
//! each once and in seq order, after the seq the viewer already has.
//!
//! The stream can hold 10 before 8 (an agent's publish that failed across
//! a node loss is retried after later ones landed), so an event ahead of a
//! missing seq is held until the gap fills. At most `bound` are held: a gap
//! that never fills must not grow a viewer's memory without end, so the
//! bridge closes and the client resumes from history with `?after=`.

use std::collections::BTreeMap;

/// Events held ahead of a gap, released in seq order.
#[derive(Debug)]
pub struct Reorder<T> {
    /// The seq the viewer has last been given.
    last: u64,
    /// Events that arrived ahead of a missing seq, by seq.
    ahead: BTreeMap<u64, T>,
    bound: usize,
}

/// More than the bound of events wait behind a missing seq.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

impl<T> Reorder<T> {
    /// Nothing held; the viewer has every seq up to `last`.
    pub fn new(last: u64, bound: usize) -> Self {
        Self {
            last,
            ahead: BTreeMap::new(),
            bound,
        }
    }

    /// The seq the viewer has last been given.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Takes in the event `seq`. One already given is dropped; the next
    /// in order is kept for [`Self::pop`] whatever the bound; one ahead of
    /// a gap is held unless `bound` are held already ([`Overflow`]: the
    /// viewer must reconnect). A seq held twice keeps the newer copy.
    pub fn push(&mut self, seq: u64, event: T) -> Result<(), Overflow> {
        if seq <= self.last {
            return Ok(());
        }
        if seq > self.last.saturating_add(1) && self.ahead.len() >= self.bound {
            return Err(Overflow);
        }
        self.ahead.insert(seq, event);
        Ok(())
    }

    /// The next event in order, if it is here; it counts as given.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        let next = self.last.checked_add(1)?;
        let event = self.ahead.remove(&next)?;
        self.last = next;
        Some((next, event))
    }

    /// How many events wait behind a gap.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.ahead.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Pushes each seq (its own seq as the event) and gives out what is
    /// ready after each, as the bridge does; `Err` at an overflow.
    fn run(reorder: &mut Reorder<u64>, seqs: &[u64]) -> Result<Vec<u64>, Vec<u64>> {
        let mut given = Vec::new();
        for &seq in seqs {
            if reorder.push(seq, seq).is_err() {
                return Err(given);
            }
            while let Some((seq, event)) = reorder.pop() {
                assert_eq!(seq, event);
                given.push(seq);
            }
        }
        Ok(given)
    }

    /// The cluster test's stream once: 8 and 9 were published after 10..13
    /// (the bridge used to give 1..7, 10..13 and drop 8 and 9).
    #[test]
    fn late_events_fill_the_gap_and_the_held_ones_follow() {
        let mut reorder = Reorder::new(0, 4096);
        let given = run(&mut reorder, &[1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13]).expect("bounded");
        assert_eq!(given, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(reorder.held(), 4);
        assert_eq!(run(&mut reorder, &[9]), Ok(vec![]));
        assert_eq!(run(&mut reorder, &[8]), Ok(vec![8, 9, 10, 11, 12, 13]));
        assert_eq!((reorder.last(), reorder.held()), (13, 0));
    }

    #[test]
    fn what_the_viewer_has_is_never_given_again() {
        let mut reorder = Reorder::new(5, 16);
        assert_eq!(run(&mut reorder, &[3, 5, 6, 6, 4, 7]), Ok(vec![6, 7]));
        assert_eq!(reorder.held(), 0);
    }

    #[test]
    fn the_bound_closes_the_stream_but_never_stops_the_next_in_order() {
        let mut reorder = Reorder::new(0, 3);
        assert_eq!(run(&mut reorder, &[2, 3, 4]), Ok(vec![]));
        assert_eq!(reorder.push(5, 5), Err(Overflow));
        // The gap's own seq goes in even with the bound reached.
        assert_eq!(run(&mut reorder, &[1]), Ok(vec![1, 2, 3, 4]));
        assert_eq!(run(&mut reorder, &[6, 7, 8, 5]), Ok(vec![5, 6, 7, 8]));
    }

    #[test]
    fn the_last_seq_there_can_be_is_given_once() {
        let mut reorder = Reorder::new(u64::MAX - 1, 1);
        assert_eq!(run(&mut reorder, &[u64::MAX, u64::MAX]), Ok(vec![u64::MAX]));
        assert_eq!(reorder.pop(), None);
    }

    /// 1..=n, shuffled, with some seqs repeated (later copies anywhere).
    fn shuffled_with_duplicates() -> impl Strategy<Value = (u64, Vec<u64>)> {
        (1u64..200).prop_flat_map(|n| {
            let seqs: Vec<u64> = (1..=n).collect();
            (
                Just(n),
                proptest::collection::vec(1..=n, 0..50),
                Just(seqs).prop_shuffle(),
            )
                .prop_flat_map(|(n, repeats, shuffled)| {
                    let mut all = shuffled;
                    all.extend(repeats);
                    (Just(n), Just(all).prop_shuffle())
                })
        })
    }

    proptest! {
        /// Any interleaving of out-of-order and repeated events reaches
        /// the viewer once each, in order, when the gaps fit the bound.
        #[test]
        fn every_event_reaches_the_viewer_once_and_in_order((n, seqs) in shuffled_with_duplicates()) {
            let mut reorder = Reorder::new(0, 4096);
            let given = run(&mut reorder, &seqs).expect("n < bound");
            prop_assert_eq!(given, (1..=n).collect::<Vec<_>>());
            prop_assert_eq!(reorder.held(), 0);
        }

        /// Whatever arrives (gaps never filled, seqs the viewer had,
        /// repeats), what is given is the run of seqs after `after` that
        /// arrived without a gap, and never more than the bound is held.
        #[test]
        fn only_the_gapless_run_after_the_resume_point_is_given(
            after in 0u64..20,
            seqs in proptest::collection::vec(0u64..60, 0..120),
            bound in 1usize..30,
        ) {
            let mut reorder = Reorder::new(after, bound);
            let mut seen = std::collections::BTreeSet::new();
            let mut given = Vec::new();
            let mut overflowed = false;
            for &seq in &seqs {
                if reorder.push(seq, seq).is_err() {
                    // Only a seq ahead of the gap, with the bound held.
                    prop_assert!(seq > reorder.last() + 1);
                    prop_assert_eq!(reorder.held(), bound);
                    overflowed = true;
                    break;
                }
                seen.insert(seq);
                while let Some((seq, _)) = reorder.pop() {
                    given.push(seq);
                }
                prop_assert!(reorder.held() <= bound);
            }
            let expected: Vec<u64> = (after + 1..).take_while(|s| seen.contains(s)).collect();
            prop_assert_eq!(&given, &expected);
            prop_assert_eq!(reorder.last(), expected.last().copied().unwrap_or(after));
            if !overflowed {
                // Everything held waits behind the one gap.
                prop_assert!(!seen.contains(&(reorder.last() + 1)));
            }
        }

        /// A gap that never fills overflows at the bound's next event,
        /// having given nothing past the gap.
        #[test]
        fn a_gap_that_never_fills_closes_at_the_bound(bound in 1usize..300, gap in 1u64..5) {
            let mut reorder = Reorder::new(0, bound);
            let seqs: Vec<u64> = (1..gap).chain((gap + 1..).take(bound)).collect();
            let given = run(&mut reorder, &seqs).expect("within the bound");
            prop_assert_eq!(given, (1..gap).collect::<Vec<_>>());
            let next = gap + 1 + bound as u64;
            prop_assert_eq!(reorder.push(next, next), Err(Overflow));
        }
    }
}
