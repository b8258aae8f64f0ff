//! Text search in payloads: keeping the search index of payload texts up to date, as
//! background work of the maintenance leader. A list filtered by text is exact whether or not
//! a row is indexed yet; indexing only makes it fast.

use crate::PortError;

/// Rows whose payload text one pass indexed, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexedPayloads {
    pub events: u64,
    pub tasks: u64,
}

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait PayloadIndex: Send + Sync {
    /// Indexes the payload texts of up to `limit` rows of each table that are not indexed
    /// yet, oldest first, leaving the newest `keep` of each table for later (a busy daemon
    /// lets a backlog build up to that, and pays for it when it is quiet). Returns how many
    /// it indexed; none of either table means nothing is left beyond `keep` (rows another
    /// indexer holds are skipped).
    async fn index_payloads(&self, limit: u32, keep: u32) -> Result<IndexedPayloads, PortError>;

    /// Reclaims what the passes left behind (for PostgreSQL, vacuums the lists of rows to
    /// index, which every search reads), without waiting for the database's own upkeep.
    async fn compact(&self) -> Result<(), PortError>;
}
