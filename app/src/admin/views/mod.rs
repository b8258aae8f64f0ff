//! HTML of the admin screen, written as maud templates (checked at compile time, every
//! value escaped unless it is already `Markup`): the layout and shared parts, then one module
//! per page. Everything a page shows that can change lives in `#live`, which the page's
//! script (`assets/admin.js`) swaps in place when the engine reports changes.

mod audit;
mod event_detail;
mod event_list;
mod filters;
mod layout;
mod login;
mod overview;
mod parts;
mod tables;
mod task_detail;
mod task_list;
mod task_types;
mod webhooks;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

pub use audit::{audit_link, audit_trail};
pub use event_detail::event_detail;
pub use event_list::event_list;
pub use filters::FilterValues;
pub use layout::{layout, message, Flash, Section};
pub use login::login;
pub use overview::overview;
pub use parts::{link, uuid, Names};
pub use task_detail::task_detail;
pub use task_list::task_list;
pub use task_types::task_types;
pub use webhooks::{
    delivery_detail, webhook_detail, webhook_list, DeliveryView, Health, HEALTH_DELIVERIES,
    HEALTH_WINDOW_MS,
};
