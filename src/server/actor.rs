//! Who makes a change: the user id the change feed names in `userId`.
//!
//! The acting user is known at the HTTP edge (the token's `user_id`, or the
//! `user_id` query of a library-secret or admin token without one, SMH's
//! "act as"), and the feed's entries are written by the store deep below
//! it (`changes.rs`). The user travels with the request as a task-local,
//! and into the blocking pool with [`carry`]. Who the request acts as is
//! decided in `http::actor_of` (this module is a leaf).

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

/// A user id, shared cheaply between the request and its transactions.
pub type Actor = Option<Arc<str>>;

tokio::task_local! {
    static ACTOR: Actor;
}

thread_local! {
    /// The actor of a closure running on the blocking pool.
    static BLOCKING: RefCell<Actor> = const { RefCell::new(None) };
}

/// The user acting now: set for this thread ([`with`], [`carry`]), else
/// the current request's (None: anonymous or unknown).
pub fn current() -> Actor {
    BLOCKING
        .with(|b| b.borrow().clone())
        .or_else(|| ACTOR.try_with(Clone::clone).ok().flatten())
}

/// Runs `fut` (a request, or work spawned for one) as `actor`.
pub fn scope<F: Future>(actor: Actor, fut: F) -> impl Future<Output = F::Output> {
    ACTOR.scope(actor, fut)
}

/// `f` for the blocking pool, run as the current actor.
pub fn carry<T>(f: impl FnOnce() -> T) -> impl FnOnce() -> T {
    let actor = current();
    move || with(actor, f)
}

/// Runs `f` (synchronous) as `actor` when there is one, e.g. the confirm
/// of an upload as the user who began it.
pub fn with<T>(actor: Actor, f: impl FnOnce() -> T) -> T {
    if actor.is_none() {
        return f();
    }
    let prev = BLOCKING.with(|b| b.replace(actor));
    let out = f();
    BLOCKING.with(|b| *b.borrow_mut() = prev);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_actor_follows_the_request_into_the_blocking_pool() {
        assert_eq!(current(), None);
        let got = scope(Some(Arc::from("alice")), async {
            let f = carry(current);
            tokio::task::spawn_blocking(f).await.unwrap()
        })
        .await;
        assert_eq!(got.as_deref(), Some("alice"));
        assert_eq!(current(), None);
    }
}
