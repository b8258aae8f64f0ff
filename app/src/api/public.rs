//! Public endpoints: create an institution, log in, reset a password.

use super::text::{Checked, Text, TextRule};
use crate::web::error::ApiError;
use crate::web::limits::Limit;
use crate::web::{event_context, State};
use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::registry::MetaSchema;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Institutions and accounts (no authentication).
    Public,
    /// An Academic user manages their institution.
    Academic,
    /// A Teacher grades students of their classes.
    Teacher,
    /// A Student reads their notifications.
    Student,
    /// Operators (Adm everywhere, Academic in their institution) reprocess events and tasks.
    Adm,
    /// Health checks.
    Ops,
}

/// Characters the domain treats as whitespace around a name or an address (Unicode
/// `White_Space`, what Rust's `trim` removes), as a regular-expression class body.
macro_rules! whitespace {
    () => {
        r"\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// Controls and invisible or bidirectional formatting characters (zero-width spaces and
/// joiners, bidi overrides and isolates, soft hyphen, BOM), which no name or address holds.
macro_rules! hidden {
    () => {
        r"\u0000-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF"
    };
}

/// A person's or a thing's name (institution, user, discipline) as the domain checks it:
/// after trimming leading and trailing whitespace, 1 to 200 characters, none of them a
/// control character (`\t`, `\n`, …) or an invisible or bidirectional formatting character
/// (zero-width spaces and joiners, bidi overrides and isolates, soft hyphen, BOM). The
/// trimmed text is what is stored.
pub type NameText = Checked<NameRule>;

/// [`NameText`]'s rule: [`campus_core::values::Name::parse`], published as [`NAME_PATTERN`].
pub struct NameRule;

/// [`NameText`]'s rule as a regular expression: whitespace, then a first and a last
/// character that are neither whitespace nor hidden, with at most 198 characters between
/// them that are not hidden, then whitespace.
pub const NAME_PATTERN: &str = concat!(
    "^[",
    whitespace!(),
    "]*",
    "[^",
    hidden!(),
    whitespace!(),
    "]",
    "(?:[^",
    hidden!(),
    "]{0,198}",
    "[^",
    hidden!(),
    whitespace!(),
    "])?",
    "[",
    whitespace!(),
    "]*$",
);

impl TextRule for NameRule {
    const NAME: &'static str = "Name";

    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "A name (of an institution, a user, a discipline): after trimming leading and \
                 trailing whitespace, 1 to 200 characters, none of them a control character or \
                 an invisible or bidirectional formatting character (zero-width spaces and \
                 joiners, bidi overrides and isolates, soft hyphen, BOM). The trimmed text is \
                 what is stored. The pattern is exactly this rule.",
            ),
            pattern: Some(NAME_PATTERN.to_string()),
            example: Some(serde_json::json!("Ana Souza")),
            ..MetaSchema::new("string")
        }
    }

    fn check(raw: &str) -> Result<(), campus_core::DomainError> {
        campus_core::values::Name::parse("name", raw).map(drop)
    }
}

/// An e-mail address as the domain checks it ([`campus_core::values::Email::parse`]): at
/// most 254 characters as sent; after trimming whitespace, one `@` between a non-empty local
/// part and a domain of two or more dot-separated labels, with no whitespace, control or
/// invisible formatting character and none of `<>,;"()[]\`. It is stored lower-cased.
pub type EmailText = Checked<EmailRule>;

/// [`EmailText`]'s rule, published as [`EMAIL_PATTERN`] and a `maxLength` of 254.
pub struct EmailRule;

/// [`EmailText`]'s rule as a regular expression (the length is the schema's `maxLength`).
pub const EMAIL_PATTERN: &str = concat!(
    "^[",
    whitespace!(),
    "]*",
    "[^",
    hidden!(),
    whitespace!(),
    r#"<>,;"()\[\]\\@]+"#,
    "@",
    "(?:[^",
    hidden!(),
    whitespace!(),
    r#"<>,;"()\[\]\\@.]+\.)+"#,
    "[^",
    hidden!(),
    whitespace!(),
    r#"<>,;"()\[\]\\@.]+"#,
    "[",
    whitespace!(),
    "]*$",
);

