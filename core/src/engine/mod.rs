//! Pure rules of the durable event/task engine: the event envelope and task plan, the
//! lifecycle state machines, the retry policy and retention (what leaves the live tables,
//! and when). No I/O here: adapters persist what these
//! rules decide, the daemon drives them.

pub mod envelope;
pub mod lifecycle;
pub mod retention;
pub mod retry;
pub mod scheduling;

pub use envelope::{
    idempotency_key, ordering_key, valid_correlation_id, EventEnvelope, PlannedTask,
    MAX_CORRELATION_ID_LEN,
};
pub use lifecycle::{EventStatus, InvalidTransition, TaskState, TaskStatus, TaskTransition};
pub use retry::{RetryDecision, RetryPolicy};
pub use scheduling::{fair_shares, Contender, Priority, DEFAULT_PRIORITY_LAG};
