//! Who may do what to whom: roles are ranked `user` < `admin` < `owner`.
//!
//! Administration is for admins and owners. An actor may read any account; it may change or
//! delete only accounts of a lower rank (its own profile fields excepted), may grant only roles
//! below its own, and may change neither its own role nor its own status, nor delete itself
//! through administration (`DELETE /v1/me` exists for that).

use uuid::Uuid;

use super::user::Role;

/// Something an administrator wants to do to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    UpdateProfile,
    ChangeRole(Role),
    ChangeStatus,
    Delete,
    ListSessions,
    RevokeSessions,
    /// Clear a sign-in lock.
    ClearLockout,
    /// Add money to or take it from the account's wallets: never one's own.
    AdjustBalance,
    /// Remove the account's second factors (a lost authenticator app): never one's own.
    ResetSecondFactors,
}

/// Whether `actor` may use administration at all.
pub fn is_administrator(actor: Role) -> bool {
    actor >= Role::Admin
}

/// Whether an actor of rank `actor` (account `actor_id`) may do `action` to the account
/// `target_id` of rank `target`.
pub fn permits(actor: Role, actor_id: Uuid, action: Action, target: Role, target_id: Uuid) -> bool {
    if !is_administrator(actor) {
        return false;
    }
    let itself = actor_id == target_id;
    let outranks = actor > target;
    match action {
        Action::Read => true,
        Action::UpdateProfile | Action::ListSessions | Action::RevokeSessions => itself || outranks,
        // Never one's own: a stolen administrator's token must not lift the lock on guessing
        // that administrator's password.
        Action::ClearLockout => !itself && outranks,
        Action::ChangeRole(role) => !itself && outranks && role < actor,
        // Never one's own either: a stolen administrator's token and password must not strip
        // that administrator's second factor.
        Action::ChangeStatus | Action::Delete | Action::AdjustBalance | Action::ResetSecondFactors => {
            !itself && outranks
        }
    }
}

/// Whether an actor may create an account with `role`.
pub fn may_create(actor: Role, role: Role) -> bool {
    is_administrator(actor) && role < actor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_higher_ranks_change_lower_ones() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(permits(Role::Admin, me, Action::Delete, Role::User, other));
        assert!(!permits(Role::Admin, me, Action::Delete, Role::Admin, other));
        assert!(!permits(Role::Admin, me, Action::Delete, Role::Owner, other));
        assert!(permits(Role::Owner, me, Action::ChangeRole(Role::Admin), Role::User, other));
        assert!(!permits(Role::Owner, me, Action::ChangeRole(Role::Owner), Role::Admin, other));
        assert!(!permits(Role::Admin, me, Action::ChangeRole(Role::Admin), Role::User, other));
        assert!(permits(Role::Admin, me, Action::Read, Role::Owner, other));
        assert!(!permits(Role::User, me, Action::Read, Role::User, other));
    }

    #[test]
    fn nobody_changes_their_own_role_or_status_or_deletes_themselves_here() {
        let me = Uuid::now_v7();
        for actor in [Role::Admin, Role::Owner] {
            assert!(!permits(actor, me, Action::ChangeRole(Role::User), actor, me));
            assert!(!permits(actor, me, Action::ChangeStatus, actor, me));
            assert!(!permits(actor, me, Action::Delete, actor, me));
            assert!(permits(actor, me, Action::UpdateProfile, actor, me));
        }
    }

    #[test]
    fn roles_are_granted_only_below_ones_own() {
        assert!(may_create(Role::Owner, Role::Admin));
        assert!(!may_create(Role::Owner, Role::Owner));
        assert!(may_create(Role::Admin, Role::User));
        assert!(!may_create(Role::Admin, Role::Admin));
        assert!(!may_create(Role::User, Role::User));
    }
}
