//! Value objects with validating constructors: once built, they are valid.

use crate::error::DomainError;
use std::fmt;

/// A trimmed, non-empty name of at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let t = raw.trim();
        if t.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        if t.chars().count() > 200 {
            return Err(DomainError::invalid(
                field,
                "must be at most 200 characters",
            ));
        }
        if t.chars().any(|c| c.is_control() || is_invisible_format(c)) {
            return Err(DomainError::invalid(
                field,
                "must not contain control, bidirectional or invisible characters",
            ));
        }
        Ok(Name(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that change how the text around them is shown without showing themselves:
/// bidirectional overrides and isolates (which can make "moc.evil" read "evil.com" in an
/// e-mail) and zero-width characters (which make look-alike names).
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                       // soft hyphen
        | '\u{061C}'                     // Arabic letter mark
        | '\u{180E}'                     // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'       // zero-width space, joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'       // bidi isolates
        | '\u{FEFF}'                     // zero-width no-break space
    )
}

/// A lower-cased e-mail address with one `@`, a non-empty local part and a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let t = raw.trim().to_lowercase();
        let invalid =
            || DomainError::invalid("email", "must be an e-mail address like name@example.org");
        // At most 254 characters as sent (the API's schema states this rule as `maxLength`
        // and a pattern). No whitespace, controls or invisible characters, and none of the
        // characters that separate or quote addresses in a mail header (`Name <a@b>, c@d`).
        if raw.chars().count() > 254
            || t.chars().any(|c| {
                c.is_whitespace()
                    || c.is_control()
                    || is_invisible_format(c)
                    || matches!(
                        c,
                        '<' | '>' | ',' | ';' | '"' | '(' | ')' | '[' | ']' | '\\'
                    )
            })
        {
            return Err(invalid());
        }
        let (local, domain) = t.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid());
        }
        Ok(Email(t))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plain-text password as typed by a person: 8 to 128 characters. It is hashed by a port
/// before anything stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let n = raw.chars().count();
        if n < 8 {
            return Err(DomainError::invalid(
                "password",
                "must have at least 8 characters",
            ));
        }
        if n > 128 {
            return Err(DomainError::invalid(
                "password",
                "must have at most 128 characters",
            ));
        }
        Ok(Password(raw.to_string()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What a user may do. `Adm` operates the whole system; the others belong to one institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Adm,
    Academic,
    Teacher,
    Student,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Adm, Role::Academic, Role::Teacher, Role::Student];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Adm => "adm",
            Role::Academic => "academic",
            Role::Teacher => "teacher",
            Role::Student => "student",
        }
    }
    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

/// One of the three exams of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exam {
    N1,
    N2,
    N3,
}

impl Exam {
    pub const ALL: [Exam; 3] = [Exam::N1, Exam::N2, Exam::N3];

    pub fn as_str(self) -> &'static str {
        match self {
            Exam::N1 => "N1",
            Exam::N2 => "N2",
            Exam::N3 => "N3",
        }
    }
    pub fn parse(raw: &str) -> Result<Exam, DomainError> {
        Exam::ALL
            .into_iter()
            .find(|e| e.as_str() == raw)
            .ok_or_else(|| DomainError::invalid("exam", "must be one of N1, N2, N3"))
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An exam grade note: a finite number from 0.0 to 10.0, kept with two decimals.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Note(f64);

impl Note {
    pub fn parse(raw: f64) -> Result<Note, DomainError> {
        if !raw.is_finite() || !(0.0..=10.0).contains(&raw) {
            return Err(DomainError::invalid(
                "note",
                "must be a number from 0.0 to 10.0",
            ));
        }
        Ok(Note((raw * 100.0).round() / 100.0))
    }
    pub fn value(self) -> f64 {
        self.0
    }
}

/// An academic period such as `2026.1` (year, dot, term 1 or 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period(String);

impl Period {
    pub fn parse(raw: &str) -> Result<Period, DomainError> {
        let t = raw.trim();
        let invalid =
            || DomainError::invalid("period", "must look like 2026.1 (year, dot, term 1 or 2)");
        let (year, term) = t.split_once('.').ok_or_else(invalid)?;
        let year_ok = year.len() == 4 && year.chars().all(|c| c.is_ascii_digit());
        if !year_ok || !(term == "1" || term == "2") {
            return Err(invalid());
        }
        Ok(Period(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_is_normalised_and_validated() {
        assert_eq!(
            Email::parse("  Ana@Example.ORG ").unwrap().as_str(),
            "ana@example.org"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.org",
            "ana@x",
            "a b@x.org",
            "a@x..org",
            "a@@x.org",
            "Eve <eve@x.org>",
            "a@x.org,b@y.org",
            "a@x.org;b@y.org",
            "\"a\"@x.org",
            "a\u{200B}@x.org",
            "a@x\u{202E}gro.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Email::parse("first.last+tag@sub.example.org").is_ok());
    }

    #[test]
    fn names_refuse_invisible_and_reordering_characters() {
        for bad in [
            "Ana\u{202E}gro.live",
            "Ana\u{2066}x\u{2069}",
            "A\u{200B}na",
            "Ana\u{FEFF}",
            "Ana\u{200F}",
            "Ana\u{00AD}",
        ] {
            assert!(
                Name::parse("name", bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        for good in [
            "Ana Souza",
            "José Ñandú",
            "محمد",
            "李小龍",
            "Zoë-Louise O'Neil",
        ] {
            assert!(
                Name::parse("name", good).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }

    #[test]
    fn password_length_is_bounded() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("long enough").is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-pass").unwrap()),
            "Password(***)"
        );
    }

    #[test]
    fn period_and_exam_parse() {
        assert!(Period::parse("2026.1").is_ok());
        assert!(Period::parse("2026.3").is_err());
        assert!(Period::parse("26.1").is_err());
        assert_eq!(Exam::parse("N2").unwrap(), Exam::N2);
        assert!(Exam::parse("n2").is_err());
    }

    proptest! {
        #[test]
        fn notes_outside_zero_to_ten_are_rejected(x in prop_oneof![
            -1e9f64..-0.000001, 10.000001f64..1e9, Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)
        ]) {
            prop_assert!(Note::parse(x).is_err());
        }

        #[test]
        fn notes_inside_zero_to_ten_are_accepted(x in 0.0f64..=10.0) {
            let n = Note::parse(x).unwrap();
            prop_assert!((0.0..=10.0).contains(&n.value()));
        }
    }
}
