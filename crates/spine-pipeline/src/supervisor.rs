//! Runs named background tasks until shutdown; a task that fails is logged, not silently lost.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// Handed to every task: resolves when the process is shutting down.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
    pub fn is_shutting_down(&self) -> bool {
        *self.0.borrow()
    }
}

pub struct Supervisor {
    tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        Self { tx, tasks: JoinSet::new() }
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown(self.tx.subscribe())
    }

    /// Starts `task` with a shutdown handle. Errors are logged with the task's name.
    pub fn spawn<F, Fut, E>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let fut = task(self.shutdown_handle());
        self.tasks.spawn(async move {
            match fut.await {
                Ok(()) => tracing::debug!(task = name, "background task finished"),
                Err(e) => tracing::error!(task = name, error = %e, "background task failed"),
            }
        });
    }

    /// Signals shutdown and waits for every task to return.
    pub async fn shutdown(mut self) {
        let _ = self.tx.send(true);
        while let Some(res) = self.tasks.join_next().await {
            if let Err(e) = res {
                tracing::error!(error = %e, "background task panicked");
            }
        }
    }
}
