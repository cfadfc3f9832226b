//! Why an input was refused: the verdicts of the model's parsers, shown field by field.

use std::borrow::Cow;

/// Why one input field was refused: a stable `code` and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// Names the field this verdict is about.
    pub fn at(self, field: &'static str) -> FieldError {
        FieldError { field: Cow::Borrowed(field), code: self.code, message: self.message }
    }
}

/// A refused input field, as shown in a problem's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Cow<'static, str>,
    pub code: &'static str,
    pub message: String,
}
