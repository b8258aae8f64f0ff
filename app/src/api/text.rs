//! [`Text`]: request text (a body field, a query or path parameter) as the document
//! declares it. In a body it is a JSON string and nothing else (poem-openapi's `String` also
//! takes a number or a boolean and turns it into text: `{"name": false}` would name a
//! discipline "false"). Anywhere it holds no NUL character, which PostgreSQL's `text` cannot
//! store or compare: the schema's `pattern` says so and the server refuses one with a 400
//! instead of failing on it.

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;
use std::borrow::Cow;

/// Text without NUL: what [`Text`]'s schema allows.
pub const NO_NUL: &str = "^[^\\u0000]*$";

/// A JSON string, strictly, without NUL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn checked(text: String) -> ParseResult<Text> {
        if text.contains('\0') {
            return Err(ParseError::custom("text must not contain NUL (U+0000)"));
        }
        Ok(Text(text))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> String {
        text.0
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text(text.to_string())
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(NO_NUL.to_string()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Text::checked(s),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ParseFromParameter for Text {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Text::checked(value.to_string())
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A rule of the domain for a text field, and the schema (a named component) that states
/// it to clients, e.g. as a `pattern`.
pub trait TextRule: Send + Sync + 'static {
    /// The schema's name in the document.
    const NAME: &'static str;
    /// The schema: a string with what the rule allows.
    fn schema() -> MetaSchema;
    /// The domain's own check of the text as sent.
    fn check(raw: &str) -> Result<(), campus_core::DomainError>;
}

/// A [`Text`] that `R` accepted when the body was parsed (a refusal is a 400 naming the
/// rule). The server checks with the domain's code, not the schema's pattern, which a test
/// per rule keeps equal to it.
pub struct Checked<R>(pub String, std::marker::PhantomData<fn() -> R>);

impl<R> Checked<R> {
    pub fn new(text: impl Into<String>) -> Self {
        Checked(text.into(), std::marker::PhantomData)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<R> std::fmt::Debug for Checked<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<R> Clone for Checked<R> {
    fn clone(&self) -> Self {
        Checked::new(self.0.clone())
    }
}

impl<R> From<&str> for Checked<R> {
    fn from(text: &str) -> Self {
        Checked::new(text)
    }
}

impl<R> std::ops::Deref for Checked<R> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<R: TextRule> Type for Checked<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        R::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(R::NAME.to_string())
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        registry.create_schema::<Self, _>(R::NAME.to_string(), |_| R::schema());
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<R: TextRule> ParseFromJSON for Checked<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let Text(raw) = Text::parse_from_json(value).map_err(ParseError::propagate)?;
        R::check(&raw).map_err(ParseError::custom)?;
        Ok(Checked::new(raw))
    }
}

impl<R: TextRule> ToJSON for Checked<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_json_string_is_text() {
        assert_eq!(
            Text::parse_from_json(Some(json!("Physics"))).unwrap(),
            Text("Physics".into())
        );
        for not_text in [
            json!(false),
            json!(12),
            json!(null),
            json!(["a"]),
            json!({}),
        ] {
            assert!(
                Text::parse_from_json(Some(not_text.clone())).is_err(),
                "{not_text}"
            );
        }
        assert!(Text::parse_from_json(None).is_err(), "a missing field");
    }

    #[test]
    fn text_never_holds_nul_and_the_schema_says_so() {
        assert!(Text::parse_from_json(Some(json!("a\u{0}b"))).is_err());
        assert!(Text::parse_from_parameter("a\u{0}b").is_err());
        assert_eq!(Text::parse_from_parameter("a b").unwrap().as_str(), "a b");
        let MetaSchemaRef::Inline(schema) = Text::schema_ref() else {
            panic!("inline")
        };
        assert_eq!(schema.pattern.as_deref(), Some(NO_NUL));
    }
}
