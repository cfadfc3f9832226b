//! Sign-in lockout: when repeated wrong passwords lock an account, and for how long.
//!
//! Failures are counted per account and per (account, client network). Each attempt takes a
//! slot *before* its password is checked, in the transaction that reads the counters, and no
//! more than `threshold - failures` slots are out at once, so parallel guesses cannot all pass
//! a check that sees none of the others: of fifty at once, at most `threshold` get a password
//! checked. The others wait for a slot (they are busy, not refused); a wrong password turns its
//! slot into a failure, which may lock; a right one hands it back and clears the count, so many
//! parallel sign-ins with the right password all go through.
//!
//! A client network that signed in to the account successfully before is a known device: there
//! only its own counter applies, so an attacker elsewhere who locks the account does not lock
//! its owner out at home.

use std::time::Duration;

use super::time::Timestamp;

/// The first lock lasts this long; each further failure doubles it.
pub const FIRST_LOCK: Duration = Duration::from_secs(60);
/// No lock lasts longer.
pub const LONGEST_LOCK: Duration = Duration::from_secs(3600);
/// Failures are forgotten after a day without one.
pub const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A known device is remembered this long after its last successful sign-in.
pub const REMEMBER_DEVICE_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Slots taken longer ago than this are counted as lost (their node stopped mid-check).
pub const SLOT_TIMEOUT: Duration = Duration::from_secs(60);

/// One counter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub failures: u32,
    /// Attempts whose password is being checked, the latest taken at `pending_since`.
    pub pending: u32,
    pub pending_since: Timestamp,
    pub locked_until: Timestamp,
    /// When this client network last signed in successfully (client counters only).
    pub known_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// When the row may be deleted.
    pub forget_at: Timestamp,
}

impl Tally {
    /// A counter that has seen nothing.
    pub fn fresh(now: Timestamp) -> Self {
        let never = Timestamp::from_micros(0);
        Self {
            failures: 0,
            pending: 0,
            pending_since: never,
            locked_until: never,
            known_at: None,
            updated_at: now,
            forget_at: now,
        }
    }

    /// How much longer it is locked, if it is.
    fn remaining_lock(&self, now: Timestamp) -> Option<Duration> {
        (self.locked_until > now).then(|| micros(self.locked_until.as_micros() - now.as_micros()))
    }

    /// Failures that still count: none after a quiet day. Slots never settled (their node
    /// stopped mid-check, or their request was dropped after the check and before its outcome
    /// was written) count as failures once they time out: a guess whose outcome was never
    /// written must not be a free one. (A request dropped while its password waits hands its
    /// slot back: nobody learns that check's answer.)
    fn live_failures(&self, now: Timestamp) -> u32 {
        if self.updated_at.plus(FORGET_FAILURES_AFTER) < now {
            return 0;
        }
        let lost = if self.pending_since.plus(SLOT_TIMEOUT) < now { self.pending } else { 0 };
        self.failures.saturating_add(lost)
    }

    /// Slots still out: none once the latest is older than [`SLOT_TIMEOUT`].
    fn live_pending(&self, now: Timestamp) -> u32 {
        if self.pending_since.plus(SLOT_TIMEOUT) < now { 0 } else { self.pending }
    }

    /// Whether the client network it counts signed in successfully not too long ago.
    pub fn is_known(&self, now: Timestamp) -> bool {
        self.known_at.is_some_and(|at| at.plus(REMEMBER_DEVICE_FOR) > now)
    }
}

fn micros(n: i64) -> Duration {
    Duration::from_micros(u64::try_from(n).unwrap_or(0))
}

/// The lockout rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive failures that lock; 0 turns lockout off.
    pub threshold: u32,
}

/// What an attempt may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Locked: no password is checked.
    Refused { retry_after: Duration },
    /// Every slot is taken by attempts being checked right now: try again shortly.
    Busy,
    /// The password may be checked: these are the counters with the slot taken (`None`: the
    /// account's counter is not charged, the client being a known device).
    Allowed { account: Option<Tally>, client: Tally },
}

impl Policy {
    pub fn enabled(&self) -> bool {
        self.threshold > 0
    }

    /// How long `failures` consecutive failures lock: nothing below the threshold, then one
    /// minute doubling per further failure, at most an hour.
    pub fn lock_for(&self, failures: u32) -> Option<Duration> {
        if !self.enabled() || failures < self.threshold {
            return None;
        }
        let doublings = (failures - self.threshold).min(16);
        Some((FIRST_LOCK * 2u32.pow(doublings)).min(LONGEST_LOCK))
    }

    /// Decides an attempt from the account's and this client's counters at `now`.
    pub fn attempt(&self, now: Timestamp, account: Tally, client: Tally) -> Attempt {
        let known = client.is_known(now);
        let counted: &[Tally] = if known { &[client][..] } else { &[account, client][..] };
        if let Some(retry_after) = counted.iter().filter_map(|t| t.remaining_lock(now)).max() {
            return Attempt::Refused { retry_after };
        }
        // Below the threshold, as many slots as failures are left to lock; past it (a lock
        // that ran out), one at a time, each failure locking again.
        let full = |t: &Tally| t.live_pending(now) >= self.threshold.saturating_sub(t.live_failures(now)).max(1);
        if counted.iter().any(full) {
            return Attempt::Busy;
        }
        // Kept at least a day: the sweeper must not take a row with a slot out.
        let take = |t: Tally| Tally {
            failures: t.live_failures(now),
            pending: t.live_pending(now) + 1,
            pending_since: now,
            updated_at: now,
            forget_at: t.forget_at.max(now.plus(FORGET_FAILURES_AFTER)),
            ..t
        };
        Attempt::Allowed { account: (!known).then(|| take(account)), client: take(client) }
    }

