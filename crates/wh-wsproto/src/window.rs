//! The anti-replay window (RFC 4303 §3.4.3 style): the highest sequence number accepted so far
//! and a 256-bit bitmap of which of the 256 numbers up to it were seen. A number above the
//! highest slides the window; one inside it is accepted once; one below it is too old.
//!
//! [`RecentIds`] is the other half of exactly-once delivery: envelope ids already processed,
//! so that a reliable message resent after a reconnect (same id, new sequence number) is
//! dropped.

use crate::Error;

/// How many envelope ids [`RecentIds`] remembers.
pub const RECENT_IDS: usize = 4096;

/// The last [`RECENT_IDS`] envelope ids processed; older ones are forgotten (bounded memory).
#[derive(Debug, Clone, Default)]
pub struct RecentIds {
    order: std::collections::VecDeque<String>,
    set: std::collections::HashSet<String>,
}

impl RecentIds {
    /// Records `id`; false when it was seen already.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(id.to_owned());
        self.set.insert(id.to_owned());
        true
    }
}

/// Window size in sequence numbers.
pub const WINDOW: u64 = 256;

/// The replay window of one direction of one connection.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    highest: Option<u64>,
    /// Bit `k` (word `k / 64`, bit `k % 64`) set: `highest - k` was seen.
    bits: [u64; 4],
}

impl ReplayWindow {
    /// Whether `seq` would be accepted; changes nothing.
    pub fn check(&self, seq: u64) -> Result<(), Error> {
        let Some(highest) = self.highest else { return Ok(()) };
        if seq > highest {
            return Ok(());
        }
        let age = highest - seq;
        if age >= WINDOW {
            return Err(Error::TooOld { seq, highest });
        }
        if self.bits[(age / 64) as usize] & (1 << (age % 64)) != 0 {
            return Err(Error::Replay { seq });
        }
        Ok(())
    }

    /// Records `seq` as seen. Call only after [`Self::check`] passed and the MAC verified.
    pub fn commit(&mut self, seq: u64) {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.bits = [1, 0, 0, 0];
            return;
        };
        if seq > highest {
            self.shift(seq - highest);
            self.highest = Some(seq);
            self.bits[0] |= 1;
        } else {
            let age = highest - seq;
            if age < WINDOW {
                self.bits[(age / 64) as usize] |= 1 << (age % 64);
            }
        }
    }

    /// Check and commit in one step.
    pub fn accept(&mut self, seq: u64) -> Result<(), Error> {
        self.check(seq)?;
        self.commit(seq);
        Ok(())
    }

    /// The highest sequence number accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.bits = [0; 4];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        let mut out = [0u64; 4];
        for (i, slot) in out.iter_mut().enumerate() {
            if i < words {
                continue;
            }
            let src = i - words;
            let mut v = self.bits[src] << bits;
            if bits > 0 && src > 0 {
                v |= self.bits[src - 1] >> (64 - bits);
            }
            *slot = v;
        }
        self.bits = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_duplicates_and_old() {
        let mut w = ReplayWindow::default();
        for s in 1..=1000 {
            w.accept(s).unwrap();
        }
        assert_eq!(w.accept(1000), Err(Error::Replay { seq: 1000 }));
        assert_eq!(w.accept(745), Err(Error::Replay { seq: 745 }));
        assert_eq!(w.accept(744), Err(Error::TooOld { seq: 744, highest: 1000 }));
        w.accept(5000).unwrap();
        assert!(w.accept(4999).is_ok(), "a gap below the highest is still acceptable once");
        assert!(w.accept(4999).is_err());
    }

    proptest! {
        /// Any permutation of unseen numbers inside the window is accepted, each exactly once.
        #[test]
        fn every_permutation_inside_the_window_is_accepted_once(perm in Just((1u64..=256).collect::<Vec<_>>()).prop_shuffle()) {
            let mut w = ReplayWindow::default();
            w.accept(256).unwrap();
            for &s in perm.iter().filter(|&&s| s != 256) {
                prop_assert!(w.accept(s).is_ok(), "rejected unseen {s}");
            }
            for &s in &perm {
                prop_assert!(w.accept(s).is_err(), "accepted duplicate {s}");
            }
        }

        /// Against a reference model (a set of seen numbers), decisions always agree.
        #[test]
        fn matches_a_reference_model(seqs in proptest::collection::vec(0u64..2000, 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen = std::collections::BTreeSet::new();
            let mut highest: Option<u64> = None;
            for s in seqs {
                let expect_ok = match highest {
                    None => true,
                    Some(h) => s > h || (h - s < WINDOW && !seen.contains(&s)),
                };
                prop_assert_eq!(w.accept(s).is_ok(), expect_ok, "seq {}", s);
                if expect_ok {
                    seen.insert(s);
                    highest = Some(highest.map_or(s, |h| h.max(s)));
                }
            }
        }
    }

    #[test]
    fn recent_ids_drop_duplicates_and_stay_bounded() {
        let mut r = RecentIds::default();
        assert!(r.insert("a"));
        assert!(!r.insert("a"));
        for i in 0..RECENT_IDS + 1 {
            r.insert(&i.to_string());
        }
        assert!(r.insert("a"), "the oldest ids are forgotten, bounded memory");
        assert!(r.order.len() <= RECENT_IDS);
    }
}
