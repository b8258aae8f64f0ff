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
    /// yet, in the order their transactions began. Fewer than `limit` for a table means it
    /// has caught up with what had committed when the pass began.
    async fn index_payloads(&self, limit: u32) -> Result<IndexedPayloads, PortError>;
}
