//! Waking on changes committed by any process on any host: PostgreSQL's LISTEN / NOTIFY.
//!
//! Triggers on the store's tables notify `wandash_changes` (migration 9); a
//! `ChangeWatcher` holds a connection of its own that listens there, on a thread of its
//! own (the `postgres` client blocks on a runtime of its own, which must not run inside the
//! caller's). A dropped connection is made again, with growing pauses, and counts as a
//! change: whatever was committed meanwhile was not notified to it.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};

use super::postgres::{PostgresUrl, RECONNECT_BACKOFF, client_config, describe};
use crate::store::StoreError;

/// The notification channel the triggers of migration 9 notify.
const CHANNEL: &str = "wandash_changes";
/// How long the thread listens at a stretch before it looks whether it is still wanted.
const LISTEN_SLICE: Duration = Duration::from_millis(200);

/// Wakes whoever waits on it when anything in the store changed. Dropping it closes its
/// connection (within `LISTEN_SLICE`).
pub struct ChangeWatcher {
    changes: Receiver<()>,
    /// Never sent on: its drop is what tells the thread to stop.
    _stop: mpsc::Sender<()>,
}

impl ChangeWatcher {
    /// Connects and listens before returning, so that a change committed after this
    /// returns is never missed, and an unreachable server is reported here.
    pub(crate) fn start(url: &PostgresUrl) -> Result<ChangeWatcher, StoreError> {
        let config = client_config(url)?;
        let (changed, changes) = mpsc::sync_channel(1);
        let (stop, stopped) = mpsc::channel();
        let (ready, listening) = mpsc::sync_channel(1);
        let shown = url.to_string();
        let server = |message: String| StoreError::Server {
            url: shown.clone(),
            message,
        };
        std::thread::Builder::new()
            .name("wandash-listen".into())
            .spawn(move || match subscribe(&config) {
                Ok(client) => {
                    let _ = ready.send(Ok(()));
                    listen(client, &config, &changed, &stopped);
                }
                Err(why) => {
                    let _ = ready.send(Err(why));
                }
            })
            .map_err(|e| server(format!("cannot start the listening thread: {e}")))?;
        match listening.recv() {
            Ok(Ok(())) => Ok(ChangeWatcher {
                changes,
                _stop: stop,
            }),
            Ok(Err(why)) => Err(server(format!("cannot listen for changes: {why}"))),
            Err(_) => Err(server("the listening thread stopped".into())),
        }
    }

    /// Blocks until something changed since the last wake (`true`) or `timeout` passed
    /// (`false`). Changes made while nobody waited wake the next call at once.
    pub fn wait(&self, timeout: Duration) -> bool {
        match self.changes.recv_timeout(timeout) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout) => false,
            // The thread only ends when this watcher drops; should it have died anyway,
            // the wait still lasts its time, so a caller's loop does not spin.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

/// A connection listening on `CHANNEL`.
fn subscribe(config: &Config) -> Result<Client, String> {
    let mut client = config.connect(NoTls).map_err(|e| describe(&e))?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(|e| describe(&e))?;
    Ok(client)
}

/// Passes each notification on (one pending wake stands for any number), and reconnects
/// when the connection ends, until the watcher drops.
fn listen(mut client: Client, config: &Config, changed: &SyncSender<()>, stopped: &Receiver<()>) {
    let wake = || match changed.try_send(()) {
        // Full: a wake is already waiting, which covers this change too.
        Ok(()) | Err(TrySendError::Full(())) => true,
        Err(TrySendError::Disconnected(())) => false,
    };
    loop {
        let ended = {
            let mut notifications = client.notifications();
            let mut heard = notifications.timeout_iter(LISTEN_SLICE);
            loop {
                match heard.next() {
                    Ok(Some(_)) => {
                        if !wake() {
                            return;
                        }
                    }
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            }
        };
        if is_stopped(stopped, Duration::ZERO) {
            return;
        }
        if ended || client.is_closed() {
            match reconnect(config, stopped) {
                Some(fresh) => client = fresh,
                None => return,
            }
            if !wake() {
                return;
            }
        }
    }
}

/// A new listening connection, after growing pauses; `None` when the watcher dropped
/// meanwhile.
fn reconnect(config: &Config, stopped: &Receiver<()>) -> Option<Client> {
    let mut pause = RECONNECT_BACKOFF.0;
    loop {
        if is_stopped(stopped, pause) {
            return None;
        }
        match subscribe(config) {
            Ok(client) => return Some(client),
            Err(why) => {
                pause = (pause * 2).min(RECONNECT_BACKOFF.1);
                tracing::warn!("change notifications lost ({why}); trying again in {pause:?}");
            }
        }
    }
}

/// Waits up to `wait` for the watcher to drop; `true` once it has.
fn is_stopped(stopped: &Receiver<()>, wait: Duration) -> bool {
    matches!(
        stopped.recv_timeout(wait),
        Err(RecvTimeoutError::Disconnected)
    )
}
