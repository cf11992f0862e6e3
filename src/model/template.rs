//! `${NAME}` references in manifest strings, and `$${` for a literal `${`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A string with environment variable references, as written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
enum Part {
    Literal(String),
    Variable(String),
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    /// `${` without a closing `}`.
    #[error("`${{` is not closed by `}}`")]
    Unclosed,
    /// `${}` or a name with other characters.
    #[error(
        "`${{{0}}}` is not a valid variable reference (letters, digits and `_`, not starting with a digit)"
    )]
    BadName(String),
}

impl Template {
    /// Parses `text`.
    pub(crate) fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                literal.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let end = tail.find('}').ok_or(TemplateError::Unclosed)?;
                let name = &tail[..end];
                if !is_variable_name(name) {
                    return Err(TemplateError::BadName(name.to_owned()));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Variable(name.to_owned()));
                rest = &tail[end + 1..];
            } else {
                literal.push('$');
                rest = &after[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// The variable this template is, when it is exactly one `${NAME}` and nothing else.
    pub(crate) fn sole_variable(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Variable(name)] => Some(name),
            _ => None,
        }
    }

    /// The variables it references, in order (repeats included).
    pub(crate) fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Substitutes every variable from `lookup`; the names of the missing ones otherwise.
    pub(crate) fn resolve(&self, env: &super::Env) -> Result<String, Vec<String>> {
        let mut out = String::new();
        let mut missing = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => match env.get(name) {
                    Some(value) => out.push_str(value),
                    None => missing.push(name.clone()),
                },
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(missing)
        }
    }
}

impl fmt::Display for Template {
    /// The template as written (with `$${` escapes restored).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(&text.replace("${", "$${"))?,
                Part::Variable(name) => write!(f, "${{{name}}}")?,
            }
        }
        Ok(())
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> crate::model::Env {
        crate::model::Env::new([("A", "x")])
    }

    #[test]
    fn interpolates_and_escapes() {
        let t = Template::parse("pre-${A}-$${B}-$5").unwrap();
        assert_eq!(t.resolve(&env()).unwrap(), "pre-x-${B}-$5");
        assert_eq!(t.to_string(), "pre-${A}-$${B}-$5");
        assert_eq!(
            Template::parse("${B}").unwrap().resolve(&env()),
            Err(vec!["B".to_owned()])
        );
    }

    #[test]
    fn sole_variable_is_exact() {
        assert_eq!(
            Template::parse("${SECRET}").unwrap().sole_variable(),
            Some("SECRET")
        );
        assert_eq!(Template::parse("x${SECRET}").unwrap().sole_variable(), None);
        assert_eq!(Template::parse("literal").unwrap().sole_variable(), None);
        let t = Template::parse("https://${A}.x/${B}$${C}").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["A", "B"]);
    }

    #[test]
    fn rejects_bad_references() {
        assert_eq!(Template::parse("${A"), Err(TemplateError::Unclosed));
        assert_eq!(
            Template::parse("${}"),
            Err(TemplateError::BadName(String::new()))
        );
        assert_eq!(
            Template::parse("${1A}"),
            Err(TemplateError::BadName("1A".into()))
        );
    }
}
