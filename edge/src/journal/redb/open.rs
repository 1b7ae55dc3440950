//! Opening the database, the format check, and the error handling that drops the handle
//! after a storage error.

use super::tables::*;
use super::*;

impl RedbJournal {
    pub(super) fn with_opener(
        name: String,
        cache_bytes: usize,
        mode: ConcurrencyMode,
        read_only: bool,
        opener: Opener,
    ) -> Result<Self, JournalError> {
        let journal = Self {
            name,
            cache_bytes,
            mode,
            read_only,
            retention: DEFAULT_RETENTION,
            opener,
            db: Mutex::new(None),
            outbox_quota: std::sync::atomic::AtomicU64::new(u64::MAX),
            log_ceiling: std::sync::atomic::AtomicU64::new(u64::MAX),
        };
        let db = journal.open_db()?;
        *journal.db.lock() = Some(db);
        Ok(journal)
    }

    /// Opens the database with the integrity check, and checks or writes its format.
    pub(super) fn open_db(&self) -> Result<Handle, JournalError> {
        let mut builder = Builder::new();
        builder
            .set_cache_size(self.cache_bytes)
            .set_concurrency_mode(self.mode)
            .set_check_integrity_on_open(true);
        let handle = (self.opener)(&builder).map_err(|e| self.open_error(e))?;
        match &handle {
            Handle::Writer(db) if !self.read_only => self.init(db)?,
            _ => self.check_format(&handle)?,
        }
        Ok(handle)
    }

    /// Checks the format without writing.
    pub(super) fn check_format(&self, handle: &Handle) -> Result<(), JournalError> {
        let rx = handle.begin_read().map_err(|e| self.err(e))?;
        let meta = match rx.open_table(META) {
            Ok(meta) => meta,
            Err(::redb::TableError::TableDoesNotExist(_)) => {
                return Err(self.corrupt("it has no meta table: not a Skerry journal".into()));
            }
            Err(e) => return Err(self.err(e)),
        };
        match meta
            .get(KEY_FORMAT)
            .map_err(|e| self.err(e))?
            .map(|g| g.value())
        {
            Some(FORMAT) => Ok(()),
            Some(found) => Err(JournalError::UnknownFormat {
                journal: self.name.clone(),
                found,
                supported: FORMAT,
            }),
            None => Err(self.corrupt("its format is not recorded".into())),
        }
    }

    pub(super) fn init(&self, db: &Database) -> Result<(), JournalError> {
        let tx = self.begin_write(db)?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let format = meta
                .get(KEY_FORMAT)
                .map_err(|e| self.err(e))?
                .map(|g| g.value());
            match format {
                Some(FORMAT) => {}
                Some(found) => {
                    return Err(JournalError::UnknownFormat {
                        journal: self.name.clone(),
                        found,
                        supported: FORMAT,
                    });
                }
                None => {
                    meta.insert(KEY_FORMAT, FORMAT).map_err(|e| self.err(e))?;
                    let epoch = rand::random::<u64>().max(1);
                    meta.insert(KEY_EPOCH, epoch).map_err(|e| self.err(e))?;
                }
            }
            tx.open_table(STATE).map_err(|e| self.err(e))?;
            tx.open_table(EVENTS).map_err(|e| self.err(e))?;
            tx.open_table(DIGESTS).map_err(|e| self.err(e))?;
            tx.open_table(INITS_SUCCEEDED).map_err(|e| self.err(e))?;
            tx.open_table(INITS_FAILED).map_err(|e| self.err(e))?;
            tx.open_table(NODEPORTS).map_err(|e| self.err(e))?;
            tx.open_table(RESTARTS).map_err(|e| self.err(e))?;
            tx.open_table(OUTBOX_CONTROL).map_err(|e| self.err(e))?;
            tx.open_table(OUTBOX_LOGS).map_err(|e| self.err(e))?;
            tx.open_table(OUTBOX_REPLICAS).map_err(|e| self.err(e))?;
            tx.open_table(LOG_CURSORS).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub(super) fn begin_write(&self, db: &Database) -> Result<WriteTransaction, JournalError> {
        let mut tx = db.begin_write().map_err(|e| self.err(e))?;
        tx.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        Ok(tx)
    }

    /// Runs `f` on the open database, opening it first if a storage error closed it, and
    /// closing it after a storage error so that the next operation opens it again.
    pub(super) fn with_db<T>(
        &self,
        f: impl FnOnce(&Handle) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut slot = self.db.lock();
        let db = match slot.take() {
            Some(db) => db,
            None => {
                tracing::info!(journal = %self.name, "opening the journal again");
                self.open_db()?
            }
        };
        let result = f(&db);
        match &result {
            Err(
                e @ (JournalError::Storage { .. }
                | JournalError::DiskFull { .. }
                | JournalError::Corrupt { .. }),
            ) => {
                tracing::warn!(
                    journal = %self.name,
                    error = %e,
                    "journal operation failed; the journal is opened again before the next one"
                );
                drop(db);
            }
            _ => *slot = Some(db),
        }
        result
    }

    /// One write transaction, committed with `Durability::Immediate` when `f` succeeds.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        if self.read_only {
            return Err(JournalError::ReadOnly {
                journal: self.name.clone(),
            });
        }
        self.with_db(|handle| {
            let Handle::Writer(db) = handle else {
                return Err(JournalError::ReadOnly {
                    journal: self.name.clone(),
                });
            };
            let tx = self.begin_write(db)?;
            match f(&tx) {
                Ok(value) => {
                    tx.commit().map_err(|e| self.err(e))?;
                    Ok(value)
                }
                Err(e) => {
                    // Nothing of the batch is stored; an abort that fails changes nothing
                    // more.
                    let _ = tx.abort();
                    Err(e)
                }
            }
        })
    }

    pub(super) fn open_error(&self, e: DatabaseError) -> JournalError {
        match e {
            DatabaseError::Storage(::redb::StorageError::Io(io))
                if io.kind() == io::ErrorKind::NotFound =>
            {
                JournalError::Missing {
                    journal: self.name.clone(),
                }
            }
            // A file cut short ends before the pages its header points to; a file whose
            // header is not redb's ("magic number mismatch") is invalid data.
            DatabaseError::Storage(::redb::StorageError::Io(io))
                if matches!(
                    io.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                ) =>
            {
                self.corrupt(io.to_string())
            }
            DatabaseError::RepairAborted => self.corrupt("the repair was aborted".into()),
            other => self.err(other),
        }
    }

    pub(super) fn err(&self, e: impl Into<::redb::Error>) -> JournalError {
        let journal = self.name.clone();
        match e.into() {
            ::redb::Error::Corrupted(reason) => JournalError::Corrupt { journal, reason },
            ::redb::Error::DatabaseAlreadyOpen => JournalError::Locked { journal },
            ::redb::Error::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                ) =>
            {
                JournalError::DiskFull { journal }
            }
            other => JournalError::Storage {
                journal,
                reason: other.to_string(),
            },
        }
    }

    pub(super) fn corrupt(&self, reason: String) -> JournalError {
        JournalError::Corrupt {
            journal: self.name.clone(),
            reason,
        }
    }
}
