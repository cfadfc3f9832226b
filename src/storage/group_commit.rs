//! Group commit: requests that arrive while a batch is being written wait together and are
//! written as the next batch, so that a database with one writer (SQLite) does one
//! transaction's round trips for many requests. Used by refresh rotations
//! ([`super::rotations`]) and transfers (`service::transfer_batch`).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// The handle requests queue their items on; one task writes them in batches.
#[derive(Debug)]
pub struct GroupCommit<T, O> {
    queue: mpsc::Sender<(T, oneshot::Sender<O>)>,
}

impl<T, O> Clone for GroupCommit<T, O> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<T: Send + 'static, O: Send + 'static> GroupCommit<T, O> {
    /// Starts the writing task. At most `queue` items wait (more wait to be queued) and at most
    /// `max_batch` are written at once, by `write`, which answers one outcome per item, in
    /// order.
    pub fn start<F, Fut>(queue: usize, max_batch: usize, mut write: F) -> Self
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send,
    {
        let (sender, mut incoming) = mpsc::channel::<(T, oneshot::Sender<O>)>(queue);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_batch);
            while incoming.recv_many(&mut batch, max_batch).await > 0 {
                // An item whose request was dropped before its batch started (timed out, or
                // its client went away) is not written: nobody would learn that it was.
                let (items, answers): (Vec<T>, Vec<oneshot::Sender<O>>) =
                    batch.drain(..).filter(|(_, answer)| !answer.is_closed()).unzip();
                if items.is_empty() {
                    continue;
                }
                for (answer, outcome) in answers.into_iter().zip(write(items).await) {
                    answer.send(outcome).ok();
                }
            }
        });
        Self { queue: sender }
    }

    /// Queues `item` and waits for its batch to be written; `None` if the writing task is gone.
    pub async fn submit(&self, item: T) -> Option<O> {
        let (answer, outcome) = oneshot::channel();
        self.queue.send((item, answer)).await.ok()?;
        outcome.await.ok()
    }
}
