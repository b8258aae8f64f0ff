//! What the URL of a page says: its filters (parsed by the ports' filter model, see
//! [`campus_ports::filter`]) and the message of the action that redirected to it.

use super::views::{FilterValues, Flash};
use campus_ports::FilterFields;
use serde::Deserialize;

impl FilterFields for FilterValues {
    fn field(&self, name: &str) -> Option<&str> {
        let value = match name {
            "archived" => &self.archived,
            "institution_id" => &self.institution_id,
            "event_type" => &self.event_type,
            "task_type" => &self.task_type,
            "status" => &self.status,
            "event_id" => &self.event_id,
            "from" => &self.from,
            "to" => &self.to,
            "correlation_id" => &self.correlation_id,
            "has_errors" => &self.has_errors,
            "q" => &self.q,
            "before" => &self.before,
            "limit" => &self.limit,
            _ => return None,
        };
        value.as_deref()
    }
}

/// What the last action said, carried in the URL it redirected to.
#[derive(Deserialize, Default)]
pub(super) struct FlashParams {
    copied: Option<String>,
    copies: Option<u32>,
    /// Set after a cancel.
    cancelled: Option<String>,
    /// The type just paused or resumed.
    paused: Option<String>,
    resumed: Option<String>,
}

impl FlashParams {
    pub(super) fn flash(&self) -> Flash {
        if let Some(copy) = self
            .copied
            .as_deref()
            .and_then(|c| uuid::Uuid::parse_str(c).ok())
        {
            return Flash::Done(format!(
                "Reprocessing: copy {copy} created; it appears under Copies."
            ));
        }
        if self.cancelled.is_some() {
            return Flash::Done("Cancelled: this task will not run.".into());
        }
        if let Some(t) = &self.paused {
            return Flash::Done(format!(
                "Paused {t}: no daemon claims its tasks until it is resumed."
            ));
        }
        if let Some(t) = &self.resumed {
            return Flash::Done(format!("Resumed {t}: its waiting tasks run again."));
        }
        match self.copies {
            Some(0) => Flash::Done(
                "No dead task matched (or every one already has a copy waiting).".into(),
            ),
            Some(n) => Flash::Done(format!(
                "{n} copies created; they are listed below as they run."
            )),
            None => Flash::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::engine::TaskStatus;
    use campus_core::ids::TaskId;
    use campus_ports::TaskQuery;

    #[test]
    fn the_form_fields_reach_the_filters() {
        let f = FilterValues {
            status: Some("dead".into()),
            q: Some(" zebra ".into()),
            before: Some(uuid::Uuid::from_u128(9).to_string()),
            ..Default::default()
        };
        let q = TaskQuery::parse(&f).unwrap();
        assert_eq!(q.status, Some(TaskStatus::Dead));
        assert_eq!(q.filter.text.as_deref(), Some("zebra"));
        assert_eq!(q.before, Some(TaskId(9)));
        let bad = FilterValues {
            status: Some("exploded".into()),
            ..Default::default()
        };
        assert!(TaskQuery::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("status"));
    }
}
