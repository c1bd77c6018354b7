//! A fault-injecting wrapper around [`SqliteStore`], to show that a crash at any write step
//! loses no acknowledged message and leaves no half-applied batch.
//!
//! SQLite calls a progress handler every few virtual-machine steps while it executes a
//! statement. [`FaultInjector`] installs one that counts the steps taken inside write operations
//! ([`MessageStore::insert`], [`MessageStore::delete_before`], [`MessageStore::truncate`]) and, at
//! the chosen step, injects a fault:
//!
//! - [`Fault::Crash`] copies the database file and its WAL to another directory at that very
//!   instant (what a `kill -9` or a power cut after the last sync would leave on disk), then
//!   aborts the operation, after which the wrapper refuses every call. Opening the copy replays
//!   SQLite's recovery exactly as after a real crash.
//! - [`Fault::Interrupt`] only aborts the operation, which must then be applied whole or not at
//!   all (see the [`MessageStore`] contract); the store stays usable.
//!
//! A dry run without a fault ([`FaultInjector::steps`]) tells how many steps a workload takes, so
//! a test can crash it at every one of them (`tests/store_crash.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::{ArchivedMessage, MessageStore, PageRequest, Position, SqliteStore, StoreError};
use crate::message::MessageHash;

/// What happens at the fault step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Copy the database files into this directory, abort the operation and refuse every
    /// further call.
    Crash(PathBuf),
    /// Abort the operation and carry on.
    Interrupt,
}

#[derive(Debug, Default)]
struct State {
    armed: bool,
    steps: u64,
    fault_at: Option<u64>,
    fired: bool,
    snapshot: Option<(PathBuf, PathBuf)>,
    snapshot_error: Option<String>,
}

/// Wraps a [`SqliteStore`] and injects one [`Fault`] at a chosen write step (see the module
/// docs).
#[derive(Debug)]
pub struct FaultInjector {
    inner: Option<SqliteStore>,
    state: Arc<Mutex<State>>,
    fault: Option<Fault>,
}

/// Copies `db` and its `-wal` file (when present) into `dir`, keeping the file names; the
/// shared-memory index is left behind, as SQLite rebuilds it when it recovers.
pub fn copy_database(db: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = db
        .file_name()
        .ok_or_else(|| std::io::Error::other("database path has no file name"))?;
    let target = dir.join(name);
    std::fs::copy(db, &target)?;
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let mut target_wal = target.as_os_str().to_owned();
    target_wal.push("-wal");
    if wal.exists() {
        std::fs::copy(&wal, PathBuf::from(target_wal))?;
    } else if Path::new(&target_wal).exists() {
        std::fs::remove_file(PathBuf::from(target_wal))?;
    }
    Ok(target)
}

impl FaultInjector {
    /// Wraps `store`. With `fault_at = Some((n, fault))` the fault fires at the `n`-th counted
    /// step (1-based); with `None` the wrapper only counts. `granularity` is how many SQLite VM
    /// steps make one counted step (1 = every instruction).
    pub fn new(
        mut store: SqliteStore,
        fault_at: Option<(u64, Fault)>,
        granularity: u16,
    ) -> Result<Self, StoreError> {
        let db = store.path().map(Path::to_path_buf).ok_or_else(|| {
            StoreError::Database("fault injection needs an on-disk database".into())
        })?;
        let (at, fault) = match fault_at {
            Some((n, f)) => (Some(n.max(1)), Some(f)),
            None => (None, None),
        };
        let snapshot = match &fault {
            Some(Fault::Crash(dir)) => Some((db, dir.clone())),
            _ => None,
        };
        let state = Arc::new(Mutex::new(State {
            fault_at: at,
            snapshot,
            ..State::default()
        }));
        let hook_state = Arc::clone(&state);
        store.connection_mut().progress_handler(
            i32::from(granularity.max(1)),
            Some(move || {
                let mut s = hook_state.lock().unwrap_or_else(PoisonError::into_inner);
                if !s.armed || s.fired {
                    return false;
                }
                s.steps = s.steps.saturating_add(1);
                if s.fault_at != Some(s.steps) {
                    return false;
                }
                s.fired = true;
                if let Some((db, dir)) = s.snapshot.clone()
                    && let Err(e) = copy_database(&db, &dir)
                {
                    s.snapshot_error = Some(e.to_string());
                }
                true
            }),
        )?;
        Ok(FaultInjector {
            inner: Some(store),
            state,
            fault,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many counted steps the write operations have taken so far.
    pub fn steps(&self) -> u64 {
        self.lock().steps
    }

    /// Whether the fault has fired.
    pub fn fired(&self) -> bool {
        self.lock().fired
    }

    /// Whether the store has crashed (a [`Fault::Crash`] fired).
    pub fn crashed(&self) -> bool {
        self.inner.is_none()
    }

    /// Why the crash snapshot could not be written, if it could not.
    pub fn snapshot_error(&self) -> Option<String> {
        self.lock().snapshot_error.clone()
    }

    /// The wrapped store, unless it crashed.
    pub fn into_inner(self) -> Option<SqliteStore> {
        self.inner
    }

    fn write<T>(
        &mut self,
        op: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let store = self.inner.as_mut().ok_or(StoreError::Crashed)?;
        let fired_before = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.armed = true;
            s.fired
        };
        let result = op(store);
        let fired_now = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.armed = false;
            s.fired && !fired_before
        };
        match (fired_now, &self.fault) {
            (true, Some(Fault::Crash(_))) => {
                // The process "dies": what is on disk is the snapshot taken at the fault.
                self.inner = None;
                Err(StoreError::Crashed)
            }
            (true, _) if result.is_err() => Err(StoreError::Injected),
            _ => result,
        }
    }

    fn read<T>(
        &mut self,
        op: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        op(self.inner.as_mut().ok_or(StoreError::Crashed)?)
    }
}

impl MessageStore for FaultInjector {
    fn insert(&mut self, batch: &[ArchivedMessage]) -> Result<usize, StoreError> {
        self.write(|s| s.insert(batch))
    }
    fn position(&mut self, hash: &MessageHash) -> Result<Option<Position>, StoreError> {
        self.read(|s| s.position(hash))
    }
    fn page(&mut self, request: &PageRequest<'_>) -> Result<Vec<ArchivedMessage>, StoreError> {
        self.read(|s| s.page(request))
    }
    fn delete_before(&mut self, cutoff: i64) -> Result<u64, StoreError> {
        self.write(|s| s.delete_before(cutoff))
    }
    fn truncate(&mut self, max: u64) -> Result<u64, StoreError> {
        self.write(|s| s.truncate(max))
    }
    fn count(&mut self) -> Result<u64, StoreError> {
        self.read(|s| s.count())
    }
}