    /// After a wrong password: the counter's slot becomes a failure, which may lock it (for
    /// the duration answered).
    pub fn failed(&self, now: Timestamp, tally: Tally) -> (Tally, Option<Duration>) {
        let failures = tally.live_failures(now).saturating_add(1);
        let lock = self.lock_for(failures);
        let locked_until = lock.map_or(tally.locked_until, |d| now.plus(d));
        let forget_at = tally.forget_at.max(locked_until.max(now).plus(FORGET_FAILURES_AFTER));
        let pending = tally.pending.saturating_sub(1);
        (Tally { failures, pending, locked_until, updated_at: now, forget_at, ..tally }, lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { threshold: 5 };

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + seconds * 1_000_000)
    }

    fn tally(failures: u32, now: Timestamp) -> Tally {
        Tally { failures, ..Tally::fresh(now) }
    }

    #[test]
    fn locks_double_from_a_minute_to_an_hour() {
        assert_eq!(POLICY.lock_for(4), None);
        assert_eq!(POLICY.lock_for(5), Some(Duration::from_secs(60)));
        assert_eq!(POLICY.lock_for(6), Some(Duration::from_secs(120)));
        assert_eq!(POLICY.lock_for(10), Some(Duration::from_secs(1920)));
        assert_eq!(POLICY.lock_for(11), Some(LONGEST_LOCK));
        assert_eq!(POLICY.lock_for(u32::MAX), Some(LONGEST_LOCK));
        assert_eq!(Policy { threshold: 0 }.lock_for(100), None, "0 turns lockout off");
    }

    #[test]
    fn the_fifth_failure_locks_for_a_minute_and_the_sixth_for_two() {
        let now = at(0);
        let Attempt::Allowed { account, client } = POLICY.attempt(now, tally(4, now), tally(0, now)) else {
            panic!("the fifth attempt is checked");
        };
        let account = account.unwrap();
        assert_eq!((account.failures, account.pending, client.pending), (4, 1, 1));
        let (account, lock) = POLICY.failed(now, account);
        assert_eq!((account.failures, account.pending, lock), (5, 0, Some(Duration::from_secs(60))));
        assert_eq!(
            POLICY.attempt(at(30), account, client),
            Attempt::Refused { retry_after: Duration::from_secs(30) },
            "the sixth waits out the minute"
        );
        let Attempt::Allowed { account: Some(account), .. } = POLICY.attempt(at(61), account, client) else {
            panic!("unlocked")
        };
        assert_eq!(POLICY.failed(at(61), account).1, Some(Duration::from_secs(120)), "twice as long");
    }

    #[test]
    fn slots_being_checked_count_until_they_are_settled_or_lost() {
        let now = at(0);
        let busy = Tally { pending: 2, pending_since: now, ..tally(3, now) };
        assert_eq!(POLICY.attempt(now, busy, tally(0, now)), Attempt::Busy, "3 failures + 2 being checked");
        let Attempt::Allowed { account: Some(lost), .. } = POLICY.attempt(at(61), busy, tally(0, at(61))) else {
            panic!("past the threshold, one at a time")
        };
        assert_eq!((lost.failures, lost.pending), (5, 1), "lost slots are failures: 3 + 2");
        assert_eq!(POLICY.failed(at(61), lost).1, Some(Duration::from_secs(120)), "and the next failure locks");
        let one_lost = Tally { pending: 1, pending_since: now, ..tally(3, now) };
        let Attempt::Allowed { account: Some(account), .. } = POLICY.attempt(at(61), one_lost, tally(0, at(61))) else {
            panic!("one slot left")
        };
        assert_eq!((account.failures, account.pending), (4, 1));
        let lock_ran_out = Tally { pending: 1, pending_since: now, ..tally(7, now) };
        assert_eq!(POLICY.attempt(now, lock_ran_out, tally(0, now)), Attempt::Busy, "one at a time past the threshold");
    }

    #[test]
    fn a_known_device_is_judged_by_its_own_counter_only() {
        let now = at(0);
        let locked_account = Tally { locked_until: at(600), ..tally(9, now) };
        let home = Tally { known_at: Some(at(-3600)), ..tally(0, now) };
        let Attempt::Allowed { account, client } = POLICY.attempt(now, locked_account, home) else {
            panic!("the owner's device is not locked out");
        };
        assert_eq!(account, None, "its attempts do not charge the account");
        assert_eq!(client.pending, 1);
        let elsewhere = tally(0, now);
        assert!(matches!(POLICY.attempt(now, locked_account, elsewhere), Attempt::Refused { .. }));
        let forgotten = Tally { known_at: Some(at(-31 * 24 * 3600)), ..tally(0, now) };
        assert!(matches!(POLICY.attempt(now, locked_account, forgotten), Attempt::Refused { .. }), "a month on");
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_day() {
        let then = at(0);
        let later = at(25 * 3600);
        let Attempt::Allowed { account, .. } = POLICY.attempt(later, tally(4, then), tally(4, then)) else {
            panic!("not locked");
        };
        assert_eq!(account.map(|a| a.failures), Some(0));
    }
}
