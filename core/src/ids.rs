//! Identifier newtypes. They wrap a 128-bit value; adapters convert them to and from UUIDs.

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u128);

        impl $name {
            /// The raw 128-bit value (the UUID's bits).
            pub fn as_u128(self) -> u128 {
                self.0
            }
        }

        impl From<u128> for $name {
            fn from(value: u128) -> Self {
                Self(value)
            }
        }
    )*};
}

id_type!(
    /// An institution (a college): the tenant everything else belongs to.
    InstitutionId,
    /// Any user: Adm, Academic, Teacher or Student.
    UserId,
    /// A single-use reset password token.
    TokenId,
    /// A discipline (subject) of an institution.
    DisciplineId,
    /// A class: a discipline taught by a teacher in a period.
    ClassId,
    /// A notification shown to a user.
    NotificationId,
    /// A domain event row.
    EventId,
    /// A task row.
    TaskId,
    /// An institution's webhook subscription.
    WebhookId,
);