impl TextRule for EmailRule {
    const NAME: &'static str = "Email";

    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "An e-mail address: at most 254 characters as sent; after trimming \
                 whitespace, one `@` between a non-empty local part and a domain of two or \
                 more dot-separated labels, with no whitespace, control or invisible \
                 formatting character and none of `<>,;\"()[]\\`. Compared and stored \
                 lower-cased. The pattern and the length are exactly this rule.",
            ),
            pattern: Some(EMAIL_PATTERN.to_string()),
            max_length: Some(254),
            example: Some(serde_json::json!("ana.souza@example.edu")),
            ..MetaSchema::new("string")
        }
    }

    fn check(raw: &str) -> Result<(), campus_core::DomainError> {
        campus_core::values::Email::parse(raw).map(drop)
    }
}

/// The first Academic user of a new institution.
#[derive(Object)]
#[oai(example)]
pub struct AcademicUserRequest {
    /// Their name.
    pub name: NameText,
    /// Their e-mail address, which they log in with; no other user may have it (any
    /// institution, compared case-insensitively). Trimmed and lower-cased; one `@`, a
    /// non-empty local part, a dotted domain, at most 254 bytes.
    pub email: EmailText,
    /// Their password, 8 to 128 characters (Unicode code points; spaces count).
    #[oai(validator(min_length = 8, max_length = 128))]
    pub password: Text,
}

impl Example for AcademicUserRequest {
    fn example() -> Self {
        AcademicUserRequest {
            name: "Ana Souza".into(),
            email: "ana.souza@example.edu".into(),
            password: "correct horse battery".into(),
        }
    }
}

/// A new institution and its first Academic user.
#[derive(Object)]
#[oai(example)]
pub struct CreateInstitutionRequest {
    /// The institution's name (institution names need not be unique).
    pub name: NameText,
    /// The institution's first Academic user.
    pub academic: AcademicUserRequest,
}

impl Example for CreateInstitutionRequest {
    fn example() -> Self {
        CreateInstitutionRequest {
            name: "Springfield College".into(),
            academic: AcademicUserRequest::example(),
        }
    }
}

/// The ids of a new institution and of its first Academic user.
#[derive(Object)]
#[oai(example)]
pub struct CreateInstitutionResponse {
    /// The new institution.
    pub institution_id: uuid::Uuid,
    /// Its first Academic user, who can log in at once.
    pub user_id: uuid::Uuid,
}

impl Example for CreateInstitutionResponse {
    fn example() -> Self {
        CreateInstitutionResponse {
            institution_id: example_id("0192f5a3-6c1e-7b3d-9a41-3f2d8c1b7e01"),
            user_id: example_id("0192f5a3-6c1e-7b3d-9a41-3f2d8c1b7e02"),
        }
    }
}

/// A fixed id for examples.
pub(super) fn example_id(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).unwrap_or_default()
}

#[derive(ApiResponse)]
pub enum InstitutionCreated {
    /// Created; `InstitutionCreated` was recorded (demo data follows asynchronously).
    #[oai(status = 201)]
    Created(Json<CreateInstitutionResponse>),
}

/// Credentials.
#[derive(Object)]
#[oai(example)]
pub struct LoginRequest {
    /// The user's e-mail address (case-insensitive; surrounding spaces are ignored).
    pub email: Text,
    /// The user's password. Not checked for form: a wrong one is a 401 like any other.
    pub password: Text,
}

impl Example for LoginRequest {
    fn example() -> Self {
        LoginRequest {
            email: "ana.souza@example.edu".into(),
            password: "correct horse battery".into(),
        }
    }
}

/// The kind of an access token.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    /// Send it as `Authorization: Bearer <access_token>`.
    Bearer,
}

/// An access token.
#[derive(Object)]
#[oai(example)]
pub struct LoginResponse {
    /// A signed JWT to send as `Authorization: Bearer <access_token>`. A password change
    /// revokes every token issued before it.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: TokenType,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

impl Example for LoginResponse {
    fn example() -> Self {
        LoginResponse {
            access_token: "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl"
                .into(),
            token_type: TokenType::Bearer,
            expires_in: 3600,
        }
    }
}

/// Whom to send a password reset link.
#[derive(Object)]
#[oai(example)]
pub struct ResetPasswordTokenRequest {
    /// The user's e-mail address. It must be well-formed (trimmed and lower-cased; one
    /// `@`, a non-empty local part, a dotted domain, at most 254 bytes), else 400; whether
    /// it belongs to a user is never revealed.
    pub email: EmailText,
}

impl Example for ResetPasswordTokenRequest {
    fn example() -> Self {
        ResetPasswordTokenRequest {
            email: "ana.souza@example.edu".into(),
        }
    }
}

/// A new password, with the token that allows setting it.
#[derive(Object)]
#[oai(example)]
pub struct ResetPasswordRequest {
    /// The token from the e-mailed link (single use, valid for one hour).
    #[oai(validator(min_length = 1))]
    pub token: Text,
    /// The new password, 8 to 128 characters (Unicode code points; spaces count).
    #[oai(validator(min_length = 8, max_length = 128))]
    pub password: Text,
}

impl Example for ResetPasswordRequest {
    fn example() -> Self {
        ResetPasswordRequest {
            token: "q0Yx3c9ZbH1mVtN7rL2pK8sW4dF6gJ5e".into(),
            password: "a new long passphrase".into(),
        }
    }
}

#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted. If the e-mail belongs to a user, a reset link is on its way.
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

pub struct PublicApi;

#[OpenApi(tag = "ApiTags::Public")]
impl PublicApi {
    /// Create an institution with its first Academic user
    ///
    /// Anyone may call it (no authentication). Records `InstitutionCreated` and
    /// `AcademicCreated`; a task then fills the institution with demo data (teachers,
    /// students, disciplines, classes). The Academic user can log in at once with the given
    /// password. 409 when the e-mail already belongs to a user (of any institution); 429
    /// when this client address created too many institutions recently (`CAMPUS_RATE_LIMITS`,
    /// `signup-ip`: 10 an hour by default).
    #[oai(
        path = "/institutions",
        method = "post",
        operation_id = "createInstitution"
    )]
    async fn create_institution(
        &self,
        state: Data<&State>,
        req: &Request,
        body: Json<CreateInstitutionRequest>,
    ) -> Result<InstitutionCreated, ApiError> {
        state
            .limiter
            .check(Limit::SignupIp, &state.limiter.client(req))?;
        let b = body.0;
        let (institution, user) = state
            .accounts
            .create_institution(
                b.name.as_str(),
                b.academic.name.as_str(),
                &b.academic.email,
                &b.academic.password,
                &event_context(req),
            )
            .await?;
        Ok(InstitutionCreated::Created(Json(
            CreateInstitutionResponse {
                institution_id: uuid::Uuid::from_u128(institution.0),
                user_id: uuid::Uuid::from_u128(user.0),
            },
        )))
    }

    /// Log in and receive a bearer token
    ///
    /// Anyone may call it. Any user with a password (Adm, Academic, Teacher, Student) gets a
    /// token for the other endpoints; Teachers and Students set their first password
    /// through the reset flow. 401 for an unknown e-mail, a user without a password or a
    /// wrong password alike; 429 after too many attempts from this client address or for
    /// this account (`login-ip`, `login-account`).
    #[oai(path = "/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&State>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Result<Json<LoginResponse>, ApiError> {
        state
            .limiter
            .check_both(req, Limit::LoginIp, Limit::LoginAccount, &body.email)?;
        let user = state.accounts.login(&body.email, &body.password).await?;
        let version = state.accounts.access_version(&user).await?;
        Ok(Json(LoginResponse {
            access_token: state.jwt.issue(&user, version)?,
            token_type: TokenType::Bearer,
            expires_in: state.jwt.ttl.as_secs(),
        }))
    }

    /// Ask for a password reset link by e-mail
    ///
    /// Anyone may call it. Always 202 for a well-formed address: the answer never reveals whether it belongs to a
    /// user. For a user, a single-use token valid for one hour is created and
    /// `ResetPasswordTokenCreated` is recorded; a task e-mails the link. A user gets at most
    /// one link per `CAMPUS_RESET_COOLDOWN` (5 minutes by default); requests within it are
    /// answered the same way and send nothing. 400 for a malformed address; 429 after too
    /// many requests from this client address or for this address (`reset-ip`,
    /// `reset-account`).
    #[oai(
        path = "/auth/reset-password-token",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn reset_password_token(
        &self,
        state: Data<&State>,
        req: &Request,
        body: Json<ResetPasswordTokenRequest>,
    ) -> Result<Accepted, ApiError> {
        state
            .limiter
            .check_both(req, Limit::ResetIp, Limit::ResetAccount, &body.email)?;
        state
            .accounts
            .request_password_reset(&body.email, &event_context(req))
            .await?;
        Ok(Accepted::Accepted)
    }

    /// Set a new password with a reset token
    ///
    /// Anyone holding a token may call it (no authentication). The token is used up, the
    /// password replaced, `PasswordChanged` recorded, and every access token the user had
    /// is revoked. 400 when the token is unknown, expired or already used, or the password
    /// is not 8 to 128 characters.
    #[oai(
        path = "/auth/reset-password",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset_password(
        &self,
        state: Data<&State>,
        req: &Request,
        body: Json<ResetPasswordRequest>,
    ) -> Result<NoContent, ApiError> {
        state
            .accounts
            .reset_password(&body.token, &body.password, &event_context(req))
            .await?;
        Ok(NoContent::NoContent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::types::{ParseFromJSON, ToJSON};
    use poem_openapi::validation::{Pattern, Validator};

    /// The published spec.
    fn spec() -> serde_json::Value {
        serde_json::from_str(&crate::api::openapi_json()).unwrap()
    }

    /// A pattern of the spec as poem-openapi checks it (the regex crate, like the server).
    fn pattern(spec: &serde_json::Value, pointer: &str) -> Pattern {
        let text = spec.pointer(pointer).and_then(|p| p.as_str()).unwrap();
        Pattern::new(Box::leak(text.to_string().into_boxed_str()))
    }

    /// Characters the rules treat specially: whitespace inside and outside the ASCII range,
    /// controls that are whitespace and controls that are not, invisible and bidirectional
    /// formatting characters, look-alike digits.
    const CHARS: &[char] = &[
        'a',
        '7',
        '2',
        '1',
        '.',
        ' ',
        '\t',
        '\n',
        '\u{0B}',
        '\u{0C}',
        '\r',
        '\u{85}',
        '\u{A0}',
        '\u{1680}',
        '\u{2003}',
        '\u{2028}',
        '\u{2029}',
        '\u{202F}',
        '\u{3000}',
        '\u{0}',
        '\u{1F}',
        '\u{7F}',
        '\u{9F}',
        '\u{AD}',
        '\u{61C}',
        '\u{180E}',
        '\u{200B}',
        '\u{200F}',
        '\u{202E}',
        '\u{2060}',
        '\u{2066}',
        '\u{FEFF}',
        'é',
        '李',
        '\u{1F600}',
        '\u{FF12}',
    ];

    /// A deterministic stream of pseudo-random numbers (xorshift) from `seed`.
    fn xorshift(mut seed: u64) -> impl FnMut() -> usize {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        }
    }

    /// Asserts that the schema (`in_schema`) and [`Checked<R>`] accept exactly the samples
    /// the domain rule `R` accepts; returns how many it accepted and refused.
    fn agreement<R: TextRule>(
        samples: impl IntoIterator<Item = String>,
        in_schema: impl Fn(&str) -> bool,
    ) -> (usize, usize) {
        let (mut valid, mut invalid) = (0, 0);
        for s in samples {
            let domain = R::check(&s).is_ok();
            assert_eq!(in_schema(&s), domain, "{s:?}");
            let parsed = Checked::<R>::parse_from_json(Some(serde_json::Value::String(s.clone())));
            assert_eq!(parsed.is_ok(), domain, "{s:?}");
            if domain {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        (valid, invalid)
    }

    /// Each special character alone, first, last, inside and doubled; names around the
    /// length bound, bare and padded; periods and near-periods; and a few random strings.
    /// Deterministic. (Few: poem-openapi compiles a pattern at every check.)
    fn samples() -> Vec<String> {
        let mut out = vec![String::new()];
        for &c in CHARS {
            for s in [
                format!("{c}"),
                format!("{c}ab"),
                format!("ab{c}"),
                format!("a{c}b"),
                format!("{c}{c}"),
            ] {
                out.push(s);
            }
        }
        let x = |n: usize| "x".repeat(n);
        for n in [199, 200, 201] {
            out.extend([
                x(n),
                format!(" {} ", x(n)),
                format!("\t{}\u{2028}", x(n)),
                format!("{}\u{3000}", x(n)),
                format!("{} y", x(n - 2)),
                format!("\u{200B}{}", x(n - 1)),
            ]);
        }
        out.extend(
            [
                "2026.1",
                "2026.2",
                " 2026.1\n",
                "\u{85}2026.2\u{3000}",
                "2026.3",
                "26.1",
                "２０２６.1",
                "2026.1.1",
                "2026.12",
                "2026,1",
                "\u{FEFF}2026.1",
                "2026.1\u{0}",
                "20261.1",
            ]
            .map(String::from),
        );
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..60 {
            let len = next() % 12;
            out.push((0..len).map(|_| CHARS[next() % CHARS.len()]).collect());
        }
        out
    }

    #[test]
    fn the_name_pattern_is_the_domain_rule() {
        let spec = spec();
        assert_eq!(
            spec["components"]["schemas"]["Name"]["pattern"],
            NAME_PATTERN
        );
        let published = Pattern::new(NAME_PATTERN);
        let (valid, invalid) = agreement::<NameRule>(samples(), |s| published.check(&s));
        assert!(
            valid > 80 && invalid > 80,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn the_email_pattern_and_length_are_the_domain_rule() {
        let spec = spec();
        let schema = &spec["components"]["schemas"]["Email"];
        assert_eq!(schema["pattern"], EMAIL_PATTERN);
        let published = Pattern::new(EMAIL_PATTERN);
        let max = schema["maxLength"].as_u64().unwrap() as usize;
        const PIECES: &[&str] = &[
            "a", "B", "7", ".", "..", "@", "x.org", "-", "+", " ", "\t", "\u{A0}", "\u{3000}",
            "\u{200B}", "\u{202E}", "\u{0}", "\u{85}", "<", ",", ";", "\"", "(", "[", "\\", "ü",
            "İ", "ß",
        ];
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut piece = move |most: usize| -> String {
            let n = next();
            (0..n % most)
                .map(|i| PIECES[(n >> (5 * i + 3)) % PIECES.len()])
                .collect()
        };
        let mut samples: Vec<String> = (0..4000)
            .map(|i| match i % 3 {
                0 => piece(9),
                1 => format!("{}@{}", piece(3), piece(4)),
                _ => format!("{}a@b{}.org{}", piece(2), piece(2), piece(2)),
            })
            .collect();
        for len in [250, 254, 255] {
            samples.push(format!("{}@x.org", "a".repeat(len - 6)));
            samples.push(format!(" {}@x.org", "a".repeat(len - 7)));
        }
        let (valid, invalid) =
            agreement::<EmailRule>(samples, |s| published.check(&s) && s.chars().count() <= max);
        assert!(
            valid > 50 && invalid > 50,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn the_period_pattern_is_the_domain_rule() {
        let spec = spec();
        let published = pattern(
            &spec,
            "/components/schemas/CreateClassRequest/properties/period/pattern",
        );
        let mut valid = 0;
        for s in samples() {
            let domain = campus_core::values::Period::parse(&s).is_ok();
            assert_eq!(published.check(&s), domain, "{s:?}");
            valid += usize::from(domain);
        }
        assert!(valid >= 4, "{valid} valid periods");
    }

    #[test]
    fn request_examples_are_valid_requests() {
        let spec = spec();
        for name in [
            "CreateInstitutionRequest",
            "LoginRequest",
            "ResetPasswordRequest",
        ] {
            assert!(
                spec["components"]["schemas"][name]["example"].is_object(),
                "{name}"
            );
        }
        let example = CreateInstitutionRequest::example().to_json();
        assert!(CreateInstitutionRequest::parse_from_json(example).is_ok());
        let example = ResetPasswordRequest::example().to_json();
        assert!(ResetPasswordRequest::parse_from_json(example).is_ok());
    }
}
